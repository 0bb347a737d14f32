"""Start and stop a real kalad: LMDB store in a temp dir, free port, NOTIFY_SOCKET readiness.

As under systemd (Type=notify), kalad is ready when it sends READY=1 on the notify socket
we listen on: the store is open, every job is loaded and the API is bound. That instant is
what ``start`` times, so restart-to-ready with N jobs is measured the way systemd sees it.
The daemon's stderr goes to a log file in the results dir.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.client import Api
from bench.common import PROJECT_ROOT, disk_bytes, rss_kib


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Kalad:
    """One kalad with its own state dir; ``start``/``stop`` may be repeated (a restart)."""

    def __init__(self, log_path: Path, *extra: str):
        self.state_dir = Path(tempfile.mkdtemp(prefix="kalad-bench-"))
        self.lmdb = self.state_dir / "lmdb"
        self.port = free_port()
        self.extra = extra
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def api(self, concurrency: int = 8, timeout: float = 30.0) -> Api:
        return Api(self.port, concurrency, timeout)

    def start(self, timeout: float = 600.0) -> float:
        """Spawn kalad serve; return seconds from spawn to READY=1."""
        sock_dir = tempfile.mkdtemp(prefix="kalad-bench-notify-")
        sock_path = os.path.join(sock_dir, "notify")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(sock_path)
        listener.settimeout(0.05)
        env = dict(os.environ, NOTIFY_SOCKET=sock_path, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(" ".join(["\n==== bench: kalad serve --port", str(self.port), "--lmdb-path",
                                str(self.lmdb), *self.extra]).encode() + b"\n")
            log.flush()
            t0 = time.monotonic()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kalad.cli.kalad", "serve", "--port", str(self.port),
                 "--lmdb-path", str(self.lmdb), "--stop-grace", "2", *self.extra],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=str(PROJECT_ROOT))
        deadline = t0 + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"kalad exited with {self.proc.returncode}; see {self.log_path}")
                try:
                    message = listener.recv(4096).decode(errors="replace")
                except socket.timeout:
                    continue
                if "READY=1" in message.split("\n"):
                    return time.monotonic() - t0
            self.stop()
            raise RuntimeError(f"kalad not ready within {timeout}s; see {self.log_path}")
        finally:
            listener.close()
            shutil.rmtree(sock_dir, ignore_errors=True)

    def stop(self, timeout: float = 120.0) -> float | None:
        """SIGTERM our kalad (by PID), SIGKILL after timeout; seconds it took to exit."""
        if not self.proc or self.proc.poll() is not None:
            return None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        return time.monotonic() - t0

    def rss_kib(self) -> int | None:
        return rss_kib(self.pid)

    def store_bytes(self) -> tuple[int, int]:
        """(allocated, apparent) bytes of the LMDB dir."""
        return disk_bytes(self.lmdb)

    def cleanup(self) -> None:
        self.stop(15)
        shutil.rmtree(self.state_dir, ignore_errors=True)
