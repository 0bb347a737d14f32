"""Limits on what a new job may be: how many jobs, how short an interval, how deep a chain.

They are settings (``[jobs]`` in kalad.conf) rather than rules of a job on its own,
so they live apart from ``check_definition``; the service applies them, under its
lock, to every job it is asked to create. Each refusal names the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping

from kalad.core.dependents import MAX_CHAIN_DEPTH
from kalad.core.errors import InvalidJob
from kalad.core.job import MAX_COMMAND, MAX_NAME, Job
from kalad.core.schedule import Schedule


@dataclass(frozen=True, slots=True)
class Limits:
    """``None``/zero means no limit beyond the hard ones of ``core/job.py``."""

    max_jobs: int | None = None
    min_interval: timedelta = timedelta(0)
    max_depth: int = MAX_CHAIN_DEPTH
    max_name: int = MAX_NAME
    max_command: int = MAX_COMMAND


NO_LIMITS = Limits()


def check_new_job(limits: Limits, jobs: Mapping[str, Job], job: Job, schedule: Schedule,
                  *, new: bool = True) -> None:
    """Raise ``InvalidJob`` if adding ``job`` to ``jobs`` breaks a configured limit.

    ``new=False`` checks a replacement definition of a job already counted.
    """
    if new and limits.max_jobs is not None and len(jobs) >= limits.max_jobs:
        raise InvalidJob(f"jobs: this daemon already holds {len(jobs)} jobs, the most "
                         f"allowed ([jobs] max_jobs = {limits.max_jobs})")
    if len(job.name) > limits.max_name:
        raise InvalidJob(f"name: longer than {limits.max_name} characters ([jobs] max_name)")
    if len(job.command) > limits.max_command:
        raise InvalidJob(
            f"command: longer than {limits.max_command} characters ([jobs] max_command)")
    if (limits.min_interval and schedule.repeat != 0 and not schedule.interval.is_zero()
            and schedule.interval.approx() < limits.min_interval):
        raise InvalidJob(
            f"schedule: interval {schedule.text.rsplit('/', 1)[-1]} is shorter than the "
            f"minimum of {limits.min_interval.total_seconds():g} s ([jobs] min_interval)")
    depth = chain_depth(jobs, job.parent_jobs)
    if depth > limits.max_depth:
        raise InvalidJob(f"parent_jobs: this job would be {depth} levels below its top "
                         f"parent, more than the {limits.max_depth} allowed ([jobs] max_depth)")


def chain_depth(jobs: Mapping[str, Job], parents: tuple[str, ...]) -> int:
    """Levels above a job with ``parents``: 0 without parents, 1 under a top-level job, ..."""
    depth_of: dict[str, int] = {}

    def depth(job_id: str, seen: frozenset[str]) -> int:
        if job_id in depth_of:
            return depth_of[job_id]
        job = jobs.get(job_id)
        if job is None or not job.parent_jobs or job_id in seen or len(seen) > MAX_CHAIN_DEPTH:
            value = 0
        else:
            value = 1 + max(depth(p, seen | {job_id}) for p in job.parent_jobs)
        depth_of[job_id] = value
        return value

    return max((1 + depth(p, frozenset()) for p in parents), default=0)
