"""Forking mode (``kalad serve --daemon``): detach with python-daemon, hold a pid file,
and make the launching process wait until the daemon is ready or has failed.

python-daemon's ``DaemonContext`` does the detaching (fork, ``setsid``, fork, chdir
``/``, close every other descriptor, standard streams to ``/dev/null``). Its first
fork's parent would ``_exit(0)`` at once; an at-fork hook in that parent instead
reads a pipe from the daemon and exits 0 on ``ready`` or 1 with the daemon's error,
so an init script knows the daemon really started. The hook is a no-op in every
other process. Nothing here opens the store, a socket or a log file: the caller
does, after ``detach`` returns in the daemon.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys

import daemon

READY = "ready"


class DetachError(Exception):
    """Detaching failed in the launching process itself; the message is one line."""


class PidFileError(Exception):
    """Another live kalad holds the pid file."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PidFile:
    """A pid file held under ``flock`` for the daemon's life, removed at exit.

    A file that is locked, or names a live process, means another instance: entering
    raises ``PidFileError``. One naming a process that is gone is stale: it is
    replaced and ``stale`` says what it held.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.stale: str | None = None
        self._fd: int | None = None

    def __enter__(self) -> "PidFile":
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o755, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            held = os.read(fd, 64).decode(errors="replace").strip()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise PidFileError(f"already running as pid {held or '?'} "
                                   f"(pid file {self.path} is locked)") from None
            if held:
                if held.isdigit() and int(held) != os.getpid() and _alive(int(held)):
                    raise PidFileError(f"already running as pid {held} (pid file {self.path})")
                self.stale = held
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc_info) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still locked: no other instance owns it yet
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None


class Detached:
    """The daemon's end of the launcher's pipe, and its ``DaemonContext``."""

    def __init__(self, context: daemon.DaemonContext, pidfile: PidFile, pipe: int) -> None:
        self.context = context
        self.pidfile = pidfile
        self._pipe: int | None = pipe

    def _send(self, line: str) -> None:
        if self._pipe is not None:
            try:
                os.write(self._pipe, (line.replace("\n", " ") + "\n").encode())
            except OSError:
                pass  # the launcher is gone: nobody to tell

    def warn(self, message: str) -> None:
        self._send(f"warning: {message}")

    def ready(self) -> None:
        """Let the launcher exit 0."""
        self._send(READY)
        self._hang_up()

    def fail(self, message: str) -> None:
        """Let the launcher exit 1 with ``kalad: error: message``."""
        self._send(f"error: {message}")
        self._hang_up()

    def _hang_up(self) -> None:
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None

    def close(self) -> None:
        """At the daemon's exit: tell a launcher still waiting, remove the pid file."""
        self._hang_up()
        self.context.close()


def detach(pidfile_path: str, *, keep_stderr: bool) -> Detached:
    """Become the daemon; return only in it. The launcher exits from inside this call.

    ``keep_stderr`` keeps the launcher's standard error as the daemon's (the journal
    stream, or the fallback when there is no syslog); otherwise it is ``/dev/null``.
    Raises ``DetachError`` only in the launcher, when detaching failed before a fork.
    """
    launcher = os.getpid()
    r, w = os.pipe()
    pidfile = PidFile(os.path.abspath(pidfile_path))
    old_umask = os.umask(0o022)
    os.umask(old_umask)
    context = daemon.DaemonContext(
        detach_process=True,
        working_directory="/",
        umask=old_umask,
        pidfile=pidfile,
        files_preserve=[r, w, sys.stdout, sys.stderr],
        stderr=sys.stderr if keep_stderr else None,
        signal_map={},  # the daemon installs its own handlers (SignalQueue)
    )

    def launcher_waits() -> None:
        if os.getpid() == launcher:
            os.close(w)
            os._exit(_wait_for_daemon(r))

    os.register_at_fork(after_in_parent=launcher_waits)
    try:
        context.open()
    except Exception as exc:
        message = str(exc) or type(exc).__name__
        if os.getpid() == launcher:
            os.close(r)
            os.close(w)
            raise DetachError(message) from None
        os.write(w, f"error: {message}\n".encode())
        os._exit(1)
    os.close(r)
    detached = Detached(context, pidfile, w)
    if pidfile.stale:
        detached.warn(f"replaced stale pid file {pidfile.path} (pid {pidfile.stale} is not running)")
    return detached


def _wait_for_daemon(r: int) -> int:
    """In the launcher: relay the daemon's warnings; 0 once it is ready, else 1."""
    buffered = b""
    while True:
        try:
            chunk = os.read(r, 4096)
        except InterruptedError:
            continue
        if not chunk:
            break
        buffered += chunk
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            text = line.decode(errors="replace")
            if text == READY:
                return 0
            if text.startswith("error: "):
                print(f"kalad: {text}", file=sys.stderr, flush=True)
                return 1
            print(f"kalad: {text}", file=sys.stderr, flush=True)
    print("kalad: error: the daemon exited before it was ready; see its log",
          file=sys.stderr, flush=True)
    return 1
