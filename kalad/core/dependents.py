"""Parent/child rules: what runs after a run's outcome, and what a delete takes with it.

Links are stored on both sides (``parent_jobs`` on the child, ``dependent_jobs`` on
each parent, in creation order) and always changed together in one store change.
A new job may only name parents and an ``on_failure_job`` that already exist, and
its own id is new, so parent/child links alone cannot loop; ``forms_loop`` refuses
the one loop left, through an ``on_failure_job`` that leads back to a parent.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from kalad.core.job import Job
from kalad.core.runs import Trigger

MAX_CHAIN_DEPTH = 64  # guards against loops a future update route could create


def follow_ups(job: Job, success: bool) -> list[tuple[str, Trigger]]:
    """Jobs to run, in order, after a finished run of ``job``.

    After a success its children, one after another in creation order (each a full
    run with its own retries and children); after a final failure its
    ``on_failure_job``; never both.
    """
    if success:
        return [(child, Trigger.PARENT) for child in job.dependent_jobs]
    if job.on_failure_job:
        return [(job.on_failure_job, Trigger.FAILURE)]
    return []


def forms_loop(jobs: Mapping[str, Job], parents: Iterable[str], on_failure: str) -> bool:
    """Whether runs triggered from ``on_failure`` could lead back to one of ``parents``.

    A new child X of P with ``on_failure_job`` F adds P -> X -> F; that closes a
    loop exactly when F already reaches P through children or failure jobs.
    """
    targets = set(parents)
    if not on_failure or not targets:
        return False
    seen: set[str] = set()
    stack = [on_failure]
    while stack:
        job_id = stack.pop()
        if job_id in targets:
            return True
        job = jobs.get(job_id)
        if job is None or job_id in seen:
            continue
        seen.add(job_id)
        stack.extend(job.dependent_jobs)
        if job.on_failure_job:
            stack.append(job.on_failure_job)
    return False


def plan_delete(jobs: Mapping[str, Job], job_ids: Iterable[str]) -> tuple[set[str], list[Job]]:
    """Which jobs a delete removes, and the surviving jobs whose links change.

    A child goes once its last parent goes; a child with another parent stays and
    loses only the link. Unknown ids are ignored.
    """
    doomed: set[str] = set()
    stack = list(job_ids)
    while stack:
        job_id = stack.pop()
        if job_id in doomed or job_id not in jobs:
            continue
        doomed.add(job_id)
        # Each parent's doom re-checks its children, so a shared child is seen again
        # when its last parent goes.
        for child_id in jobs[job_id].dependent_jobs:
            child = jobs.get(child_id)
            if child is not None and all(p in doomed for p in child.parent_jobs):
                stack.append(child_id)
    touched: dict[str, Job] = {}
    for job_id in doomed:
        job = jobs[job_id]
        for other_id in (*job.parent_jobs, *job.dependent_jobs):
            if other_id in doomed or other_id not in jobs:
                continue
            other = touched.get(other_id, jobs[other_id])
            touched[other_id] = other.replace(
                parent_jobs=tuple(p for p in other.parent_jobs if p not in doomed),
                dependent_jobs=tuple(c for c in other.dependent_jobs if c not in doomed),
            )
    return doomed, list(touched.values())


def link_child(jobs: Mapping[str, Job], child: Job) -> list[Job]:
    """The child's parents with the child appended to their ``dependent_jobs``."""
    return [
        jobs[p].replace(dependent_jobs=jobs[p].dependent_jobs + (child.id,))
        for p in dict.fromkeys(child.parent_jobs)
    ]
