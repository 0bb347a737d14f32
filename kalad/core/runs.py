"""Run records, and the pure rules that decide retries and counters after an attempt.

One ``Run`` is written per run (not per attempt): what triggered it, the occurrence
it was for, when it really started and ended, how many attempts it took, how it
ended and the tail of its output. Skipped and missed occurrences get a record too,
so nothing the schedule asked for disappears silently.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from kalad.core.job import Job, Metadata


class Trigger(enum.Enum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    PARENT = "parent"
    FAILURE = "failure"


class RunStatus(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"  # stopped by the daemon (shutdown, timeout)
    MISSED = "missed"  # occurrences not run (daemon down, too late for epsilon, ...)
    SKIPPED = "skipped"  # not run because the job was disabled

    @property
    def executed(self) -> bool:
        """Whether a command (or request) actually ran: the runs Kala's job_stats lists."""
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.KILLED)


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    job_id: str
    trigger: Trigger
    status: RunStatus
    started_at: datetime
    ended_at: datetime
    scheduled_at: datetime | None = None
    attempts: int = 0
    duration_ns: int = 0
    exit_status: int | None = None  # exit code, or -N when killed by signal N
    output: str = ""  # tail of stdout+stderr (or the HTTP response body)
    message: str = ""  # why it failed or was skipped, in words
    missed: int = 0  # for MISSED records: how many occurrences

    @property
    def success(self) -> bool:
        return self.status is RunStatus.SUCCEEDED

    @property
    def number_of_retries(self) -> int:
        return max(self.attempts - 1, 0)


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one attempt of a run came to, as the launcher reports it.

    A launcher gives every failed attempt a ``message`` saying why ("exit status 3",
    "HTTP status 503, expected one of 200"), so an attempt succeeded exactly when it
    has none and was not killed. ``exit_status`` is the exit code of a command, or
    the HTTP status of a remote job's response.
    """

    started_at: datetime
    ended_at: datetime
    exit_status: int | None
    output: str = ""
    message: str = ""
    killed: bool = False
    pid: int | None = None  # the local command's process id, for the end log line

    @property
    def success(self) -> bool:
        return not self.killed and not self.message


def should_retry(
    job: Job,
    attempts: int,
    outcome: AttemptOutcome,
    scheduled_at: datetime | None,
    epsilon: timedelta | None,
) -> bool:
    """Retry a failed attempt while attempts remain and, with an epsilon, inside its window.

    ``retries = N`` allows N+1 attempts. The epsilon window is measured from the
    occurrence the run was for (Kala measures it from the armed time, which for a
    manual run lies in the future; a run with no occurrence is not limited).
    """
    if outcome.success or outcome.killed or attempts > job.retries:
        return False
    if epsilon is not None and scheduled_at is not None:
        return outcome.ended_at - scheduled_at <= epsilon
    return True


def count_attempt(metadata: Metadata, outcome: AttemptOutcome) -> Metadata:
    """Counters after one attempt: every failed attempt is an error (Kala's rule)."""
    if outcome.success:
        return metadata
    return metadata.replace(
        error_count=metadata.error_count + 1,
        last_error=outcome.ended_at,
    )


def count_run(metadata: Metadata, run: Run) -> Metadata:
    """Counters after a finished run: one success or one finished run, never both twice."""
    if not run.status.executed:
        return metadata
    if run.success:
        return metadata.replace(
            success_count=metadata.success_count + 1,
            last_success=run.ended_at,
            number_of_finished_runs=metadata.number_of_finished_runs + 1,
        )
    return metadata.replace(number_of_finished_runs=metadata.number_of_finished_runs + 1)
