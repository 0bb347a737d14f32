"""The timer's heap: which job is due next, for up to millions of jobs.

One entry per job: ``add`` replaces a job's entry and ``cancel`` removes it, both
lazily (O(log n) and O(1)); superseded heap entries are skipped when they reach the
top, and the heap is rebuilt once they make up more than half of it. Due times are
kept as integer microseconds since the epoch, which compare fast and convert back
exactly; they come back as aware UTC datetimes. Not thread-safe: the service holds
its lock around every call.
"""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta, timezone
from typing import Iterable

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_SEQUENCES = 1 << 64  # more adds than any process will ever make


def _to_us(t: datetime) -> int:
    return (t - _EPOCH) // _MICROSECOND


def _from_key(key: int) -> datetime:
    return _EPOCH + _MICROSECOND * (key // _SEQUENCES)


class Timeline:
    """Jobs by due time; the same due time pops in the order the jobs were added."""

    def __init__(self) -> None:
        # A heap key is one int, due µs * _SEQUENCES + sequence: smaller and faster
        # to compare than a tuple, unique, and FIFO among equal due times.
        self._heap: list[int] = []
        self._key_of: dict[str, int] = {}  # live job id -> its key
        self._job_of: dict[int, str] = {}  # live key -> its job id; other keys are stale
        self._sequence = 0

    def add(self, job_id: str, due_at: datetime) -> None:
        """Make ``job_id`` due at ``due_at`` (aware), replacing any earlier entry."""
        self._sequence += 1
        key = _to_us(due_at) * _SEQUENCES + self._sequence
        old = self._key_of.get(job_id)
        if old is not None:
            del self._job_of[old]
        self._key_of[job_id] = key
        self._job_of[key] = job_id
        heapq.heappush(self._heap, key)
        self._compact_if_stale()

    def add_many(self, entries: Iterable[tuple[str, datetime]]) -> None:
        """``add`` for each (job id, due time), in order; one O(n) heapify, not n pushes.

        Jobs on one schedule are due at the same time (often the same object, see
        the store's codec): each distinct time is converted once.
        """
        heap, key_of, job_of = self._heap, self._key_of, self._job_of
        scaled: dict[datetime, int] = {}
        for job_id, due_at in entries:
            self._sequence += 1
            base = scaled.get(due_at)
            if base is None:
                base = scaled[due_at] = _to_us(due_at) * _SEQUENCES
            key = base + self._sequence
            old = key_of.get(job_id)
            if old is not None:
                del job_of[old]
            key_of[job_id] = key
            job_of[key] = job_id
            heap.append(key)
        heapq.heapify(heap)
        self._compact_if_stale()

    def cancel(self, job_id: str) -> None:
        """Forget ``job_id``; nothing happens if it is not in the timeline."""
        key = self._key_of.pop(job_id, None)
        if key is not None:
            del self._job_of[key]
            self._compact_if_stale()

    def pop_due(self, now: datetime, limit: int | None = None) -> list[tuple[str, datetime]]:
        """Remove and return the jobs due at or before ``now``, earliest first: all of
        them, or the first ``limit``."""
        bound = (_to_us(now) + 1) * _SEQUENCES
        heap, job_of = self._heap, self._job_of
        due: list[tuple[str, datetime]] = []
        while heap and heap[0] < bound and (limit is None or len(due) < limit):
            key = heapq.heappop(heap)
            job_id = job_of.pop(key, None)
            if job_id is not None:
                del self._key_of[job_id]
                due.append((job_id, _from_key(key)))
        return due

    def next_due(self) -> datetime | None:
        """The earliest due time, None when empty."""
        heap = self._heap
        while heap and heap[0] not in self._job_of:
            heapq.heappop(heap)
        return _from_key(heap[0]) if heap else None

    def due_at(self, job_id: str) -> datetime | None:
        key = self._key_of.get(job_id)
        return None if key is None else _from_key(key)

    def __len__(self) -> int:
        return len(self._key_of)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._key_of

    def _compact_if_stale(self) -> None:
        if len(self._heap) > 2 * len(self._job_of):
            self._heap = list(self._job_of)
            heapq.heapify(self._heap)
