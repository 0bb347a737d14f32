"""Kala's job routes: create, list, get, delete, delete all, start, enable, disable, stats.

Each resource only translates HTTP to one service call; rules live in the core and
the service, the wire format in ``kala_json``.
"""

from __future__ import annotations

import json
import uuid
from typing import Iterator

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
from kalad.api.wire_cache import WireCache
from kalad.core.job import Job
from kalad.service import Service

MAX_BODY = 1024 * 1024
MAX_PAGE = 10_000
STREAM_CHUNK = 1000


def read_body(req: falcon.Request) -> bytes:
    """The request body, refusing more than ``[api] max_body`` (1 MiB) whatever the client claims.

    The limit comes from the guards middleware (``req.context.max_body``).
    """
    limit = getattr(req.context, "max_body", MAX_BODY)
    if req.content_length is not None and req.content_length > limit:
        raise falcon.HTTPContentTooLarge(description=f"request body over {limit} bytes")
    data = req.bounded_stream.read(limit + 1)
    if len(data) > limit:
        raise falcon.HTTPContentTooLarge(description=f"request body over {limit} bytes")
    return data


def _json(resp: falcon.Response, status: str, body: object) -> None:
    resp.status = status
    resp.content_type = JSON
    resp.data = dumps(body)


class JobCollection:
    def __init__(self, service: Service, cache: WireCache) -> None:
        self._service = service
        self._cache = cache

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        job = parse_job(read_body(req), job_id=str(uuid.uuid4()), now=self._service.now())
        job = self._service.create_job(job)
        req.context.job_id = job.id  # for the audit line
        _json(resp, falcon.HTTP_201, {"id": job.id})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Kala's ``{"jobs": {id: job}}``, in creation order.

        Without ``limit`` it lists every job, as Kala does, streamed a chunk at a
        time so a million jobs never sit in memory as one response. With
        ``limit`` (and ``offset``) it is one page, plus ``total``, ``offset`` and
        ``limit``.
        """
        limit = req.get_param_as_int("limit", min_value=1, max_value=MAX_PAGE)
        offset = req.get_param_as_int("offset", min_value=0, default=0)
        resp.status = falcon.HTTP_200
        resp.content_type = JSON
        if limit is None:
            resp.stream = self._stream(self._service.list_jobs())
            return
        total, jobs = self._service.jobs_page(offset, limit)
        page = self._members(jobs)
        tail = f',"total":{total},"offset":{offset},"limit":{limit}}}\n'.encode()
        resp.data = b'{"jobs":{' + page + b"}" + tail

    def _stream(self, jobs: list[Job]) -> Iterator[bytes]:
        yield b'{"jobs":{'
        sep = b""
        for start in range(0, len(jobs), STREAM_CHUNK):
            members = self._members(jobs[start:start + STREAM_CHUNK])
            if members:
                yield sep + members
                sep = b","
        yield b"}}\n"

    def _members(self, jobs: list[Job]) -> bytes:
        """``"id":{...},...`` for the jobs that still exist."""
        parts = []
        for job in jobs:
            try:
                parts.append(json.dumps(job.id).encode() + b":" + self._cache.encoded(job))
            except LookupError:
                continue  # deleted while we were listing
        return b",".join(parts)


class AllJobs:
    def __init__(self, service: Service) -> None:
        self._service = service

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._service.delete_all()
        resp.status = falcon.HTTP_204


class JobItem:
    def __init__(self, service: Service, cache: WireCache) -> None:
        self._service = service
        self._cache = cache

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        resp.status = falcon.HTTP_200
        resp.content_type = JSON
        resp.data = b'{"job":%s}\n' % self._cache.encoded(self._service.get_job(job_id))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        self._service.delete_job(job_id)
        resp.status = falcon.HTTP_204

    def on_put(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        """Replace the definition (same body as a create); 200 with the job as stored."""
        self._service.get_job(job_id)  # an unknown id is a 404 even with a bad body
        job = parse_job(read_body(req), job_id=job_id, now=self._service.now())
        job = self._service.replace_job(job)
        _json(resp, falcon.HTTP_200, {"job": job_to_wire(job, self._service.recent_runs(job_id))})


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
