"""A small keep-alive JSON client for the Kala API (kalad, or the bare ceiling app).

One connection per thread, TCP_NODELAY set (http.client writes a POST's headers and body
separately; without it Nagle and delayed ACK add ~40 ms per POST). Only 127.0.0.1.
"""
from __future__ import annotations

import http.client
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

API_PREFIX = "/api/v1"


class Unresponsive(OSError):
    """The server let a request time out: later requests fail at once instead of each
    waiting out its own timeout, so a hung server costs one timeout, not thousands."""


class _Connection(http.client.HTTPConnection):
    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Api:
    """Kala REST client for http://127.0.0.1:port/api/v1; ``map`` runs calls on its pool."""

    def __init__(self, port: int, concurrency: int = 8, timeout: float = 30.0):
        self.host, self.port, self.timeout = "127.0.0.1", port, timeout
        self.broken: str | None = None
        self.concurrency = concurrency
        self.base = f"http://{self.host}:{port}{API_PREFIX}"
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(concurrency)

    def request(self, method: str, path: str, body=None, parse: bool = True) -> tuple[int, object, int]:
        """(status, parsed JSON or None, response bytes); raises OSError/HTTPException."""
        if self.broken:
            raise Unresponsive(self.broken)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn = getattr(self._local, "conn", None)
        reused = conn is not None
        if conn is None:
            conn = self._local.conn = _Connection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, API_PREFIX + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except TimeoutError:
            conn.close()
            self._local.conn = None
            self.broken = f"127.0.0.1:{self.port} did not answer {method} {path} within {self.timeout:g} s"
            raise Unresponsive(self.broken) from None
        except (http.client.HTTPException, OSError):
            conn.close()
            self._local.conn = None
            if reused and method != "POST":  # a stale keep-alive connection: retry once
                return self.request(method, path, body, parse)
            raise
        parsed = None
        if parse and raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                pass
        return resp.status, parsed, len(raw)

    def map(self, fn, items) -> list:
        return list(self._pool.map(fn, items))

    def stats(self) -> dict:
        status, body, _ = self.request("GET", "/stats/")
        if status != 200 or not isinstance(body, dict):
            raise RuntimeError(f"GET /stats/ -> {status}")
        return body.get("Stats", body)

    def create(self, job: dict) -> str | None:
        """The new job's id, or None on any failure (counted by the caller)."""
        try:
            status, body, _ = self.request("POST", "/job/", job)
        except (OSError, http.client.HTTPException):
            return None
        if 200 <= status < 300 and isinstance(body, dict) and "id" in body:
            return body["id"]
        return None

    def create_many(self, jobs: list[dict]) -> list[str | None]:
        return self.map(self.create, jobs)

    def delete(self, job_id: str) -> bool:
        try:
            return 200 <= self.request("DELETE", f"/job/{job_id}/")[0] < 300
        except (OSError, http.client.HTTPException):
            return False

    def delete_many(self, ids: list[str]) -> int:
        """How many of ids were deleted."""
        return sum(self.map(self.delete, ids))

    def job_ids(self, prefix: str = "") -> list[str]:
        """Ids of the jobs whose name starts with prefix (one GET /job/)."""
        status, body, _ = self.request("GET", "/job/")
        jobs = (body or {}).get("jobs") or {} if status == 200 else {}
        return [i for i, j in jobs.items() if str((j or {}).get("name", "")).startswith(prefix)]

    def close(self) -> None:
        self._pool.shutdown()
