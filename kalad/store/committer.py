"""Group commit: one writer applies queued changes to the store in order, many per transaction.

Every write of the daemon goes through one ``GroupCommitter``, so the store sees
changes in exactly the order the service decided them (a run record queued before
a delete can never resurrect the job). API mutations wait for their ticket (durable
before the response); run records do not wait. Under load, everything queued while
the previous transaction was syncing is committed together, so the fsync cost is
shared instead of paid per change.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Sequence

from kalad.core.errors import StoreError, StoreUnavailable
from kalad.core.ports import Change, JobStore

log = logging.getLogger(__name__)

MAX_BATCH = 512


class Ticket:
    """A submitted change; ``wait()`` returns once it is durable or raises why not."""

    __slots__ = ("_done", "_error")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._error: BaseException | None = None

    def _settle(self, error: BaseException | None) -> None:
        self._error = error
        self._done.set()

    def wait(self, timeout: float | None = None) -> None:
        if not self._done.wait(timeout):
            raise StoreUnavailable("the store did not commit in time")
        if self._error is not None:
            raise self._error


class GroupCommitter:
    """Applies submitted changes on its own thread; ``threaded=False`` applies at once.

    The unthreaded mode is for tests on a fake clock, where every effect must be
    visible as soon as the call returns.
    """

    def __init__(self, store: JobStore, *, threaded: bool = True) -> None:
        self._store = store
        self._queue: deque[tuple[Change, Ticket]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._loop, name="committer", daemon=True)
            self._thread.start()

    def submit(self, change: Change) -> Ticket:
        ticket = Ticket()
        if self._thread is None:
            self._commit([(change, ticket)])
            return ticket
        with self._cond:
            if self._closed:
                ticket._settle(StoreUnavailable("the store is closed"))
                return ticket
            self._queue.append((change, ticket))
            self._cond.notify_all()
        return ticket

    def flush(self) -> None:
        """Return once everything submitted so far has been committed (or failed)."""
        with self._cond:
            while self._queue or self._busy:
                self._cond.wait(0.1)

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
                self._busy = True
            try:
                self._commit(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _commit(self, batch: Sequence[tuple[Change, Ticket]]) -> None:
        try:
            self._store.apply([change for change, _ in batch])
        except StoreError as exc:
            if len(batch) > 1:
                # One bad change must not fail its neighbours: retry them one by one.
                for item in batch:
                    self._commit([item])
                return
            log.error("store write failed: %s", exc)
            batch[0][1]._settle(exc)
            return
        except Exception as exc:  # a bug in a backend must not kill the writer
            log.exception("store write failed")
            for _, ticket in batch:
                ticket._settle(StoreError(f"store write failed: {exc}"))
            return
        for _, ticket in batch:
            ticket._settle(None)
