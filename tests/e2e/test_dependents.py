"""Dependent, on-failure and remote jobs through the real daemon."""

from __future__ import annotations

import http.server
import threading

import pytest

from tests.conftest import wait_until
from tests.e2e.daemon import Daemon

FAR = "R/2099-01-01T00:00:00Z/P1D"


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path).start()
    yield d
    d.stop()


def stamp(path, name: str) -> str:
    return f"sh -c 'echo {name} $(date +%s.%N) >> {path}'"


def lines(path) -> list[list[str]]:
    try:
        return [line.split() for line in path.read_text().splitlines()]
    except FileNotFoundError:
        return []


def test_parent_child_grandchild_run_in_order(daemon, tmp_path):
    out = tmp_path / "order"
    parent = daemon.create(name="parent", command=stamp(out, "parent"), schedule=FAR)
    child = daemon.create(name="child", command=stamp(out, "child"), parent_jobs=[parent])
    daemon.create(name="grandchild", command=stamp(out, "grandchild"), parent_jobs=[child])
    daemon.create(name="sibling", command=stamp(out, "sibling"), parent_jobs=[parent])
    assert daemon.request("POST", f"/job/start/{parent}/")[0] == 204
    got = wait_until(lambda: len(lines(out)) == 4 and lines(out), timeout=20)
    assert [name for name, _ in got] == ["parent", "child", "grandchild", "sibling"]
    times = [float(t) for _, t in got]
    assert times == sorted(times)


def test_failing_parent_runs_on_failure_job_not_children(daemon, tmp_path):
    out = tmp_path / "order"
    alarm = daemon.create(name="alarm", command=stamp(out, "alarm"), schedule=FAR)
    parent = daemon.create(name="parent", command="sh -c 'exit 1'", schedule=FAR,
                           on_failure_job=alarm)
    daemon.create(name="child", command=stamp(out, "child"), parent_jobs=[parent])
    daemon.request("POST", f"/job/start/{parent}/")
    wait_until(lambda: lines(out), timeout=20)
    wait_until(lambda: daemon.runs(parent))
    assert [name for name, _ in lines(out)] == ["alarm"]
    [run] = wait_until(lambda: daemon.runs(alarm))  # its record follows its stamp
    assert run["trigger"] == "failure"


def test_deleting_a_parent_keeps_a_shared_child_and_survives_restart(tmp_path):
    d = Daemon(tmp_path).start()
    a = d.create(name="a", command="true", schedule=FAR)
    b = d.create(name="b", command="true", schedule=FAR)
    only = d.create(name="only", command="true", parent_jobs=[a])
    shared = d.create(name="shared", command="true", parent_jobs=[a, b])
    assert d.request("DELETE", f"/job/{a}/")[0] == 204
    jobs = d.request("GET", "/job/")[1]["jobs"]
    assert set(jobs) == {b, shared}
    assert jobs[shared]["parent_jobs"] == [b] and jobs[b]["dependent_jobs"] == [shared]
    assert d.stop() == 0
    d = Daemon(tmp_path, port=d.port).start()
    try:
        jobs = d.request("GET", "/job/")[1]["jobs"]
        assert set(jobs) == {b, shared} and only not in jobs
        assert jobs[shared]["parent_jobs"] == [b] and jobs[b]["dependent_jobs"] == [shared]
        assert d.request("DELETE", "/job/all/")[0] == 204
        assert d.request("GET", "/job/")[1] == {"jobs": {}}
    finally:
        d.stop()


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self.seen.append((self.command, self.path, body))
        status = 201 if self.path == "/created" else 500
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def web():
    _Handler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_remote_job_calls_its_url_with_templated_body(daemon, web):
    job_id = daemon.create(
        name="hook", type=1, TemplateDelimiters="{{ }}",
        remote_properties={"url": f"{web}/created", "method": "post",
                           "body": '{"job": "{{.Name}}"}', "expected_response_codes": [201]})
    [run] = wait_until(lambda: daemon.runs(job_id), timeout=20)
    assert run["status"] == "succeeded" and run["exit_status"] == 201 and run["output"] == "ok"
    assert _Handler.seen == [("POST", "/created", '{"job": "hook"}')]


def test_remote_job_with_unexpected_status_fails_and_retries(daemon, web):
    job_id = daemon.create(name="hook", type=1, retries=2,
                           remote_properties={"url": f"{web}/broken", "method": "POST"})
    [run] = wait_until(lambda: daemon.runs(job_id), timeout=20)
    assert run["status"] == "failed" and run["attempts"] == 3 and "500" in run["message"]
    meta = daemon.request("GET", f"/job/{job_id}/")[1]["job"]["metadata"]
    assert meta["error_count"] == 3 and meta["number_of_finished_runs"] == 1
