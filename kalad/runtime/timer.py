"""The timer thread: sleeps until the earliest due time (or a wake-up), then ticks the service.

It never sleeps with ``time.sleep`` and never longer than ``max_wait``, and re-reads
the wall clock after every wait, so a clock step or a suspend is noticed within a
second. It does no I/O of its own: the service spawns and hands writes to the
committer, so a slow disk does not make runs late.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from kalad.core.ports import Clock

log = logging.getLogger(__name__)


class Timer:
    def __init__(
        self,
        tick: Callable[[], object],
        next_due: Callable[[], object],
        clock: Clock,
        *,
        max_wait: float = 1.0,
        on_beat: Callable[[], None] = lambda: None,
    ) -> None:
        self._tick = tick
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
                self._tick()
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
                    wait = min(wait, max((due - self._clock.now()).total_seconds(), 0.0))
                if wait > 0:
                    self._cond.wait(wait)
                self._woken = False
