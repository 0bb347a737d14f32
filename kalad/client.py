"""A standard-library client for kalad's (and Kala's) JSON/HTTP API.

It stands apart from the daemon: it imports nothing from it, so scripts and
``kalactl`` can use it on hosts where only the client is wanted. It offers the
operations of Kala's Go client (create, get, get all, delete, delete all, start,
enable, disable, job stats, app stats) and kalad's own routes (run records, next
fire times, schedule previews), with three differences from the Go client: every
request has a timeout, a refusal carries the server's ``{"error"}`` message, and
``start`` raises instead of returning ``False`` for an unknown id.

Errors are typed: :class:`Unreachable` (no connection, timeout, not an HTTP
answer), :class:`Refused` (a 4xx/5xx, with the server's message and status) and
its subclass :class:`JobNotFound` (404), all under :class:`KaladError`.

Jobs go in and come out as Kala's JSON objects (plain dicts), so anything Kala
accepts can be sent unchanged.

    >>> from kalad.client import Client
    >>> kalad = Client("http://127.0.0.1:8000")
    >>> job_id = kalad.create({"name": "hello", "command": "echo hi",
    ...                        "schedule": "R/2030-01-01T00:00:00Z/PT1H"})
    >>> kalad.next(job_id, 2)
    ['2030-01-01T00:00:00Z', '2030-01-01T01:00:00Z']
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Mapping

__all__ = ["Client", "JobNotFound", "KaladError", "Refused", "Unreachable", "API_PREFIX"]

API_PREFIX = "/api/v1"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 10.0


class KaladError(Exception):
    """Anything that kept a request from succeeding."""


class Unreachable(KaladError):
    """No answer from the daemon: connection refused, DNS failure, timeout, garbage reply."""


class Refused(KaladError):
    """The daemon answered with an error status; ``message`` is its ``{"error"}`` text."""

    def __init__(self, status: int, message: str, method: str = "", url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.method = method
        self.url = url

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})"


class JobNotFound(Refused, LookupError):
    """A 404: the job id (or route) does not exist."""


class Client:
    """One daemon, reached at ``base_url`` (``http://host:8000``; ``/api/v1`` is appended).

    ``token``, when given, is sent as ``Authorization: Bearer <token>`` on every
    request. ``timeout`` bounds each request (connect and each read), in seconds.
    A ``base_url`` that already ends in ``/api/v1`` is taken as is.
    """

    def __init__(self, base_url: str = DEFAULT_URL, *, token: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        base = base_url.strip().rstrip("/")
        if "://" not in base:
            base = "http://" + base
        if not base.endswith(API_PREFIX):
            base += API_PREFIX
        self.base_url = base
        self.token = token or None
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    # ------------------------------------------------------------------ Kala's operations

    def create(self, job: Mapping[str, Any]) -> str:
        """Create a job from Kala's job JSON; return its new id."""
        return self._call("POST", "/job/", job)["id"]

    def get(self, job_id: str) -> dict[str, Any]:
        """The job's JSON object (Kala's fields, ``stats`` holding its recent runs)."""
        return self._call("GET", f"/job/{_seg(job_id)}/")["job"]

    def get_all(self) -> dict[str, dict[str, Any]]:
        """Every job, by id."""
        return self._call("GET", "/job/")["jobs"] or {}

    def delete(self, job_id: str) -> None:
        """Delete a job (its children without another parent go with it)."""
        self._call("DELETE", f"/job/{_seg(job_id)}/")

    def delete_all(self) -> None:
        """Delete every job."""
        self._call("DELETE", "/job/all/")

    def start(self, job_id: str) -> None:
        """Run the job now; returns once the run has begun (not when it ends)."""
        self._call("POST", f"/job/start/{_seg(job_id)}/")

    def enable(self, job_id: str) -> None:
        self._call("POST", f"/job/enable/{_seg(job_id)}/")

    def disable(self, job_id: str) -> None:
        self._call("POST", f"/job/disable/{_seg(job_id)}/")

    def job_stats(self, job_id: str) -> list[dict[str, Any]]:
        """Kala's job stats: one entry per executed run (Kala sends null for none: ``[]``)."""
        return self._call("GET", f"/job/stats/{_seg(job_id)}/")["job_stats"] or []

    def app_stats(self) -> dict[str, Any]:
        """``GET /stats/``: job counts, success and error totals, the next run."""
        return self._call("GET", "/stats/")["Stats"]

    # ------------------------------------------------------------------ kalad's routes

    def runs(self, job_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The job's newest run records, oldest first, with output and reasons.

        At most ``limit`` of them, or the daemon's ``stats_per_job`` (default 100).
        """
        query = f"?limit={int(limit)}" if limit else ""
        return self._call("GET", f"/job/{_seg(job_id)}/runs/{query}")["runs"]

    def next(self, job_id: str, n: int = 5) -> list[str]:
        """The job's next ``n`` fire times (RFC 3339, UTC); empty for a child or a done job."""
        return self._call("GET", f"/job/{_seg(job_id)}/next/?n={int(n)}")["next"]

    def preview(self, schedule: str, n: int = 5) -> list[str]:
        """The first ``n`` fire times of a schedule not saved anywhere (checks its syntax)."""
        query = urllib.parse.urlencode({"schedule": schedule, "n": int(n)})
        return self._call("GET", f"/schedule/next/?{query}")["next"]

    # ------------------------------------------------------------------ transport

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        url = self.base_url + path
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise _refusal(err, method, url) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (socket.timeout, TimeoutError)):
                reason = f"no answer within {self.timeout:g}s"
            raise Unreachable(f"cannot reach kalad at {self.base_url}: {reason}") from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise Unreachable(f"{method} {url}: the answer is not JSON "
                              "(is this a kalad or Kala API?)") from None


def _seg(job_id: str) -> str:
    """A job id as one path segment: ``/`` and ``?`` in it cannot change the route."""
    if not job_id:
        raise ValueError("empty job id")
    return urllib.parse.quote(job_id, safe="")


def _refusal(err: urllib.error.HTTPError, method: str, url: str) -> Refused:
    try:
        raw = err.read()
    except OSError:
        raw = b""
    message = ""
    try:
        body = json.loads(raw)
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            message = body["error"]
    except ValueError:
        message = raw.decode("utf-8", "replace").strip()[:200]
    message = message or err.reason or f"HTTP {err.code}"
    cls = JobNotFound if err.code == 404 else Refused
    return cls(err.code, message, method, url)
