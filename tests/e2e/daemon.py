"""Run the real ``kalad serve`` as a child process and talk to it over real HTTP.

Readiness comes from ``READY=1`` on a notify socket the test listens on, as under
systemd; nothing sleeps to synchronise.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _close_notify(listener: socket.socket, sock_path: str) -> None:
    listener.close()
    os.unlink(sock_path)
    os.rmdir(os.path.dirname(sock_path))


class Daemon:
    def __init__(self, state_dir: Path, *extra: str, port: int | None = None) -> None:
        self.state_dir = state_dir
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.log_path = state_dir / "kalad.log"
        self.statuses: list[str] = []  # STATUS= values, with start(watch_status=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self, timeout: float = 20.0, *, watch_status: bool = False) -> "Daemon":
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
        watching = False
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"kalad exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    message = listener.recv(4096).decode()
                except socket.timeout:
                    continue
                self._note(message)
                if "READY=1" in message.split("\n"):
                    if watch_status:  # keep reading STATUS= until the daemon exits
                        threading.Thread(target=self._watch, args=(listener, sock_path),
                                         daemon=True).start()
                        watching = True
                    return self
            raise AssertionError(f"kalad not ready within {timeout}s:\n{self.log()}")
        finally:
            if not watching:
                _close_notify(listener, sock_path)

    def _note(self, message: str) -> None:
        for line in message.split("\n"):
            if line.startswith("STATUS="):
                self.statuses.append(line[len("STATUS="):])

    def _watch(self, listener: socket.socket, sock_path: str) -> None:
        try:
            while self.proc is not None and self.proc.poll() is None:
                try:
                    self._note(listener.recv(4096).decode())
                except socket.timeout:
                    continue
        finally:
            _close_notify(listener, sock_path)

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


def create_until_killed(daemon: Daemon, tag: str, seconds: float, *, clients: int = 8,
                        **job: object) -> set[str]:
    """POST jobs from ``clients`` threads, kill -9 the daemon after ``seconds``.

    Returns the ids of the jobs that got a 201: the ones the daemon acknowledged.
    """
    acknowledged: set[str] = set()
    stop = threading.Event()
    lock = threading.Lock()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                status, body = daemon.request(
                    "POST", "/job/", {"name": f"{tag}-c{n}-{i}", "command": "true", **job})
            except (OSError, http.client.HTTPException):
                return  # the daemon died under us: this one was not acknowledged
            if status == 201:
                with lock:
                    acknowledged.add(body["id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    daemon.kill()
    stop.set()
    for t in threads:
        t.join()
    return acknowledged
