"""The API baseline: a bare falcon + waitress app serving Kala's job routes from a dict.

Same stack as kalad's API (falcon on waitress, 8 threads like ``--api-threads``' default),
same wire shapes, none of the work: no validation beyond JSON parsing, no schedule, no
store (nothing durable). kalad / ceiling is the share of this stack's throughput kalad keeps.
Run as ``python -m bench.ceiling THREADS``: binds 127.0.0.1 on a free port and prints it.
"""
from __future__ import annotations

import json
import logging
import socket
import sys
import uuid

import falcon
import waitress

ZERO = "0001-01-01T00:00:00Z"


def kala_job(body: dict, job_id: str) -> dict:
    """A job object with the fields (and roughly the size) kalad answers with."""
    return {"name": body.get("name", ""), "id": job_id, "command": body.get("command", ""),
            "owner": "", "disabled": False, "dependent_jobs": None, "parent_jobs": None,
            "on_failure_job": "", "schedule": body.get("schedule", ""), "retries": 0,
            "epsilon": body.get("epsilon", ""), "next_run_at": ZERO, "TemplateDelimiters": "",
            "resume_at_next_scheduled_time": False,
            "metadata": {"success_count": 0, "last_success": ZERO, "error_count": 0, "last_error": ZERO,
                         "last_attempted_run": ZERO, "number_of_finished_runs": 0},
            "type": 0, "remote_properties": {"url": "", "method": "", "body": "", "headers": None,
                                              "timeout": 0, "expected_response_codes": None},
            "stats": None, "is_done": False}


JOBS: dict[str, dict] = {}


def send(resp: falcon.Response, obj, status=falcon.HTTP_200) -> None:
    resp.status = status
    resp.content_type = "application/json"
    resp.data = json.dumps(obj).encode()


class Collection:
    def on_post(self, req, resp):
        body = json.loads(req.bounded_stream.read() or b"{}")
        job_id = str(uuid.uuid4())
        JOBS[job_id] = kala_job(body, job_id)
        send(resp, {"id": job_id}, falcon.HTTP_201)

    def on_get(self, req, resp):
        send(resp, {"jobs": JOBS})


class Item:
    def on_get(self, req, resp, job_id):
        if job_id not in JOBS:
            raise falcon.HTTPNotFound()
        send(resp, {"job": JOBS[job_id]})

    def on_delete(self, req, resp, job_id):
        JOBS.pop(job_id, None)
        resp.status = falcon.HTTP_204


class Stats:
    def on_get(self, req, resp):
        n = len(JOBS)
        send(resp, {"Stats": {"active_jobs": n, "disabled_jobs": 0, "jobs": n, "error_count": 0,
                              "success_count": 0, "next_run_at": ZERO, "last_attempted_run": ZERO,
                              "created": ZERO, "ActiveJobs": n, "DisabledJobs": 0, "Jobs": n,
                              "ErrorCount": 0, "SuccessCount": 0, "NextRunAt": ZERO,
                              "LastAttemptedRun": ZERO, "CreatedAt": ZERO}})


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    # waitress warns "Task queue depth is N" for every queued request under load
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = falcon.App()
    app.req_options.strip_url_path_trailing_slash = True
    app.add_route("/api/v1/job", Collection())
    app.add_route("/api/v1/job/{job_id}", Item())
    app.add_route("/api/v1/stats", Stats())
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print(sock.getsockname()[1], flush=True)
    waitress.serve(app, sockets=[sock], threads=threads, _quiet=True)


if __name__ == "__main__":
    main()
