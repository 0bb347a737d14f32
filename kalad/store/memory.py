"""MemoryStore: the JobStore kept in dicts, for ``--jobdb memory`` and for tests.

It keeps the LMDB store's contract (one all-or-nothing ``apply``, runs ordered by
start time then id, retention on append, close) but nothing outlives the process.
Jobs and runs are immutable, so they are stored and handed out as they are.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from datetime import datetime
from typing import Sequence

from kalad.core.errors import StoreUnavailable
from kalad.core.job import Job
from kalad.core.ports import Change, Loaded
from kalad.core.runs import Run


def _run_order(run: Run) -> tuple[datetime, str]:
    return run.started_at, run.id


class MemoryStore:
    """JobStore in memory; every method takes one lock, so any thread may call it."""

    def __init__(self, keep_runs: int = 1000) -> None:
        if keep_runs < 0:
            raise ValueError("keep_runs must be 0 or more")
        self.keep_runs = keep_runs
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._runs: dict[str, list[Run]] = {}  # job id -> runs, oldest first
        self._closed = False

    def load(self) -> Loaded:
        with self._lock:
            self._check_open()
            return Loaded(jobs=list(self._jobs.values()))

    def apply(self, changes: Sequence[Change]) -> None:
        with self._lock:
            self._check_open()
            # Staged first and published at the end, so an error leaves nothing half-done.
            jobs: dict[str, Job | None] = {}
            runs: dict[str, list[Run]] = {}
            for change in changes:
                for job in change.put:
                    jobs[job.id] = job
                for run in change.runs:
                    kept = runs.get(run.job_id)
                    if kept is None:
                        kept = runs[run.job_id] = list(self._runs.get(run.job_id, ()))
                    self._append(kept, run)
                for job_id in change.delete:
                    jobs[job_id] = None
                    runs[job_id] = []
            for job_id, staged in jobs.items():
                if staged is None:
                    self._jobs.pop(job_id, None)
                else:
                    self._jobs[job_id] = staged
            for job_id, kept in runs.items():
                if kept:
                    self._runs[job_id] = kept
                else:
                    self._runs.pop(job_id, None)

    def list_runs(self, job_id: str, limit: int | None = None) -> list[Run]:
        with self._lock:
            self._check_open()
            kept = self._runs.get(job_id, [])
            if limit is None:
                return list(kept)
            return kept[-limit:] if limit > 0 else []

    def prune_runs(self, older_than: datetime) -> int:
        with self._lock:
            self._check_open()
            pruned = 0
            for job_id, kept in list(self._runs.items()):
                remaining = [run for run in kept if run.ended_at >= older_than]
                pruned += len(kept) - len(remaining)
                if remaining:
                    self._runs[job_id] = remaining
                else:
                    del self._runs[job_id]
            return pruned

    def ping(self) -> None:
        self._check_open()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._jobs.clear()
            self._runs.clear()

    def _append(self, kept: list[Run], run: Run) -> None:
        """Add ``run`` in order (replacing a run with the same start and id), keep the newest."""
        order = _run_order(run)
        index = bisect_left(kept, order, key=_run_order)
        if index < len(kept) and _run_order(kept[index]) == order:
            kept[index] = run
        else:
            kept.insert(index, run)
        if len(kept) > self.keep_runs:
            del kept[: len(kept) - self.keep_runs]

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("memory store is closed")
