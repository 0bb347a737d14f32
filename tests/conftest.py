"""Shared test parts: a fake clock, a launcher the test finishes by hand, service builders.

The fake clock and the manual launcher are for scheduling rules only, where the
test must decide exactly when time passes and when a run ends; everything else
uses real processes, real stores and a real daemon.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest

from kalad.core.job import Job
from kalad.core.ports import Attempt
from kalad.core.runs import AttemptOutcome
from kalad.service import Service
from kalad.store.committer import GroupCommitter
from kalad.store.lmdb import LmdbStore
from kalad.store.memory import MemoryStore

T0 = datetime(2030, 1, 1, 0, 0, 0, tzinfo=timezone.utc)


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        return self._now

    def set(self, when: datetime) -> None:
        self._mono += (when - self._now).total_seconds()
        self._now = when


class ManualLauncher:
    """Records each attempt; the test ends it with ``finish`` (exit status, output)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.pending: list[tuple[Attempt, Callable[[AttemptOutcome], None], datetime]] = []
        self.started: list[Attempt] = []

    def launch(self, attempt: Attempt, done: Callable[[AttemptOutcome], None]) -> None:
        """Starts it now, or at ``attempt.start_at`` if that is later (as the real ones)."""
        self.started.append(attempt)
        started = self.clock.now()
        if attempt.start_at is not None and attempt.start_at > started:
            started = attempt.start_at
        self.pending.append((attempt, done, started))

    def finish(self, exit_status: int = 0, *, job_id: str | None = None, output: str = "",
               killed: bool = False) -> Attempt:
        for i, (attempt, done, started) in enumerate(self.pending):
            if job_id is None or attempt.job_id == job_id:
                del self.pending[i]
                message = "" if exit_status == 0 else f"exit status {exit_status}"
                done(AttemptOutcome(started, self.clock.now(), exit_status, output, message, killed))
                return attempt
        raise AssertionError(f"no pending attempt for {job_id}")

    def finish_all(self, exit_status: int = 0) -> None:
        while self.pending:
            self.finish(exit_status)

    def count(self, job_id: str) -> int:
        return sum(1 for a in self.started if a.job_id == job_id)


def make_job(name: str = "job", **fields) -> Job:
    fields.setdefault("command", "true")
    return Job(id=fields.pop("id", f"id-{name}"), name=name, created_at=T0, **fields)


@pytest.fixture(params=["memory", "lmdb"])
def store(request, tmp_path):
    if request.param == "memory":
        s = MemoryStore(keep_runs=100)
    else:
        s = LmdbStore(tmp_path / "lmdb", keep_runs=100)
    yield s
    try:
        s.close()
    except Exception:
        pass


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def launcher(clock) -> ManualLauncher:
    return ManualLauncher(clock)


def build_service(store, launcher, clock, **kw) -> Service:
    return Service(store, launcher, clock, GroupCommitter(store, threaded=False), **kw)


@pytest.fixture
def service(store, launcher, clock) -> Service:
    svc = build_service(store, launcher, clock)
    svc.load()
    return svc


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def group_gone(pgid: int) -> bool:
    """Whether process group ``pgid`` has no process left."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False
