"""The service: the one entry point for the API and the timer.

It holds the jobs in memory, the timeline of their next occurrences and the runs in
progress, under one lock. Every mutation is decided under the lock and handed, in
that order, to the group committer as one store change; an API call then waits
(outside the lock) until its change is durable, and undoes its in-memory effect if
the store refused it. Processes are started outside the lock, so a slow spawn never
holds up the API or the timer.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from collections import deque
from itertools import islice
from operator import attrgetter
from typing import Any, Callable, Iterable, Mapping

from kalad.core.arming import Arming, arm
from kalad.core.attempt import build_attempt
from kalad.core.dependents import (
    MAX_CHAIN_DEPTH,
    follow_ups,
    forms_loop,
    link_child,
    plan_delete,
)
from kalad.core.errors import InvalidJob, InvalidSchedule, JobNotFound
from kalad.core.job import Job, check_definition, keep_secrets
from kalad.core.limits import NO_LIMITS, Limits, check_new_job
from kalad.core.ports import Change, Clock, JobStore, Launcher
from kalad.core.runs import (
    AttemptOutcome,
    Run,
    RunStatus,
    Trigger,
    count_attempt,
    count_run,
    should_retry,
)
from kalad.core.schedule import Schedule, check_new_schedule, once, parse_duration, parse_schedule
from kalad.core.stats import AppStats
from kalad.core.timeline import Timeline
from kalad.store.committer import GroupCommitter

log = logging.getLogger(__name__)

# A run fired ahead of its instant with no other run due within ALONE after it starts
# ``alone``: its child may have the CPU before kalad's bookkeeping of the start (see
# the supervisor), which stalls the starting thread for the child's start-up.
ALONE = timedelta(milliseconds=5)


@dataclass(slots=True)
class _Chain:
    """Runs still to do, in order, after a run's outcome; ``outer`` resumes when it empties.

    Children run depth-first like Kala's (a child's own children before its next
    sibling), but each starts when the previous run ends, never blocking a thread.
    """

    todo: deque[tuple[str, Trigger]]
    outer: "_Chain | None"
    depth: int


@dataclass(slots=True)
class _ActiveRun:
    run_id: str
    job_id: str
    job_name: str
    trigger: Trigger
    scheduled_at: datetime | None
    started_at: datetime
    started_mono: float
    chain: _Chain | None = None
    attempts: int = 1
    not_before: datetime | None = None  # fired ahead of its instant: the first attempt waits
    alone: bool = False  # ... and no other run is due within ALONE after it


_Launch = tuple[Job, _ActiveRun]


class _MissedLog:
    """Missed occurrences, logged without flooding: one WARNING with the details, then
    a count per ``QUIET`` seconds. An overloaded host misses many jobs at once, and a
    line per job would add to the load that made them late."""

    QUIET = 10.0

    def __init__(self) -> None:
        self._quiet_until = float("-inf")
        self._jobs: set[str] = set()
        self._occurrences = 0

    def note(self, job_id: str, arming: Arming, mono: float) -> None:
        if mono >= self._quiet_until:
            self.flush(mono)
            log.warning("job=%s missed %d occurrence(s) from %s to %s", job_id,
                        arming.missed, arming.missed_from, arming.missed_to)
            self._quiet_until = mono + self.QUIET
            return
        log.debug("job=%s missed %d occurrence(s) from %s to %s", job_id,
                  arming.missed, arming.missed_from, arming.missed_to)
        self._jobs.add(job_id)
        self._occurrences += arming.missed

    def flush(self, mono: float) -> None:
        """Log the count held back, once the quiet time is over."""
        if self._occurrences and mono >= self._quiet_until:
            log.warning("%d more job(s) missed %d occurrence(s) in the last %g s; each is a "
                        "'missed' run record", len(self._jobs), self._occurrences, self.QUIET)
            self._jobs.clear()
            self._occurrences = 0
            self._quiet_until = mono + self.QUIET


_run_ids = random.Random()  # seeded from os.urandom, again in a forked child
os.register_at_fork(after_in_child=_run_ids.seed)


def _run_id() -> str:
    """A new run's id: 128 random bits in hex, as ``uuid4().hex``. Each ``uuid4`` reads
    the kernel's random source, a system call that hands the GIL to another thread
    on every run; run ids name records and grant nothing, so a seeded generator does."""
    return f"{_run_ids.getrandbits(128):032x}"


@functools.lru_cache(maxsize=1024)
def _epsilon_window(text: str) -> timedelta | None:
    """Epsilon as a window; a stored value that no longer parses means no window."""
    try:
        return parse_duration(text, "epsilon").approx()
    except InvalidSchedule:
        return None


class Service:
    def __init__(
        self,
        store: JobStore,
        launcher: Launcher,
        clock: Clock,
        committer: GroupCommitter,
        *,
        local_zone: tzinfo = timezone.utc,
        base_env: Mapping[str, str] | None = None,
        default_owner: str = "",
        recent_stats: int = 100,
        limits: Limits = NO_LIMITS,
    ) -> None:
        self._store = store
        self._launcher = launcher
        self._clock = clock
        self._committer = committer
        self._zone = local_zone
        self._base_env = dict(base_env or {})
        self._default_owner = default_owner
        self._recent_stats = recent_stats
        self._limits = limits
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._timeline = Timeline()
        self._active: dict[str, _ActiveRun] = {}
        self._scheduled_running: set[str] = set()
        self._accepting = True
        self._wake: Callable[[], None] = lambda: None
        self._promised: datetime | None = None  # what next_due last told the timer
        # Bumped when runs change without a job changing (retention), for readers' caches.
        self.runs_generation = 0
        self._missed_log = _MissedLog()
        # Aggregates for /stats/, kept exact on every change so the call is O(1).
        self._disabled = 0
        self._errors = 0
        self._successes = 0
        self._last_attempt: datetime | None = None
        self._last_attempt_stale = False

    # ---- wiring and start-up -------------------------------------------------------

    def set_waker(self, wake: Callable[[], None]) -> None:
        """Called whenever the earliest due time may have moved earlier (the timer's wake)."""
        self._wake = wake

    def load(self) -> int:
        """Load every stored job and arm it; missed occurrences get one catch-up run."""
        loaded = self._store.load()
        for key, why in loaded.broken:
            log.error("stored job %s cannot be decoded, left in the store untouched: %s", key, why)
        now = self._clock.now()
        missed: list[Run] = []
        with self._lock:
            # Creation order, as the API lists jobs (stores load them by id, and the
            # sort is stable, so jobs created in the same microsecond stay in id order).
            for job in sorted(loaded.jobs, key=attrgetter("created_at")):
                try:
                    self._schedule_of(job)
                except InvalidJob as exc:
                    log.error("job=%s has a bad schedule, kept disabled: %s", job.id, exc)
                    job = job.replace(disabled=True)
                self._set(job)
            due: list[tuple[str, datetime]] = []
            for job in list(self._jobs.values()):
                if job.next_run_at is not None and job.next_run_at >= now and not (
                        job.disabled or job.is_child or job.is_done):
                    due.append((job.id, job.next_run_at))  # what _arm does, in bulk
                    continue
                run = self._arm(job, now)
                if run is not None:
                    missed.append(run)
            self._timeline.add_many(due)
            if missed:
                self._committer.submit(Change(runs=tuple(missed)))
        self._wake()
        return len(loaded.jobs)

    # ---- reads ---------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock.now()

    def get_job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list_jobs(self) -> list[Job]:
        """Every job, in creation order."""
        with self._lock:
            return list(self._jobs.values())

    def jobs_page(self, offset: int, limit: int) -> tuple[int, list[Job]]:
        """(number of jobs, at most ``limit`` jobs from ``offset`` in creation order)."""
        with self._lock:
            return len(self._jobs), list(islice(self._jobs.values(), offset, offset + limit))

    def set_limits(self, limits: Limits) -> None:
        """SIGHUP: the limits new and replaced jobs are checked against (jobs held stay)."""
        self._limits = limits

    def set_run_limits(self, keep_runs: int, recent_stats: int) -> None:
        """SIGHUP: runs kept per job (from each job's next run) and runs shown as stats."""
        self._store.keep_runs = keep_runs
        if recent_stats != self._recent_stats:
            self._recent_stats = recent_stats
            self.runs_generation += 1

    def prune_runs(self, before: datetime) -> int:
        """Drop run records that ended before ``before``; return how many."""
        pruned = self._store.prune_runs(before)
        if pruned:
            self.runs_generation += 1
        return pruned

    def recent_runs(self, job_id: str, limit: int | None = None) -> list[Run]:
        """The job's newest runs (oldest first), at most ``limit`` or the configured number."""
        self.get_job(job_id)
        return self._store.list_runs(job_id, limit if limit is not None else self._recent_stats)

    def app_stats(self) -> AppStats:
        with self._lock:
            if self._last_attempt_stale:
                self._last_attempt = max(
                    (j.metadata.last_attempted_run for j in self._jobs.values()
                     if j.metadata.last_attempted_run is not None),
                    default=None,
                )
                self._last_attempt_stale = False
            total = len(self._jobs)
            return AppStats(
                active_jobs=total - self._disabled,
                disabled_jobs=self._disabled,
                jobs=total,
                error_count=self._errors,
                success_count=self._successes,
                next_run_at=self._next_run_at(),
                last_attempted_run=self._last_attempt,
                created=self._clock.now(),
            )

    def upcoming(self, job_id: str, count: int) -> list[datetime]:
        """The job's next ``count`` occurrences from its pending one (none for a child)."""
        job = self.get_job(job_id)
        return self.preview(job.schedule, count, start_from=job.next_run_at) if not (
            job.is_child or job.is_done or job.next_run_at is None) else []

    def preview(self, schedule: str, count: int, start_from: datetime | None = None) -> list[datetime]:
        """The first ``count`` occurrences of ``schedule`` at or after now (or ``start_from``).

        Raises ``InvalidJob`` naming the problem, as a create with it would.
        """
        parsed = parse_schedule(schedule, self._zone) if schedule else once(self._clock.now())
        out: list[datetime] = []
        when = parsed.first_at_or_after(start_from or self._clock.now())
        while when is not None and len(out) < count:
            out.append(when)
            when = parsed.first_after(when)
        return out

    def next_due(self) -> datetime | None:
        """The earliest due time; the timer sleeps until it, so it is remembered."""
        with self._lock:
            self._promised = self._timeline.next_due()
            return self._promised

    def running(self) -> int:
        with self._lock:
            return len(self._active)

    # ---- API mutations -------------------------------------------------------------

    def create_job(self, job: Job) -> Job:
        """Validate and store a new job, then arm it; durable before this returns."""
        check_definition(job)
        if not job.owner and self._default_owner:
            job = job.replace(owner=self._default_owner)
        now = self._clock.now()
        with self._lock:
            for parent in job.parent_jobs:
                if parent not in self._jobs:
                    raise InvalidJob(f"parent_jobs: job {parent!r} does not exist")
            self._check_failure_job(job, job.parent_jobs, "a parent of this job")
            if job.id in self._jobs:
                raise InvalidJob(f"id: job {job.id!r} already exists")
            job = job.replace(created_at=now, dependent_jobs=(), is_done=False)
            schedule = self._check_schedule(job, now)
            check_new_job(self._limits, self._jobs, job, schedule)
            pending = None if job.is_child else schedule.first_at_or_after(now)
            job = job.replace(next_run_at=pending)
            before: dict[str, Job | None] = {job.id: None}
            parents = link_child(self._jobs, job)
            for parent in parents:
                before[parent.id] = self._jobs[parent.id]
                self._set(parent)
            self._set(job)
            ticket = self._committer.submit(Change(put=(job, *parents)))
        self._settle(ticket, before, arm=job.id)
        return self._jobs.get(job.id, job)

    def replace_job(self, job: Job) -> Job:
        """Replace a job's definition (``PUT``), validated as a create; durable before this returns.

        The id, creation time, counters, run records and links (``parent_jobs`` and
        ``dependent_jobs``) stay as stored: a body naming other parents is refused.
        A secret sent back masked (as a client read it) keeps its stored value.
        The schedule is re-armed as a new job's would be, from now, with no catch-up
        for occurrences before now; a run in progress is not interrupted.
        """
        check_definition(job)
        if not job.owner and self._default_owner:
            job = job.replace(owner=self._default_owner)
        now = self._clock.now()
        with self._lock:
            old = self.get_job(job.id)
            job = keep_secrets(job, old)
            if job.parent_jobs and set(job.parent_jobs) != set(old.parent_jobs):
                raise InvalidJob(
                    f"parent_jobs: {list(job.parent_jobs)} differs from the stored "
                    f"{list(old.parent_jobs)}; an update cannot move a job to other parents "
                    "(omit parent_jobs, or delete and re-create the job)"
                )
            job = job.replace(
                created_at=old.created_at,
                parent_jobs=old.parent_jobs,
                dependent_jobs=old.dependent_jobs,
                metadata=old.metadata,
            )
            self._check_failure_job(job, (job.id,), "this job")
            schedule = self._check_schedule(job, now)
            check_new_job(self._limits, self._jobs, job, schedule, new=False)
            pending = None if job.is_child else schedule.first_at_or_after(now)
            job = job.replace(next_run_at=pending, is_done=pending is None and not job.is_child)
            before: dict[str, Job | None] = {job.id: old}
            self._set(job)
            self._timeline.cancel(job.id)  # the old definition must not fire meanwhile
            ticket = self._committer.submit(Change(put=(job,)))
        self._settle(ticket, before, arm=job.id)
        return self._jobs.get(job.id, job)

    def _check_failure_job(self, job: Job, targets: tuple[str, ...], what: str) -> None:
        """The ``on_failure_job`` exists and its runs never lead back to ``targets``."""
        if job.on_failure_job and job.on_failure_job not in self._jobs:
            raise InvalidJob(f"on_failure_job: job {job.on_failure_job!r} does not exist")
        if forms_loop(self._jobs, targets, job.on_failure_job):
            raise InvalidJob(
                f"on_failure_job: job {job.on_failure_job!r} leads back to {what}, "
                "so their runs would trigger each other forever"
            )

    def _check_schedule(self, job: Job, now: datetime) -> Schedule:
        """The job's parsed schedule, refused as at creation (past one-shot, bad epsilon)."""
        schedule = self._schedule_of(job)
        if job.schedule and not job.is_child:
            check_new_schedule(schedule, now)
        if job.epsilon:
            parse_duration(job.epsilon, "epsilon")
        return schedule

    def delete_job(self, job_id: str) -> None:
        """Delete a job; its children without another parent go with it, in one change."""
        with self._lock:
            if job_id not in self._jobs:
                raise JobNotFound(job_id)
            ticket, before = self._delete_locked([job_id])
        self._settle(ticket, before)

    def delete_all(self) -> None:
        with self._lock:
            ticket, before = self._delete_locked(list(self._jobs))
        self._settle(ticket, before)

    def disable_job(self, job_id: str) -> None:
        self._set_disabled(job_id, True)

    def enable_job(self, job_id: str) -> None:
        self._set_disabled(job_id, False)

    def start_job(self, job_id: str) -> str:
        """Start a run now (it does not move the schedule's grid); return its run id."""
        with self._lock:
            job = self.get_job(job_id)
            if job.disabled:
                self._record_skip(job, Trigger.MANUAL, None, "job is disabled")
                return ""
            launch = self._start_run(job, Trigger.MANUAL, None, self._clock.now())
        self._launch(launch)
        return launch[1].run_id

    # ---- the timer's side ----------------------------------------------------------

    def tick(self, lead: timedelta = timedelta(0), limit: int | None = None,
             handoff: Callable[[timedelta], object] | None = None) -> datetime | None:
        """Fire the jobs due within ``lead`` from now (all, or the first ``limit``);
        return the next due time (None: nothing armed).

        With a ``lead`` (the timer's), a job due a moment from now is fired now: its
        bookkeeping and the preparing of its process happen before its instant, and
        the launcher starts it on the instant (``Attempt.start_at``). ``handoff``
        runs once the fired jobs are taken and before they are started, which may
        take a while, with how late the first of them is (negative: fired ahead):
        a timer that is behind lets another of its threads take the next ones.
        """
        launches = []
        with self._lock:
            if not self._accepting:
                return None
            now = self._clock.now()
            horizon = now + lead
            for job_id, _ in self._timeline.pop_due(horizon, limit):
                job = self._jobs.get(job_id)
                if job is None or job.disabled:
                    continue
                if job_id in self._scheduled_running:
                    continue  # fired again when the running occurrence ends
                skipped = self._arm(job, horizon, fire=True)
                job = self._jobs[job_id]
                if skipped is not None:
                    self._committer.submit(Change(runs=(skipped,)))
                if job.next_run_at is not None and job.next_run_at <= horizon:
                    launches.append(self._fire(job, now))
            nxt = self._timeline.next_due()
            if len(launches) == 1:
                active = launches[0][1]
                active.alone = active.not_before is not None and (
                    nxt is None or nxt - active.not_before >= ALONE)
            self._missed_log.flush(self._clock.monotonic())
        if launches and handoff is not None:
            handoff(now - (launches[0][1].scheduled_at or now))
        for launch in launches:
            self._launch(launch)
        return nxt

    def stop_accepting(self) -> None:
        """No new runs from now on (shutdown); runs in progress finish or are killed."""
        with self._lock:
            self._accepting = False

    # ---- internals: arming and running ---------------------------------------------

    def _schedule_of(self, job: Job) -> Schedule:
        if job.schedule:
            return parse_schedule(job.schedule, self._zone)
        return once(job.created_at)

    def _epsilon(self, job: Job) -> timedelta | None:
        return _epsilon_window(job.epsilon) if job.epsilon else None

    def _arm(self, job: Job, now: datetime, fire: bool = False) -> Run | None:
        """Put the job's pending occurrence on the timeline; return a MISSED run if any.

        With ``fire``, a pending occurrence that is due is left off the timeline for
        the caller to start now.
        """
        self._timeline.cancel(job.id)
        if job.disabled or job.is_child or job.is_done or job.next_run_at is None:
            return None
        if job.id in self._scheduled_running:
            return None
        arming = arm(
            self._schedule_of(job),
            job.next_run_at,
            now,
            resume=job.resume_at_next_scheduled_time,
            epsilon=self._epsilon(job),
        )
        if arming.scheduled_at is None:
            self._set(job.replace(next_run_at=None, is_done=True))
        else:
            if arming.scheduled_at != job.next_run_at:
                self._set(job.replace(next_run_at=arming.scheduled_at))
            if not (fire and arming.scheduled_at <= now):
                self._timeline.add(job.id, arming.scheduled_at)
        return self._missed_run(job, arming, now) if arming.missed else None

    def _missed_run(self, job: Job, arming: Arming, now: datetime) -> Run:
        self._missed_log.note(job.id, arming, self._clock.monotonic())
        return Run(
            id=_run_id(),
            job_id=job.id,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.MISSED,
            started_at=now,
            ended_at=now,
            scheduled_at=arming.missed_from,
            missed=arming.missed,
            message=f"missed {arming.missed} occurrence(s) up to {arming.missed_to.isoformat()}"
            if arming.missed_to else f"missed {arming.missed} occurrence(s)",
        )

    def _fire(self, job: Job, now: datetime) -> _Launch:
        """Start the job's due occurrence; its next one is armed only when this run ends."""
        scheduled_at = job.next_run_at
        assert scheduled_at is not None
        nxt = self._schedule_of(job).first_after(scheduled_at)
        self._scheduled_running.add(job.id)
        launch = self._start_run(job, Trigger.SCHEDULE, scheduled_at, max(now, scheduled_at),
                                 next_run_at=nxt)
        if scheduled_at > now:
            active = launch[1]
            active.not_before = scheduled_at
            active.started_mono += (scheduled_at - now).total_seconds()
        return launch

    def _start_run(
        self,
        job: Job,
        trigger: Trigger,
        scheduled_at: datetime | None,
        now: datetime,
        chain: _Chain | None = None,
        **changes: Any,
    ) -> _Launch:
        """Register the run and note the attempt on the job, with ``changes`` to it."""
        active = _ActiveRun(
            run_id=_run_id(),
            job_id=job.id,
            job_name=job.name,
            trigger=trigger,
            scheduled_at=scheduled_at,
            started_at=now,
            started_mono=self._clock.monotonic(),
            chain=chain,
        )
        self._active[active.run_id] = active
        job = job.replace(metadata=job.metadata.replace(last_attempted_run=now), **changes)
        self._set(job)
        return job, active

    def _launch(self, launch: _Launch) -> None:
        """Start one attempt; called without the lock held (spawning takes time)."""
        job, active = launch
        start_at, alone = active.not_before, active.alone
        active.not_before, active.alone = None, False  # retries start at once
        try:
            attempt = build_attempt(
                job, active.run_id, active.attempts, active.scheduled_at, self._base_env,
                active.trigger.value, start_at, alone,
            )
        except InvalidJob as exc:
            now = self._clock.now()
            self._attempt_done(active, AttemptOutcome(now, now, None, message=str(exc)))
            return
        self._launcher.launch(attempt, lambda outcome: self._attempt_done(active, outcome))

    def _attempt_done(self, active: _ActiveRun, outcome: AttemptOutcome) -> None:
        launches: list[_Launch] = []
        with self._lock:
            if active.attempts == 1:
                active.started_at = outcome.started_at  # when the launcher really started it
            job = self._jobs.get(active.job_id)
            if job is not None:
                metadata = count_attempt(job.metadata, outcome)
                if metadata is not job.metadata:  # a success changes nothing until the run ends
                    job = job.replace(metadata=metadata)
                    self._set(job)
            if job is not None and self._accepting and should_retry(
                job, active.attempts, outcome, active.scheduled_at, self._epsilon(job)
            ):
                active.attempts += 1
                launches.append((job, active))
                log.info("job=%s run=%s attempt %d failed (%s), retrying",
                         job.id, active.run_id, active.attempts - 1, outcome.message)
            else:
                launches.extend(self._finish(active, job, outcome))
        for launch in launches:
            self._launch(launch)

    def _finish(self, active: _ActiveRun, job: Job | None, outcome: AttemptOutcome) -> list[_Launch]:
        """Record the run, re-arm its schedule, and return the runs that follow it."""
        del self._active[active.run_id]
        if outcome.success:
            status = RunStatus.SUCCEEDED
        elif outcome.killed:
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        duration = int((self._clock.monotonic() - active.started_mono) * 1e9)
        run = Run(
            id=active.run_id,
            job_id=active.job_id,
            trigger=active.trigger,
            status=status,
            started_at=active.started_at,
            ended_at=outcome.ended_at,
            scheduled_at=active.scheduled_at,
            attempts=active.attempts,
            duration_ns=max(duration, 0),
            exit_status=outcome.exit_status,
            output=outcome.output,
            message=outcome.message,
        )
        log.info(
            "job=%s run=%s pid=%s name=%r %s attempts=%d exit=%s duration=%.3fs%s",
            active.job_id, active.run_id, outcome.pid or "-", active.job_name, status.value,
            active.attempts,
            outcome.exit_status, duration / 1e9, f" ({outcome.message})" if outcome.message else "",
        )
        if job is None:
            self._scheduled_running.discard(active.job_id)
            # Deleted while running: its runs went with it, but the chain goes on.
            return self._continue(active.chain)
        job = job.replace(metadata=count_run(job.metadata, run))
        if active.trigger is Trigger.SCHEDULE and job.next_run_at is None:
            job = job.replace(is_done=True)
        self._set(job)
        runs = [run]
        if active.trigger is Trigger.SCHEDULE:
            self._scheduled_running.discard(job.id)
            if self._accepting:
                missed = self._arm(job, self._clock.now())
                if missed is not None:
                    runs.append(missed)
                self._wake_if_sooner(job.id)
        self._committer.submit(Change(put=(self._jobs[job.id],), runs=tuple(runs)))
        then = follow_ups(job, run.success)
        if not then:
            return self._continue(active.chain)
        depth = active.chain.depth + 1 if active.chain else 1
        if depth > MAX_CHAIN_DEPTH:
            log.error("job=%s: dependent chain deeper than %d, not following", job.id, MAX_CHAIN_DEPTH)
            return self._continue(active.chain)
        return self._continue(_Chain(deque(then), active.chain, depth))

    def _continue(self, chain: _Chain | None) -> list[_Launch]:
        """Start the next run of the chain (or of the chains it sits in), skipping what can't run."""
        while chain is not None and self._accepting:
            while chain.todo:
                job_id, trigger = chain.todo.popleft()
                job = self._jobs.get(job_id)
                if job is None:
                    log.warning("%s job %s no longer exists, skipped", trigger.value, job_id)
                elif job.disabled:
                    self._record_skip(job, trigger, None, "job is disabled")
                else:
                    return [self._start_run(job, trigger, None, self._clock.now(), chain)]
            chain = chain.outer
        return []

    def _record_skip(self, job: Job, trigger: Trigger, scheduled_at: datetime | None, why: str) -> None:
        now = self._clock.now()
        job = job.replace(metadata=job.metadata.replace(last_attempted_run=now))
        self._set(job)
        run = Run(
            id=_run_id(), job_id=job.id, trigger=trigger, status=RunStatus.SKIPPED,
            started_at=now, ended_at=now, scheduled_at=scheduled_at, message=why,
        )
        log.info("job=%s skipped (%s): %s", job.id, trigger.value, why)
        self._committer.submit(Change(put=(job,), runs=(run,)))

    # ---- internals: mutations ------------------------------------------------------

    def _set_disabled(self, job_id: str, disabled: bool) -> None:
        with self._lock:
            job = self.get_job(job_id)
            if job.disabled == disabled:
                return
            before: dict[str, Job | None] = {job_id: job}
            job = job.replace(disabled=disabled)
            self._set(job)
            self._timeline.cancel(job_id)
            ticket = self._committer.submit(Change(put=(job,)))
        self._settle(ticket, before, arm=None if disabled else job_id)

    def _delete_locked(self, job_ids: Iterable[str]):
        doomed, survivors = plan_delete(self._jobs, job_ids)
        before: dict[str, Job | None] = {}
        for job_id in doomed:
            before[job_id] = self._jobs[job_id]
            self._drop(job_id)
        for job in survivors:
            before[job.id] = self._jobs[job.id]
            self._set(job)
        ticket = self._committer.submit(Change(put=tuple(survivors), delete=tuple(sorted(doomed))))
        return ticket, before

    def _settle(self, ticket, before: dict[str, Job | None], arm: str | None = None) -> None:
        """Wait until the change is durable; if the store refused it, undo it in memory.

        ``arm`` names a job whose schedule starts only once the change is durable: a
        run fired earlier would write the job with its record, saving a definition
        the API then refuses. Occurrences missed meanwhile are recorded as usual.
        """
        try:
            ticket.wait()
        except Exception:
            with self._lock:
                now = self._clock.now()
                for job_id, old in before.items():
                    if old is None:
                        self._drop(job_id)
                    else:
                        self._set(old)
                        self._arm(old, now)
            raise
        if arm is not None:
            with self._lock:
                job = self._jobs.get(arm)
                if job is not None:  # not deleted meanwhile
                    missed = self._arm(job, self._clock.now())
                    if missed is not None or self._jobs[arm] is not job:
                        runs = (missed,) if missed is not None else ()
                        self._committer.submit(Change(put=(self._jobs[arm],), runs=runs))
                    self._wake_if_sooner(arm)

    def _wake_if_sooner(self, job_id: str) -> None:
        """Wake the timer if the job is now due before the time it sleeps until.

        Otherwise it finds the job when it wakes anyway; a wake per created job or
        finished run would cost a tick each. Removing jobs never needs one.
        """
        due = self._timeline.due_at(job_id)
        if due is not None and (self._promised is None or due < self._promised):
            self._wake()

    def _set(self, job: Job) -> None:
        old = self._jobs.get(job.id)
        if old is not None:
            self._count(old, -1)
        self._jobs[job.id] = job
        self._count(job, +1)

    def _drop(self, job_id: str) -> None:
        old = self._jobs.pop(job_id, None)
        if old is not None:
            self._count(old, -1)
            self._timeline.cancel(job_id)
            if old.metadata.last_attempted_run == self._last_attempt:
                self._last_attempt_stale = True

    def _count(self, job: Job, sign: int) -> None:
        self._disabled += sign * job.disabled
        self._errors += sign * job.metadata.error_count
        self._successes += sign * job.metadata.success_count
        last = job.metadata.last_attempted_run
        if sign > 0 and last is not None and (self._last_attempt is None or last > self._last_attempt):
            self._last_attempt = last

    def _next_run_at(self) -> datetime | None:
        candidates = [self._timeline.next_due()]
        for job_id in self._scheduled_running:
            job = self._jobs.get(job_id)
            if job is not None and not job.disabled:
                candidates.append(job.next_run_at)
        return min((c for c in candidates if c is not None), default=None)
