"""Run the real ``kalad serve`` as a child process and talk to it over real HTTP.

Readiness comes from ``READY=1`` on a notify socket the test listens on, as under
systemd; nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Daemon:
    def __init__(self, state_dir: Path, *extra: str, port: int | None = None) -> None:
        self.state_dir = state_dir
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.log_path = state_dir / "kalad.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self, timeout: float = 20.0) -> "Daemon":
        sock_dir = tempfile.mkdtemp(prefix="kalad-notify-")
        sock_path = os.path.join(sock_dir, "notify")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(sock_path)
        listener.settimeout(0.2)
        env = dict(os.environ, NOTIFY_SOCKET=sock_path, PYTHONUNBUFFERED="1")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kalad.cli.kalad", "serve", "--port", str(self.port),
             "--lmdb-path", str(self.state_dir / "lmdb"), "--stop-grace", "2", *self.extra],
            stdout=log, stderr=log, env=env,
        )
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"kalad exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    message = listener.recv(4096).decode()
                except socket.timeout:
                    continue
                if "READY=1" in message.split("\n"):
                    return self
            raise AssertionError(f"kalad not ready within {timeout}s:\n{self.log()}")
        finally:
            listener.close()
            os.unlink(sock_path)
            os.rmdir(sock_dir)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def request(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw else None

    def create(self, **job) -> str:
        status, body = self.request("POST", "/job/", job)
        assert status == 201, body
        return body["id"]

    def runs(self, job_id: str) -> list[dict]:
        status, body = self.request("GET", f"/job/{job_id}/runs/")
        assert status == 200, body
        return body["runs"]
