"""Group commit: one writer applies queued changes to the store in order, many per transaction.

Every write of the daemon goes through one ``GroupCommitter``, so the store sees
changes in exactly the order the service decided them (a run record queued before
a delete can never resurrect the job). API mutations wait for their ticket (durable
before the response); run records do not wait. Under load, everything queued while
the previous transaction was syncing is committed together, so the fsync cost is
shared instead of paid per change. Changes nobody waits for (run records) are
also held back until ``LINGER`` seconds after the previous transaction began, so
hundreds of runs a second share a few transactions; a waiter (``Ticket.wait``,
``flush``, ``close``) cuts the wait short, so API writes are not delayed by it.

When the store is unavailable (``StoreUnavailable``: the server is down, the
connection cannot be re-opened) the committer is *degraded*: it keeps the failed
batch at the head of the queue, in order, and retries it with backoff until the
store answers again, so run records written meanwhile are not lost. It logs one
WARNING when it becomes degraded and one INFO when it recovers, and ``problem``
says what is wrong meanwhile (``None`` when healthy). An API write waits at most
``WRITE_WAIT`` seconds: if its change has not been committed by then it is
withdrawn from the queue (so it is never applied later) and the caller gets
``StoreUnavailable``, a 503. The queue is bounded (``MAX_QUEUED``); past the bound
the oldest changes are dropped, counted, and the count logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Sequence

from kalad.core.errors import StoreError, StoreUnavailable
from kalad.core.ports import Change, JobStore

log = logging.getLogger(__name__)

MAX_BATCH = 512
MAX_QUEUED = 100_000  # changes kept while the store is down; the oldest are dropped past it
WRITE_WAIT = 5.0  # seconds an API write waits for the store before it is refused
LINGER = 0.05  # seconds between transactions of changes nobody waits for: at 1,000 runs/s,
# 20 transactions a second rather than 100 cut kalad's CPU per run by about a tenth; 100 ms
# saved the committer another 0.005 ms a run, not seen in the fire rate in four full runs,
# for twice the records a crash may lose
BACKOFF = (0.5, 1.0, 2.0, 4.0)  # seconds between retries while degraded; the last repeats

_QUEUED, _IN_FLIGHT, _SETTLED = 0, 1, 2


class Ticket:
    """A submitted change; ``wait()`` (one waiter at a time) returns once it is durable
    or raises why not."""

    __slots__ = ("_done", "_error", "_committer", "_state", "_withdrawn", "_abandoned")

    def __init__(self, committer: "GroupCommitter | None" = None) -> None:
        # Made by its waiter (one at a time), if any: most changes (run records) are
        # never waited for, and an Event made and set per run costs 4 µs for nothing.
        self._done: threading.Event | None = None
        self._error: BaseException | None = None
        self._committer = committer
        self._state = _QUEUED
        self._withdrawn: StoreUnavailable | None = None  # fail, never retry, if not written
        self._abandoned = False  # its caller was told it failed

    def _settle(self, error: BaseException | None) -> None:
        self._error = error
        self._state = _SETTLED
        done = self._done  # read after the state is set: see wait
        if done is not None:
            done.set()

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the change is durable, at most ``timeout`` (default ``WRITE_WAIT``) s.

        When the time is up, the change is withdrawn: a queued one at once, one being
        written when that attempt ends (if it fails it is not retried), so a change
        refused here is never applied later: ``StoreUnavailable``. Only if that
        attempt itself hangs for another ``timeout`` is the outcome unknown, and the
        error says so.
        """
        timeout = WRITE_WAIT if timeout is None else timeout
        if self._state != _SETTLED:
            # The event is published before the state is read again, and ``_settle``
            # reads the event after setting the state: one of the two sees the other.
            done = self._done = threading.Event()
            if self._state != _SETTLED:
                self._wait(done, timeout)
        if self._error is not None:
            raise self._error

    def _wait(self, done: threading.Event, timeout: float) -> None:
        if self._committer is not None:
            self._committer._hurry()
        if not done.wait(timeout):
            if self._committer is not None:
                self._committer._withdraw(self, timeout)
            if not done.wait(timeout):
                self._abandoned = True
                raise StoreUnavailable(
                    f"the store did not confirm the change within {2 * timeout:g}s;"
                    " it may still be saved"
                )


class GroupCommitter:
    """Applies submitted changes on its own thread; ``threaded=False`` applies at once.

    The unthreaded mode is for tests on a fake clock, where every effect must be
    visible as soon as the call returns (and a failure fails at once, no retry).
    """

    def __init__(self, store: JobStore, *, threaded: bool = True,
                 max_queued: int = MAX_QUEUED, linger: float = LINGER) -> None:
        self._store = store
        self._max_queued = max_queued
        self._linger = linger
        self._last_commit = 0.0  # monotonic start of the previous transaction
        self._hurried = False  # someone waits for a queued change: no lingering
        self._queue: deque[tuple[Change, Ticket]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False
        self._in_flight = 0  # changes in the batch being written
        self._problem: str | None = None
        self._degraded_since = 0.0
        self._retry_at = 0.0
        self._failures = 0
        self._dropped = 0
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._loop, name="committer", daemon=True)
            self._thread.start()

    @property
    def problem(self) -> str | None:
        """Why the store is degraded (and how much waits for it), or ``None`` when healthy."""
        with self._cond:
            if self._problem is None:
                return None
            waiting = len(self._queue) + self._in_flight
            text = f"{self._problem}; {waiting} change{'s' if waiting != 1 else ''} waiting"
            if self._dropped:
                text += f", {self._dropped} dropped"
            return text

    def submit(self, change: Change) -> Ticket:
        ticket = Ticket(self)
        if self._thread is None:
            self._commit([(change, ticket)])
            return ticket
        with self._cond:
            if self._closed:
                ticket._settle(StoreUnavailable("the store is closed"))
                return ticket
            if len(self._queue) >= self._max_queued:
                self._drop_oldest()
            self._queue.append((change, ticket))
            if len(self._queue) == 1:  # else the writer is busy or lingering: it will look
                self._cond.notify_all()
        return ticket

    def flush(self) -> None:
        """Return once everything submitted so far has been committed (or failed)."""
        with self._cond:
            self._hurried = True
            self._cond.notify_all()
            while self._queue or self._busy:
                self._cond.wait(0.1)

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread.

        While degraded, one last attempt is made; what it cannot write is logged as lost.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    # -- internals ---------------------------------------------------------------------

    def _hurry(self) -> None:
        """A caller waits for a queued change: commit without lingering."""
        with self._cond:
            if not self._hurried:
                self._hurried = True
                self._cond.notify_all()

    def _withdraw(self, ticket: Ticket, waited: float) -> None:
        """Give up on ``ticket``: now if it is queued, else if its attempt fails."""
        with self._cond:
            if ticket._state == _SETTLED:
                return
            refusal = StoreUnavailable(
                f"the change was not saved: {self._problem or 'the store is too slow'}"
                f" (waited {waited:g}s)"
            )
            if ticket._state == _IN_FLIGHT:
                ticket._withdrawn = refusal
                return
            for i, (_, queued) in enumerate(self._queue):
                if queued is ticket:
                    del self._queue[i]
                    break
            ticket._settle(refusal)

    def _drop_oldest(self) -> None:
        # Called with the lock held.
        _, ticket = self._queue.popleft()
        ticket._settle(StoreUnavailable("the store's queue was full: change dropped"))
        if not self._dropped:
            log.warning("store queue full (%d changes): dropping the oldest until the store"
                        " is back", self._max_queued)
        self._dropped += 1

    def _loop(self) -> None:
        last_try = False  # closing while degraded: the one last attempt was made
        while True:
            with self._cond:
                while True:
                    if not self._queue:
                        if self._closed:
                            return
                        self._hurried = False  # nothing queued: no one waits for the queue
                        if self._problem is None:
                            self._cond.wait()
                            continue
                    if self._problem is not None and not self._closed:
                        delay = self._retry_at - time.monotonic()
                        if delay > 0:
                            self._cond.wait(delay)
                            continue
                    elif not (self._hurried or self._closed):
                        delay = self._last_commit + self._linger - time.monotonic()
                        if delay > 0:
                            self._cond.wait(delay)
                            continue
                    break
                batch: list[tuple[Change, Ticket]] = []
                if not self._queue:
                    pass  # degraded with nothing to write: probe whether the store is back
                elif self._closed and self._problem is not None and last_try:
                    lost = len(self._queue)
                    while self._queue:
                        self._queue.popleft()[1]._settle(StoreUnavailable(self._problem))
                    log.error("store still unavailable at shutdown: %d change%s not saved"
                              " (%s)", lost, "s" if lost != 1 else "", self._problem)
                    return
                else:
                    last_try = self._closed and self._problem is not None
                    batch = [self._queue.popleft()
                             for _ in range(min(len(self._queue), MAX_BATCH))]
                for _, ticket in batch:
                    ticket._state = _IN_FLIGHT
                self._last_commit = time.monotonic()
                self._busy = True
                self._in_flight = len(batch)
            retry, error = self._commit(batch) if batch else ([], self._probe())
            with self._cond:
                self._busy = False
                self._in_flight = 0
                if error is not None:
                    self._requeue(retry, error)
                elif self._problem is not None:
                    self._recovered(len(batch))
                self._cond.notify_all()

    def _probe(self) -> BaseException | None:
        """Why the store still cannot be reached, or None: an idle daemon learns it is back."""
        try:
            self._store.ping()
        except Exception as exc:  # StoreError, or a bug in a backend: still degraded
            return exc
        return None

    def _requeue(self, retry: list[tuple[Change, Ticket]], error: BaseException | None) -> None:
        # Called with the lock held: the batch goes back to the head, in order.
        kept = []
        for change, ticket in retry:
            if ticket._withdrawn is not None:  # its caller gave up: never write it later
                ticket._settle(ticket._withdrawn)
            else:
                ticket._state = _QUEUED
                kept.append((change, ticket))
        self._queue.extendleft(reversed(kept))
        while len(self._queue) > self._max_queued:
            self._drop_oldest()
        now = time.monotonic()
        if self._problem is None:
            self._degraded_since = now
            self._failures = 0
            log.warning("job store unavailable, keeping %d change%s queued and retrying"
                        " (jobs keep running from memory): %s",
                        len(self._queue), "s" if len(self._queue) != 1 else "", error)
        self._problem = str(error)
        self._retry_at = now + BACKOFF[min(self._failures, len(BACKOFF) - 1)]
        self._failures += 1

    def _recovered(self, written: int) -> None:
        # Called with the lock held.
        waiting = written + len(self._queue)
        log.info("job store available again after %.1fs; %d queued change%s written or"
                 " being written%s", time.monotonic() - self._degraded_since, waiting,
                 "s" if waiting != 1 else "",
                 f" ({self._dropped} were dropped: the queue was full)" if self._dropped else "")
        self._problem = None
        self._dropped = 0
        self._failures = 0

    def _commit(
        self, batch: Sequence[tuple[Change, Ticket]]
    ) -> tuple[list[tuple[Change, Ticket]], BaseException | None]:
        """Write ``batch``; return what must be retried (the store is unavailable) and why."""
        try:
            self._store.apply([change for change, _ in batch])
        except StoreUnavailable as exc:
            if self._thread is None:
                for _, ticket in batch:
                    ticket._settle(exc)
                return [], None
            return list(batch), exc
        except StoreError as exc:
            if len(batch) > 1:
                # One bad change must not fail its neighbours: retry them one by one.
                for i, item in enumerate(batch):
                    retry, error = self._commit([item])
                    if retry:
                        return retry + list(batch[i + 1:]), error
                return [], None
            log.error("store write failed: %s", exc)
            batch[0][1]._settle(exc)
            return [], None
        except Exception as exc:  # a bug in a backend must not kill the writer
            log.exception("store write failed")
            for _, ticket in batch:
                ticket._settle(StoreError(f"store write failed: {exc}"))
            return [], None
        for _, ticket in batch:
            if ticket._abandoned:
                log.warning("a change reported as failed (it took too long) was saved after all")
            ticket._settle(None)
        return [], None
