"""Turn a job into the exact attempt to start: argv and environment, or an HTTP request.

Templates (``TemplateDelimiters``) are rendered here, before every attempt, with the
job's fields as they are at that moment (Kala's rule: metadata before this run).
A job that cannot be turned into an attempt (bad template, unsplittable command)
raises ``InvalidJob``; the service records that as a failed attempt.
"""

from __future__ import annotations

from collections import ChainMap
from datetime import datetime
from typing import Mapping

from kalad.core.job import Job, JobType, command_argv
from kalad.core.ports import Attempt, HttpRequest
from kalad.core.template import job_fields, render

DEFAULT_REMOTE_TIMEOUT = 30.0


def build_attempt(
    job: Job,
    run_id: str,
    number: int,
    scheduled_at: datetime | None,
    base_env: Mapping[str, str],
    trigger: str = "",
    start_at: datetime | None = None,
    alone: bool = False,
) -> Attempt:
    """The attempt; its ``env`` is the job's and the run's entries over ``base_env``,
    unchanged and shared (a ``ChainMap``: the spawner encodes the base once)."""
    fields = job_fields(job) if job.template_delimiters else {}
    own = dict(job.env)
    own.update(job.secret_env)  # KALAD_* below always win: names were checked at create
    own["KALAD_JOB_ID"] = job.id
    own["KALAD_JOB_NAME"] = job.name
    own["KALAD_RUN_ID"] = run_id
    own["KALAD_SCHEDULED_AT"] = scheduled_at.isoformat().replace("+00:00", "Z") if scheduled_at else ""
    env = ChainMap(own, base_env)
    if job.type is JobType.REMOTE:
        return Attempt(run_id, job.id, job.name, number, (), env,
                       request=_request(job, fields), trigger=trigger, start_at=start_at,
                       alone=alone)
    command = render(job.command, job.template_delimiters, fields)
    return Attempt(run_id, job.id, job.name, number, command_argv(command), env, trigger=trigger,
                   start_at=start_at, alone=alone)


def _request(job: Job, fields: Mapping) -> HttpRequest:
    remote = job.remote_properties
    timeout: float | None
    if remote.timeout == 0:
        timeout = DEFAULT_REMOTE_TIMEOUT
    elif remote.timeout < 0:
        timeout = None  # Kala: a negative timeout means no deadline
    else:
        timeout = float(remote.timeout)
    headers = tuple(
        (name, value) for name, values in (remote.headers or {}).items() for value in values
    )
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers += (("Content-Type", "application/json"),)  # Kala's default
    return HttpRequest(
        url=render(remote.url, job.template_delimiters, fields),
        method=(remote.method or "GET").upper(),
        body=render(remote.body, job.template_delimiters, fields),
        headers=headers,
        timeout=timeout,
        expected_codes=remote.expected_response_codes or (200,),
    )
