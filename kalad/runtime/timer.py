"""The timer threads: the leader sleeps until the earliest due time (or a wake-up), then ticks.

The waiting thread, the leader, waits on a condition (wakeable), never longer than
``max_wait``, and re-reads the wall clock after every wait, so a clock step or a
suspend is noticed within a second. It wakes ``lead`` before the earliest due time
and passes the lead to the tick, so the due jobs' bookkeeping and process set-up are
done ahead and each process starts on its instant (the launcher waits the last
moment). Store writes go to the committer, so a slow disk does not make runs late.

Starting a process blocks its thread until the child has exec'd, and on a busy
machine the child waits for a CPU first: a millisecond or more, longer than the gap
between jobs at a thousand a second. So the leader takes at most ``batch`` due jobs
per tick and, when they are already more than ``behind`` late, hands the waiting to
another thread (a follower) before it starts them: starts then overlap instead of
queueing behind one another. On time, one thread does it all, as a hand-over costs a
wake-up per job. A leader stuck starting a job for ``max_wait`` (an executable on a
hung network mount) is replaced by a follower; the systemd watchdog, fed by the
leader, restarts kalad only when every thread is stuck.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Callable

from kalad.core.ports import Clock
from kalad.runtime.clock import precise_sleeps

log = logging.getLogger(__name__)


class Timer:
    def __init__(
        self,
        tick: Callable[..., object],
        next_due: Callable[[], object],
        clock: Clock,
        *,
        max_wait: float = 1.0,
        lead: float = 0.0,
        on_beat: Callable[[], None] = lambda: None,
        threads: int = 1,
        batch: int | None = None,
        behind: float = 0.0,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self._tick = tick
        self._lead = timedelta(seconds=lead)
        self._next_due = next_due
        self._clock = clock
        self._max_wait = max_wait
        self._on_beat = on_beat
        self._batch = batch
        self._behind = timedelta(seconds=behind)
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the leader waits here for the due time
        self._idle = threading.Condition(lock)  # followers wait here to lead
        self._leading = False  # a thread is the leader
        self._term = 0  # counts leaders: one stuck starting a job finds it was replaced
        self._starting_since: float | None = None  # the leader starts jobs, not handed over
        self._woken = False
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._loop, name="timer" if threads == 1 else f"timer-{i}",
                             daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """Re-check the earliest due time now (it may have moved earlier)."""
        with self._cond:
            self._woken = True
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            self._idle.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join()

    def _loop(self) -> None:
        precise_sleeps()  # a leader waits here for its jobs' instants
        while True:
            with self._cond:
                while self._leading and not self._stopping and not self._leader_stuck():
                    self._idle.wait(self._max_wait)
                if self._stopping:
                    return
                if self._leading:
                    log.warning("a job has been starting for over %gs; another timer thread "
                                "takes over", self._max_wait)
                self._leading = True
                self._starting_since = None
                self._term += 1
                term = self._term
            self._take_lead(term)

    def _leader_stuck(self) -> bool:
        since = self._starting_since
        return since is not None and self._clock.monotonic() - since >= self._max_wait

    def _take_lead(self, term: int) -> None:
        """Tick and wait, as the leader, until a tick hands over, a follower takes over
        from a stuck start, or kalad stops."""
        handed = False

        def handoff(late_by: timedelta) -> None:
            nonlocal handed
            with self._cond:
                if late_by > self._behind and len(self._threads) > 1:
                    handed = True
                    self._leading = False
                    self._idle.notify()
                else:
                    self._starting_since = self._clock.monotonic()

        while True:
            try:
                self._tick(self._lead, self._batch, handoff)
            except Exception:  # one bad job must not stop every schedule
                log.exception("timer tick failed")
            if handed:
                return
            with self._cond:
                if self._term != term:
                    return  # replaced while stuck in a start: follow now
                self._starting_since = None
            self._on_beat()
            # Ask for the next due time before taking our condition: callers of
            # ``wake`` may hold the service's lock, so ours must stay a leaf lock.
            due = self._next_due()
            with self._cond:
                if self._stopping:
                    self._leading = False
                    return
                if self._woken:
                    self._woken = False
                    continue
                wait = self._max_wait
                if due is not None:
                    wait = min(wait, max((due - self._clock.now() - self._lead).total_seconds(),
                                         0.0))
                if wait > 0:
                    self._cond.wait(wait)
                self._woken = False
