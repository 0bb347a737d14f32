"""The daemon's wiring and lifecycle: the only place concrete parts are put together.

Start-up order: store -> load jobs -> supervisor -> timer -> API bound -> ready.
Shutdown order: STOPPING=1 -> stop listening -> no new runs -> stop the timer ->
SIGTERM every running job's process group, SIGKILL after the grace (or at a second
SIGTERM) -> record their outcomes -> commit what is queued -> close the store -> exit 0.
SIGHUP re-reads the config; the main thread also refreshes ``STATUS=`` and prunes runs.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import resource
import signal
import threading
from datetime import timedelta
from typing import Callable

from kalad.api.app import create_app
from kalad.config import EX_CONFIG, SETTINGS, Config, Loaded, format_value, listen_address
from kalad.core.errors import StoreError
from kalad.runtime import access, logs, systemd
from kalad.runtime.clock import SystemClock, local_zone
from kalad.runtime.remote import RemoteRunner
from kalad.runtime.server import ApiServer
from kalad.runtime.signals import SignalQueue
from kalad.runtime.supervisor import Supervisor
from kalad.runtime.timer import Timer
from kalad.service import Service
from kalad.store import open_store
from kalad.store.committer import GroupCommitter

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The timer wakes this long before a job is due: its bookkeeping and process set-up
# (0.3 ms of Python, more with cold caches) then happen before the instant, not after.
FIRE_LEAD = 0.002
# Timer threads: a start blocks its thread until the child has exec'd (a millisecond or
# more on a busy machine). Once jobs are TIMER_BEHIND late, each tick takes up to
# TIMER_BATCH and hands the waiting to the next thread, so up to TIMER_THREADS threads
# start jobs at once until caught up. A hand-over costs a wake-up: one per job (a batch
# of 1) cost 30-60 µs of CPU a run more at 1,200-1,400 jobs/s, just when the machine was
# short of it, and let the timer fall 0.2-0.3 s behind at 1,300 jobs/s instead of 0.1 s.
TIMER_THREADS = 4
TIMER_BATCH = 8
TIMER_BEHIND = 0.001
HOUSEKEEPING_EVERY = 60.0
STATUS_EVERY = 2.0
# Settings a SIGHUP applies at once; any other change waits for a restart.
LIVE_SETTINGS = frozenset({"verbose", "level", "jobstat_ttl", "keep_runs", "stats_per_job",
                           "stop_grace", "max_jobs", "min_interval", "max_depth", "max_name",
                           "max_command"})
_STOPPED = -1  # posted to the signal queue when the jobs are stopped
_API_FAILED = -2  # posted when the API server's thread died: stop, exit 1, be restarted


class Launchers:
    """The service's one launcher: local attempts to the supervisor, HTTP ones to the pool.

    Local attempts are spawned on the calling thread (the timer, for scheduled runs):
    the spawn releases the GIL, and a hand-over to spawner threads cost more than
    it saved. Measured with 600 /bin/true runs a second: 0.69 ms of kalad's CPU per
    run through 4 spawner threads against 0.63 ms inline, and at 1,000 bash runs a
    second the pool fell behind (741 missed) where inline kept up.
    """

    def __init__(self, local: Supervisor, remote: RemoteRunner) -> None:
        self.local = local
        self.remote = remote

    def launch(self, attempt, done) -> None:
        if attempt.request is not None:
            self.remote.launch(attempt, done)
        else:
            self.local.launch(attempt, done)

    def terminate_all(self, grace: float) -> None:
        """Stop both at once, each given the same grace."""
        remote = threading.Thread(target=self.remote.terminate_all, args=(grace,))
        remote.start()
        self.local.terminate_all(grace)
        remote.join()
        self.local.stop()
        self.remote.stop()

    def hurry(self) -> None:
        """Skip what is left of the grace: SIGKILL local jobs, abandon remote ones."""
        self.local.hurry()
        self.remote.hurry()


class StartupError(Exception):
    """Start-up cannot go on; the message is the one line the user sees.

    ``status`` is the exit status: 1, or 78 (EX_CONFIG) when the config is at fault.
    """

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def job_environment(environ: dict[str, str]) -> dict[str, str]:
    """The base environment of every job: a few locale and path variables, nothing else."""
    env = {"PATH": environ.get("PATH") or DEFAULT_PATH}
    for name in ("HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME"):
        if name in environ:
            env[name] = environ[name]
    return env


def serve(config: Config, *, reload: Callable[[], Loaded] | None = None,
          on_ready: Callable[[], None] | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; return the exit status.

    ``reload`` re-reads the config on SIGHUP (the same loader as start-up);
    ``on_ready`` runs once the API is bound, right after ``READY=1``.
    """
    signals = SignalQueue(signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    clock = SystemClock()
    raise_open_files_limit()
    try:
        policy = access.build_policy(config, listen_address(config)[0], os.environ)
    except access.AccessError as exc:
        raise StartupError(str(exc), EX_CONFIG) from None
    try:
        store = open_store(
            config.jobdb,
            lmdb_path=config.lmdb_path,
            keep_runs=config.keep_runs,
            address=config.jobdb_address or None,
            username=config.jobdb_username or None,
            password=config.jobdb_password or None,
            prefix=config.jobdb_prefix,
        )
    except (StoreError, OSError, ValueError) as exc:
        raise StartupError(f"cannot open the job store: {exc}") from None
    committer = GroupCommitter(store)
    supervisor = Supervisor(clock, reap_orphans=True)
    launchers = Launchers(supervisor, RemoteRunner(clock))
    zone = local_zone()
    service = Service(
        store,
        launchers,
        clock,
        committer,
        local_zone=zone,
        base_env=job_environment(dict(os.environ)),
        default_owner=config.default_owner,
        recent_stats=config.stats_per_job,
        limits=access.job_limits(config),
    )
    try:
        count = load_jobs(service)
    except StoreError as exc:
        committer.close()
        store.close()
        raise StartupError(f"cannot load jobs: {exc}") from None
    host, port = listen_address(config)
    try:
        server = ApiServer(create_app(service, policy), host, port, threads=config.threads,
                           max_body=config.max_body + 4096,
                           connection_limit=config.max_connections,
                           idle_timeout=config.idle_timeout,
                           on_failure=lambda: signals.post(_API_FAILED))
    except OSError as exc:
        committer.close()
        store.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    watchdog = systemd.Watchdog.from_environ(clock.monotonic)
    timer = Timer(service.tick, service.next_due, clock, max_wait=watchdog.max_wait(1.0),
                  lead=FIRE_LEAD, on_beat=watchdog.beat, threads=TIMER_THREADS, batch=TIMER_BATCH,
                  behind=TIMER_BEHIND)
    service.set_waker(timer.wake)
    supervisor.start()
    timer.start()
    server.start()
    bound_host, bound_port = server.address
    log.info("kalad ready: %d jobs, API on http://%s:%s/api/v1/, store %s%s",
             count, bound_host, bound_port, config.jobdb,
             f", watchdog ping every {watchdog.interval:g}s" if watchdog.enabled else "")
    status = status_line(service, clock, zone, committer.problem)
    systemd.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")
    if on_ready is not None:
        on_ready()

    next_housekeeping = clock.monotonic() + HOUSEKEEPING_EVERY
    exit_status = 0
    while True:
        signum = signals.get(timeout=STATUS_EVERY)
        if signum in (signal.SIGTERM, signal.SIGINT):
            log.info("received %s, stopping", signal.Signals(signum).name)
            break
        if signum == _API_FAILED:
            log.error("the API is down; stopping so that kalad is restarted")
            exit_status = 1
            break
        if signum == signal.SIGHUP:
            systemd.notify("RELOADING=1", f"MONOTONIC_USEC={int(clock.monotonic() * 1e6)}")
            config = reload_config(config, reload)
            service.set_run_limits(config.keep_runs, config.stats_per_job)
            service.set_limits(access.job_limits(config))
            systemd.notify("READY=1", f"STATUS={status}")
        now_status = status_line(service, clock, zone, committer.problem)
        if now_status != status:
            status = now_status
            systemd.notify(f"STATUS={status}")
        if clock.monotonic() >= next_housekeeping:
            next_housekeeping = clock.monotonic() + HOUSEKEEPING_EVERY
            housekeeping(config, service, clock)

    running = service.running()
    systemd.notify("STOPPING=1", f"STATUS=stopping, {running} job{'s' if running != 1 else ''}"
                   f" running, grace {config.stop_grace:g}s")
    server.stop_listening()
    service.stop_accepting()
    timer.stop()
    stop_jobs(launchers, config.stop_grace, signals)
    server.close()
    committer.close()
    store.close()
    log.info("kalad stopped")
    return exit_status


def load_jobs(service: Service) -> int:
    """``service.load()`` without the cyclic garbage collector, then out of its sight.

    A million jobs are a few million objects that live as long as kalad: collecting
    while they are created cost a fifth of the start-up, and every full collection
    after it would walk them all (0.4 s, stalling the timer). None of them forms a
    cycle, so reference counting still frees any that go away.
    """
    gc.disable()
    try:
        return service.load()
    finally:
        gc.enable()
        gc.freeze()


def raise_open_files_limit() -> None:
    """Raise the soft limit on open files to the hard one (systemd's default soft is 1024).

    Each running job holds two descriptors; kalad uses none with select(), which is
    why the low soft limit exists, so many jobs at once must not fail to start.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit from %d to %d: %s", soft, hard, exc)


def stop_jobs(launchers: Launchers, grace: float, signals: SignalQueue) -> None:
    """Stop every job within ``grace``; a second SIGTERM/SIGINT meanwhile skips the rest.

    The stopping runs on a helper thread so the main thread keeps reading signals.
    """
    stopper = threading.Thread(target=_stop_then_post, args=(launchers, grace, signals),
                               name="stopper")
    stopper.start()
    hurried = False
    while True:
        signum = signals.get()
        if signum == _STOPPED:
            break
        if signum in (signal.SIGTERM, signal.SIGINT) and not hurried:
            hurried = True
            log.warning("received %s again: killing the remaining jobs now",
                        signal.Signals(signum).name)
            launchers.hurry()
        elif signum == signal.SIGHUP:
            log.info("ignoring SIGHUP: stopping")
    stopper.join()


def _stop_then_post(launchers: Launchers, grace: float, signals: SignalQueue) -> None:
    try:
        launchers.terminate_all(grace)
    except Exception:
        log.exception("stopping the running jobs failed")
    finally:
        signals.post(_STOPPED)


def status_line(service: Service, clock, zone, store_problem: str | None = None) -> str:
    """``42 jobs, 1 running, next run 12:00:05``: the systemctl status line.

    While the store is degraded (``GroupCommitter.problem``) the line starts with
    ``store degraded: <why>; ``.
    """
    stats = service.app_stats()
    parts = [f"{stats.jobs} job{'' if stats.jobs == 1 else 's'}"]
    if store_problem:
        why = store_problem if len(store_problem) <= 160 else store_problem[:157] + "..."
        parts[0] = f"store degraded: {why}; {parts[0]}"
    if stats.disabled_jobs:
        parts.append(f"{stats.disabled_jobs} disabled")
    running = service.running()
    if running:
        parts.append(f"{running} running")
    if stats.next_run_at is not None:
        when = stats.next_run_at.astimezone(zone)
        today = clock.now().astimezone(zone).date()
        parts.append("next run " + when.strftime(
            "%H:%M:%S" if when.date() == today else "%Y-%m-%d %H:%M:%S"))
    return ", ".join(parts)


def reload_config(current: Config, reload: Callable[[], Loaded] | None) -> Config:
    """SIGHUP: re-read the config; apply what can change live, name what needs a restart.

    An unreadable or invalid config is logged, every error, and the current one kept.
    """
    if reload is None:
        log.warning("received SIGHUP, but this daemon has no config to re-read")
        return current
    log.info("received SIGHUP, re-reading the configuration")
    try:
        loaded = reload()
    except Exception as exc:  # the loader reports problems; anything else is a bug, logged
        log.exception("re-reading the configuration failed: %s; keeping the current one", exc)
        return current
    if loaded.problems:
        for problem in loaded.problems:
            log.error("config: %s", problem)
        log.error("configuration has %d error%s; keeping the current one",
                  len(loaded.problems), "" if len(loaded.problems) == 1 else "s")
        return current
    new = loaded.config
    live: dict[str, object] = {}
    later: list[str] = []
    for s in SETTINGS:
        old_value, new_value = getattr(current, s.name), getattr(new, s.name)
        if old_value == new_value:
            continue
        change = (f"[{s.section}] {s.name} {format_value(s, old_value) or '(empty)'} -> "
                  f"{format_value(s, new_value) or '(empty)'}")
        if s.name in LIVE_SETTINGS:
            live[s.name] = new_value
            log.info("config: %s (applied)", change)
        else:
            later.append(s.name)
            log.warning("config: %s needs a restart", change)
    if not live and not later:
        log.info("configuration unchanged")
        return current
    applied = dataclasses.replace(current, **live)
    if logs.level_of(applied) != logs.level_of(current):
        logs.set_level(logs.level_of(applied))
    log.info("configuration reloaded: %d change%s applied, %d waiting for a restart%s",
             len(live), "" if len(live) == 1 else "s", len(later),
             f" ({', '.join(later)})" if later else "")
    return applied


def housekeeping(config: Config, service: Service, clock) -> None:
    """Periodic work of the main thread: run-record retention by age."""
    if config.jobstat_ttl < 0:
        return
    try:
        pruned = service.prune_runs(clock.now() - timedelta(minutes=config.jobstat_ttl))
    except StoreError as exc:
        log.warning("pruning old runs failed: %s", exc)
        return
    if pruned:
        log.info("pruned %d run records older than %d minutes", pruned, config.jobstat_ttl)
