"""Job, Metadata and RemoteProperties: the value objects every layer passes around.

They are frozen and slotted: a job held by the service is never mutated in place, a
change is a new object (``job.replace(...)``, see ``core/slotted.py``), so a reader on another thread
always sees a consistent snapshot and memory per job stays small. Field names are
ours; Kala's wire names live only in ``api/kala_json.py``.
"""

from __future__ import annotations

import enum
import functools
import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Callable, ClassVar, Mapping

from kalad.core.errors import InvalidJob
from kalad.core.slotted import copier


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

    replace: ClassVar[Callable[..., Metadata]]


Metadata.replace = copier(Metadata)


NO_HEADERS: Mapping[str, tuple[str, ...]] = MappingProxyType({})
Env = tuple[tuple[str, str], ...]  # (name, value) pairs, sorted by name
SECRET_MASK = "***"  # what every API response shows instead of a secret value


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
    # Extra environment of each run. ``secret_env`` is write-only: stored, given to
    # the child, never shown (the API masks it) and never logged.
    env: Env = ()
    secret_env: Env = ()

    replace: ClassVar[Callable[..., Job]]

    @property
    def is_child(self) -> bool:
        return bool(self.parent_jobs)


Job.replace = copier(Job)


MAX_NAME = 1024
MAX_COMMAND = 64 * 1024
MAX_ENV = 256
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def command_argv(command: str) -> tuple[str, ...]:
    """Split a command line into words like a POSIX shell, without expanding anything.

    Every run of a job splits its command again; the usual short ones are remembered.
    """
    if len(command) <= _CACHED_COMMAND:
        return _cached_argv(command)
    return _split(command)


def _split(command: str) -> tuple[str, ...]:
    try:
        argv = tuple(shlex.split(command, comments=False, posix=True))
    except ValueError as exc:
        raise InvalidJob(f"command: cannot split into words: {exc}") from None
    if not argv:
        raise InvalidJob("command: is empty")
    return argv


_CACHED_COMMAND = 1024
_cached_argv = functools.lru_cache(maxsize=4096)(_split)


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
    _check_env(job)
    if job.template_delimiters:
        parts = job.template_delimiters.split(" ")
        if len(parts) != 2 or not all(parts):
            raise InvalidJob(
                "TemplateDelimiters: must be two delimiters separated by one space, e.g. '{{ }}'"
            )


def make_env(pairs: Mapping[str, str]) -> Env:
    """The stored form of an environment mapping: pairs sorted by name."""
    return tuple(sorted(pairs.items()))


def _check_env(job: Job) -> None:
    if len(job.env) + len(job.secret_env) > MAX_ENV:
        raise InvalidJob(f"env: more than {MAX_ENV} variables (env and secret_env together)")
    for field_name, env in (("env", job.env), ("secret_env", job.secret_env)):
        for name, value in env:
            if not _ENV_NAME.fullmatch(name):
                raise InvalidJob(f"{field_name}: {name[:40]!r} is not a variable name "
                                 "(letters, digits and _, not starting with a digit)")
            if name.upper().startswith("KALAD_"):
                raise InvalidJob(f"{field_name}: {name!r}: KALAD_* variables are set by kalad")
            if "\0" in value:
                raise InvalidJob(f"{field_name}: the value of {name!r} contains a NUL byte")
    both = sorted({name for name, _ in job.env} & {name for name, _ in job.secret_env})
    if both:
        raise InvalidJob(f"secret_env: {both[0]!r} is also in env; give each variable once")


def keep_secrets(new: Job, old: Job) -> Job:
    """``new`` with each secret sent back as the mask (``"***"``) replaced by ``old``'s value.

    For updates: a client that reads a job and writes it back sends the mask, not
    the secret it never saw; that must not overwrite the stored value.
    """
    if not any(value == SECRET_MASK for _, value in new.secret_env):
        return new
    stored = dict(old.secret_env)
    return new.replace(secret_env=tuple(
        (name, stored.get(name, value) if value == SECRET_MASK else value)
        for name, value in new.secret_env))
