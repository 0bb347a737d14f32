"""Job, Metadata and RemoteProperties: the value objects every layer passes around.

They are frozen and slotted: a job held by the service is never mutated in place, a
change is a new object (``dataclasses.replace``), so a reader on another thread
always sees a consistent snapshot and memory per job stays small. Field names are
ours; Kala's wire names live only in ``api/kala_json.py``.
"""

from __future__ import annotations

import enum
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Mapping

from kalad.core.errors import InvalidJob


class JobType(enum.IntEnum):
    LOCAL = 0
    REMOTE = 1


@dataclass(frozen=True, slots=True)
class Metadata:
    """Run counters, Kala's meaning: errors count attempts, successes count runs."""

    success_count: int = 0
    last_success: datetime | None = None
    error_count: int = 0
    last_error: datetime | None = None
    last_attempted_run: datetime | None = None
    number_of_finished_runs: int = 0


NO_HEADERS: Mapping[str, tuple[str, ...]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RemoteProperties:
    """How a remote (HTTP) job calls its URL; ``headers`` maps a name to its values."""

    url: str = ""
    method: str = ""
    body: str = ""
    headers: Mapping[str, tuple[str, ...]] | None = None
    timeout: int = 0
    expected_response_codes: tuple[int, ...] | None = None


NO_METADATA = Metadata()
NO_REMOTE = RemoteProperties()


@dataclass(frozen=True, slots=True)
class Job:
    """One job definition plus the state the scheduler keeps for it.

    ``next_run_at`` is the next occurrence of the schedule that has not been fired
    yet (``None`` when there is none: a child, a finished job). It is persisted, so
    after a restart the service knows which occurrences were missed.
    """

    id: str
    name: str
    created_at: datetime
    command: str = ""
    owner: str = ""
    disabled: bool = False
    dependent_jobs: tuple[str, ...] = ()
    parent_jobs: tuple[str, ...] = ()
    on_failure_job: str = ""
    schedule: str = ""
    retries: int = 0
    epsilon: str = ""
    next_run_at: datetime | None = None
    template_delimiters: str = ""
    resume_at_next_scheduled_time: bool = False
    metadata: Metadata = field(default=NO_METADATA)
    type: JobType = JobType.LOCAL
    remote_properties: RemoteProperties = field(default=NO_REMOTE)
    is_done: bool = False

    @property
    def is_child(self) -> bool:
        return bool(self.parent_jobs)


MAX_NAME = 1024
MAX_COMMAND = 64 * 1024


def command_argv(command: str) -> tuple[str, ...]:
    """Split a command line into words like a POSIX shell, without expanding anything."""
    try:
        argv = tuple(shlex.split(command, comments=False, posix=True))
    except ValueError as exc:
        raise InvalidJob(f"command: cannot split into words: {exc}") from None
    if not argv:
        raise InvalidJob("command: is empty")
    return argv


def check_definition(job: Job) -> None:
    """Raise ``InvalidJob`` naming the first field that breaks a rule of its own.

    Rules that need other jobs (parents, cycles) or the clock (schedules) live in
    the service and ``core/schedule.py``.
    """
    if not job.name.strip():
        raise InvalidJob("name: is required")
    if len(job.name) > MAX_NAME:
        raise InvalidJob(f"name: longer than {MAX_NAME} characters")
    if job.retries < 0:
        raise InvalidJob("retries: must be 0 or more")
    if job.type is JobType.LOCAL:
        if len(job.command) > MAX_COMMAND:
            raise InvalidJob(f"command: longer than {MAX_COMMAND} characters")
        if not job.command.strip():
            raise InvalidJob("command: is required for a local job (type 0)")
        command_argv(job.command)
    else:
        url = job.remote_properties.url
        if not url:
            raise InvalidJob("remote_properties.url: is required for a remote job (type 1)")
        if not url.lower().startswith(("http://", "https://")):
            raise InvalidJob(f"remote_properties.url: {url!r} is not an http(s) URL")
    if job.template_delimiters:
        parts = job.template_delimiters.split(" ")
        if len(parts) != 2 or not all(parts):
            raise InvalidJob(
                "TemplateDelimiters: must be two delimiters separated by one space, e.g. '{{ }}'"
            )
