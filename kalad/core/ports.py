"""The three things the service needs from outside: a store, a launcher and a clock.

Protocols only. The service is written against these, so tests hand it a fake clock
and the memory store, and the daemon hands it LMDB, the supervisor and the system
clock; no module in ``core`` or ``service`` names a concrete backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Mapping, Protocol, Sequence

from kalad.core.job import Job
from kalad.core.runs import AttemptOutcome, Run


@dataclass(frozen=True, slots=True)
class Change:
    """One atomic mutation of the store: puts, then appended runs, then deletes.

    Deleting a job deletes its runs too.
    """

    put: tuple[Job, ...] = ()
    runs: tuple[Run, ...] = ()
    delete: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Loaded:
    """What ``JobStore.load`` found: the jobs, and records it could not decode."""

    jobs: list[Job]
    broken: list[tuple[str, str]] = field(default_factory=list)  # (key, why)


class JobStore(Protocol):
    """Where jobs and runs live. Every method is safe to call from any thread."""

    keep_runs: int  # runs kept per job; may be changed while open (SIGHUP), from the next append

    def load(self) -> Loaded:
        """Every stored job. An undecodable record is reported in ``broken``, never fatal."""

    def ping(self) -> None:
        """Return if the store answers now, else raise ``StoreUnavailable`` (or ``StoreError``)."""

    def apply(self, changes: Sequence[Change]) -> None:
        """Apply ``changes`` in order in ONE transaction, durable on disk before returning.

        Appending a run prunes that job's runs to the newest ``keep_runs`` (a backend
        setting). Raises ``StoreError`` and changes nothing if it cannot commit.
        """

    def list_runs(self, job_id: str, limit: int | None = None) -> list[Run]:
        """The job's runs, oldest first; with ``limit``, only the newest ``limit`` of them."""

    def prune_runs(self, older_than: datetime) -> int:
        """Delete every run that ended before ``older_than``; return how many."""

    def close(self) -> None:
        """Release files and connections; later calls raise ``StoreUnavailable``."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """The one HTTP request a remote job's attempt makes, templates already rendered."""

    url: str
    method: str = "GET"
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float | None = 30.0  # seconds for the whole request; None: no deadline
    expected_codes: tuple[int, ...] = (200,)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a run: a local command (argv, env) or, with ``request``, an HTTP call."""

    run_id: str
    job_id: str
    job_name: str
    number: int  # 1 for the first attempt of a run
    argv: tuple[str, ...]
    env: Mapping[str, str]
    timeout: float | None = None  # seconds; the process group is killed after it
    request: HttpRequest | None = None
    trigger: str = ""  # what started the run (schedule, manual, ...), for the start log line
    start_at: datetime | None = None  # start no earlier (a run fired ahead of its instant)
    alone: bool = False  # nothing else is due while it starts up: it may have the CPU first


class Launcher(Protocol):
    def launch(self, attempt: Attempt, done: Callable[[AttemptOutcome], None]) -> None:
        """Start the attempt and return at once; call ``done`` exactly once when it ends.

        ``done`` may run on another thread, or on this one when starting fails
        (e.g. the command does not exist: an outcome with a ``message``).
        """


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, an aware UTC datetime."""

    def monotonic(self) -> float:
        """Seconds on a clock that never steps, for measuring durations."""
