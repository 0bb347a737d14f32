"""Signal handlers that only enqueue: the main thread reads the queue and acts."""

from __future__ import annotations

import queue
import signal


class SignalQueue:
    """Signals received, in order; ``post`` adds a wake-up of the program's own."""

    def __init__(self, *signums: int) -> None:
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        for signum in signums:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame) -> None:
        self._queue.put(signum)  # SimpleQueue.put is reentrant: safe in a handler

    def post(self, value: int) -> None:
        """Wake the reader with ``value`` (not a signal number: use a negative one)."""
        self._queue.put(value)

    def get(self, timeout: float | None = None) -> int | None:
        """The next signal received, or None after ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
