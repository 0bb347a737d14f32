"""One daemon per store: the lock a backend holds for as long as it is open, and its keeper.

Two daemons writing the same tables would each schedule every job, and each
overwrite the other's records. So a store, when opened exclusive (the default; the
daemon and ``kalad copy-store`` always are), takes a lock that lives as long as it:

* LMDB: ``flock`` on ``kalad.lock`` in its directory (``kalad.store.lmdb``);
* SQLite: ``flock`` on a sidecar file ``<db file>.<prefix>lock``;
* PostgreSQL: ``pg_try_advisory_lock`` on a key derived from the prefix, held by a
  connection of its own; the server frees it when that connection ends, so a
  daemon killed with -9 frees it at once;
* MariaDB/MySQL: ``GET_LOCK(name, 0)`` likewise, on a connection of its own;
* Redis: a key ``<prefix>lock`` set with ``SET NX PX`` and refreshed every few
  seconds; a daemon that dies without releasing it (kill -9, host lost) holds it
  until it expires (``LOCK_TTL``), after which another daemon may take it over.

A second opener is refused at once with ``StoreError`` naming the holder. The
``Keeper`` thread re-checks a server lock every ``CHECK_EVERY`` seconds and takes it
again after a lost connection (logging an INFO when it is lost and when it is back,
the outage itself being the committer's WARNING; an ERROR if another daemon took it
meanwhile).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
from typing import Callable

from kalad.core.errors import StoreError

log = logging.getLogger(__name__)

CHECK_EVERY = 5.0  # seconds between checks of a server-side lock
LOCK_TTL = 15.0  # seconds a Redis lock outlives its last refresh
LOCK_WAIT = 2.0  # seconds an opener retries a held server lock (a killed holder's
# connection may take a moment to be noticed by the server)


def holder_name() -> str:
    """Who holds the lock, as shown to a refused second daemon: ``pid@host``."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


def in_use(kind: str, where: str, prefix: str, holder: str) -> StoreError:
    return StoreError(
        f"{kind} store {where} (prefix {prefix}) is in use by another kalad"
        f" ({holder or 'holder unknown'}): stop it first, or use another prefix"
    )


class Keeper:
    """Calls ``check`` every ``every`` seconds on its own thread until ``stop``.

    ``check`` returns ``None`` when the lock is held, else why not; the keeper logs
    the changes (lost, regained), not every check.
    """

    def __init__(self, name: str, check: Callable[[], str | None],
                 every: float | None = None) -> None:
        self._check = check
        self._every = CHECK_EVERY if every is None else every
        self._stop = threading.Event()
        self.problem: str | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            try:
                problem = self._check()
            except Exception as exc:  # a driver surprise must not end the checks
                problem = f"{type(exc).__name__}: {exc}"
            # INFO: a lock lost with its connection goes with an outage the committer
            # reports; another daemon taking it is logged as an ERROR by ``check``.
            if problem and not self.problem:
                log.info("store lock: %s; retrying every %gs", problem, self._every)
            elif not problem and self.problem:
                log.info("store lock held again")
            self.problem = problem


def flock_sidecar(path: str, kind: str, where: str, prefix: str) -> int:
    """Create (0600) and ``flock`` the file ``path``; return its descriptor.

    ``StoreError`` naming the holder if another process holds it.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot open lock file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder_name()}\n".encode(), 0)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        os.close(fd)
        raise in_use(kind, where, prefix, holder) from None
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"cannot lock {path}: {exc.strerror}") from None
    return fd
