"""The timer thread: sleeps until the earliest due time (or a wake-up), then ticks the service.

Between ticks it waits on a condition (wakeable), never longer than ``max_wait``,
and re-reads the wall clock after every wait, so a clock step or a suspend is
noticed within a second. It wakes ``lead`` before the earliest due time and passes
the lead to the tick, so the due jobs' bookkeeping and process set-up are done
ahead and each process starts on its instant (the launcher waits the last moment).
The due jobs are started on this thread (the spawn releases the GIL); store writes
go to the committer, so a slow disk does not make runs late. An executable on a
hung network mount would stall the tick until its exec returns; the systemd
watchdog, fed from here, then restarts kalad.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Callable

from kalad.core.ports import Clock

log = logging.getLogger(__name__)


class Timer:
    def __init__(
        self,
        tick: Callable[[timedelta], object],
        next_due: Callable[[], object],
        clock: Clock,
        *,
        max_wait: float = 1.0,
        lead: float = 0.0,
        on_beat: Callable[[], None] = lambda: None,
    ) -> None:
        self._tick = tick
        self._lead = lead
        self._next_due = next_due
        self._clock = clock
        self._max_wait = max_wait
        self._on_beat = on_beat
        self._cond = threading.Condition()
        self._woken = False
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="timer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Re-check the earliest due time now (it may have moved earlier)."""
        with self._cond:
            self._woken = True
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while True:
            try:
                self._tick(timedelta(seconds=self._lead))
            except Exception:  # one bad job must not stop every schedule
                log.exception("timer tick failed")
            self._on_beat()
            # Ask for the next due time before taking our condition: callers of
            # ``wake`` may hold the service's lock, so ours must stay a leaf lock.
            due = self._next_due()
            with self._cond:
                if self._stopping:
                    return
                if self._woken:
                    self._woken = False
                    continue
                wait = self._max_wait
                if due is not None:
                    wait = min(wait, max((due - self._clock.now()).total_seconds() - self._lead,
                                         0.0))
                if wait > 0:
                    self._cond.wait(wait)
                self._woken = False
