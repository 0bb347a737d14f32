"""Logging set-up: where log lines go and how each is framed.

Three targets. Under systemd, standard error is the journal's stream
(``$JOURNAL_STREAM`` names its device and inode): every line gets an sd-daemon
``<N>`` priority prefix, so journald keeps the level, and no timestamp, since
journald adds one. A forking daemon without systemd logs to syslog. Anything else
(a terminal, a file, a test) gets plain lines with a timestamp.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import stat
import sys
import threading
import time
from typing import TextIO

SYSLOG_SOCKET = "/dev/log"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
BATCH_EVERY = 0.02  # seconds the writer rests after each write: under load, one write per rest


def priority(levelno: int) -> int:
    """The syslog priority of a logging level, as sd-daemon(3) prefixes want it."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """``<N>name: message``, the prefix repeated on every line of a multi-line record."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def is_journal_stream(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (stderr by default) is the one ``$JOURNAL_STREAM`` names."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):
        return False


def choose_target(target: str, daemon: bool) -> str:
    """Resolve the ``[log] target`` setting: ``journal``, ``syslog`` or ``stderr``.

    ``auto`` means the journal when stderr is its stream, syslog in ``--daemon``
    mode when ``/dev/log`` exists, else stderr. Forced ``syslog`` without the
    socket also falls back to stderr; ``describe_fallback`` says why.
    """
    if target == "stderr":
        return "journal" if is_journal_stream() else "stderr"
    if target == "auto" and is_journal_stream():
        return "journal"
    if target == "syslog" or (target == "auto" and daemon):
        return "syslog" if syslog_available() else "stderr"
    return "stderr"


def syslog_available() -> bool:
    try:
        return stat.S_ISSOCK(os.stat(SYSLOG_SOCKET).st_mode)
    except OSError:
        return False


def describe_fallback(target: str, daemon: bool, chosen: str) -> str | None:
    """The warning to give when syslog was wanted but is not there, else None."""
    if chosen == "stderr" and (target == "syslog" or (target == "auto" and daemon)):
        return (f"no syslog socket at {SYSLOG_SOCKET}; logging to the standard error "
                "kalad was started with")
    return None


def level_of(config) -> int:
    return logging.DEBUG if config.verbose else LEVELS[config.level]


class PlainFormatter(logging.Formatter):
    """``PLAIN_FORMAT``, its timestamp's date and time formatted once a second: the
    writer formats two lines per job run, and ``strftime`` was half the cost of one."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)
        self._stamp: tuple[int, str] = (-1, "")  # (second, its text), replaced whole

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        stamp = self._stamp
        if stamp[0] != second:
            stamp = self._stamp = (second, time.strftime(self.default_time_format,
                                                         self.converter(second)))
        return f"{stamp[1]},{int(record.msecs):03d}"


class _Handoff(logging.handlers.QueueHandler):
    """Queue the record as it is: the listener, in this process, formats it."""

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: the queue is thread-safe, and the timer logs every start.
        if self.filters and not self.filter(record):
            return False
        self.queue.put_nowait(record)
        return True


class _Writer:
    """The thread that formats queued records and writes them, everything queued at once.

    A job run logs two lines; written one by one, at hundreds of runs a second each
    line costs a wake-up of this thread and a write(2). Instead the writer takes all
    that is queued, writes it with one call, then rests ``BATCH_EVERY`` seconds while
    more gathers: a lone line goes out at once, a busy second in a few dozen writes.
    Syslog still gets a datagram per record.
    """

    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler
        self.records: queue.SimpleQueue = queue.SimpleQueue()
        self._stream = handler.stream if isinstance(handler, logging.StreamHandler) else None
        self._thread = threading.Thread(target=self._run, name="log writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        self.records.put(None)
        self._thread.join()
        self.handler.close()

    def flush(self, timeout: float) -> None:
        """Return once what is queued is written, or after ``timeout`` seconds."""
        written = threading.Event()
        self.records.put(written)
        written.wait(timeout)

    def _run(self) -> None:
        while True:
            batch = [self.records.get()]
            while batch[-1] is not None:
                try:
                    batch.append(self.records.get_nowait())
                except queue.Empty:
                    break
            records = [item for item in batch if isinstance(item, logging.LogRecord)]
            if self._stream is None:
                for record in records:
                    self.handler.handle(record)
            elif records:
                self._write(records)
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if batch[-1] is None:
                return
            time.sleep(BATCH_EVERY)

    def _write(self, records: list[logging.LogRecord]) -> None:
        lines = []
        for record in records:
            try:
                lines.append(self.handler.format(record) + "\n")
            except Exception:  # a bad format string: report it as logging does, go on
                self.handler.handleError(record)
        try:
            self._stream.write("".join(lines))
            self._stream.flush()
        except Exception:
            self.handler.handleError(records[-1])


_writer: _Writer | None = None


def setup(level: int = logging.INFO, target: str = "stderr") -> None:
    """Send every record of ``level`` and above to ``target`` (see ``choose_target``).

    Threads that log only queue the record; one writer thread formats and writes
    it. The timer and the supervisor log every job start and end, and must not wait
    on a slow journal or on each other for the handler's lock. ``stop`` (also run at
    exit) writes what is still queued.
    """
    global _writer
    handler: logging.Handler
    if target == "syslog":
        handler = logging.handlers.SysLogHandler(
            address=SYSLOG_SOCKET, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        handler.setFormatter(logging.Formatter("kalad[%(process)d]: %(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JournalFormatter() if target == "journal" else PlainFormatter())
    # No caller lookup (a walk up the stack per record) and no thread or process
    # fields, which no format here uses: the logging HOWTO's "Optimization" settings.
    logging._srcfile = None
    logging.logThreads = logging.logMultiprocessing = False
    logging.logProcesses = target == "syslog"
    stop()
    _writer = _Writer(handler)
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = [_Handoff(_writer.records)]
    root.setLevel(level)


def flush(timeout: float = 1.0) -> None:
    """Return once every record logged so far is written (at most ``timeout`` s)."""
    if _writer is not None:
        _writer.flush(timeout)


def stop() -> None:
    """Write every queued record and stop the writer (a no-op when none runs)."""
    global _writer
    if _writer is not None:
        writer, _writer = _writer, None
        writer.stop()


atexit.register(stop)


def set_level(level: int) -> None:
    logging.getLogger().setLevel(level)
