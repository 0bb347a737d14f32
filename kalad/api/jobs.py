"""Kala's job routes: create, list, get, delete, delete all, start, enable, disable, stats.

Each resource only translates HTTP to one service call; rules live in the core and
the service, the wire format in ``kala_json``.
"""

from __future__ import annotations

import uuid

import falcon

from kalad.api.errors import JSON
from kalad.api.kala_json import (
    dumps,
    format_time,
    job_to_wire,
    parse_job,
    run_to_stat,
    run_to_wire,
)
from kalad.service import Service

MAX_BODY = 1024 * 1024


def read_body(req: falcon.Request) -> bytes:
    """The request body, refusing more than 1 MiB whatever the client claims."""
    if req.content_length is not None and req.content_length > MAX_BODY:
        raise falcon.HTTPContentTooLarge(description=f"request body over {MAX_BODY} bytes")
    data = req.bounded_stream.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise falcon.HTTPContentTooLarge(description=f"request body over {MAX_BODY} bytes")
    return data


def _json(resp: falcon.Response, status: str, body: object) -> None:
    resp.status = status
    resp.content_type = JSON
    resp.data = dumps(body)


class JobCollection:
    def __init__(self, service: Service) -> None:
        self._service = service

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        job = parse_job(read_body(req), job_id=str(uuid.uuid4()), now=self._service.now())
        job = self._service.create_job(job)
        _json(resp, falcon.HTTP_201, {"id": job.id})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        service = self._service
        jobs = sorted(service.list_jobs(), key=lambda j: j.id)
        wire = {}
        for job in jobs:
            try:
                wire[job.id] = job_to_wire(job, service.recent_runs(job.id))
            except LookupError:
                continue  # deleted while we were listing
        _json(resp, falcon.HTTP_200, {"jobs": wire})


class AllJobs:
    def __init__(self, service: Service) -> None:
        self._service = service

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._service.delete_all()
        resp.status = falcon.HTTP_204


class JobItem:
    def __init__(self, service: Service) -> None:
        self._service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job = self._service.get_job(job_id)
        _json(resp, falcon.HTTP_200, {"job": job_to_wire(job, self._service.recent_runs(job_id))})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        self._service.delete_job(job_id)
        resp.status = falcon.HTTP_204


class JobStats:
    def __init__(self, service: Service) -> None:
        self._service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        runs = self._service.recent_runs(job_id)
        stats = [run_to_stat(r) for r in runs if r.status.executed]
        _json(resp, falcon.HTTP_200, {"job_stats": stats or None})


class JobRuns:
    """kalad's own view of a job's runs: every record, with output and reasons."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        limit = req.get_param_as_int("limit", min_value=1, max_value=100_000)
        runs = self._service.recent_runs(job_id, limit)
        _json(resp, falcon.HTTP_200, {"runs": [run_to_wire(r) for r in runs]})


class JobAction:
    """POST /job/{start,enable,disable}/{id}/: 204 once done (a start once it has begun)."""

    def __init__(self, action) -> None:
        self._action = action

    def on_post(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        self._action(job_id)
        resp.status = falcon.HTTP_204


class JobNext:
    """``GET /job/{id}/next?n=5``: the job's next fire times, computed by the daemon."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        count = req.get_param_as_int("n", min_value=1, max_value=1000, default=5)
        times = self._service.upcoming(job_id, count)
        _json(resp, falcon.HTTP_200, {"next": [format_time(t) for t in times]})


class SchedulePreview:
    """``GET /schedule/next?schedule=R/...&n=5``: fire times of a schedule not yet saved."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        schedule = req.get_param("schedule", default="")
        count = req.get_param_as_int("n", min_value=1, max_value=1000, default=5)
        times = self._service.preview(schedule, count)
        _json(resp, falcon.HTTP_200, {"next": [format_time(t) for t in times]})
