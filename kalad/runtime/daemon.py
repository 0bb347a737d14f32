"""The daemon's wiring and lifecycle: the only place concrete parts are put together.

Start-up order: store -> load jobs -> supervisor -> timer -> API bound -> ready.
Shutdown order: stop listening -> no new runs -> stop the timer -> SIGTERM every
running job's process group, SIGKILL after the grace -> record their outcomes ->
commit what is queued -> close the store -> exit 0.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import timedelta

from kalad.api.app import create_app
from kalad.api.jobs import MAX_BODY
from kalad.config import Config, listen_address
from kalad.core.errors import StoreError
from kalad.runtime import systemd
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
HOUSEKEEPING_EVERY = 60.0


class Launchers:
    """The service's one launcher: local attempts to the supervisor, HTTP ones to the pool."""

    def __init__(self, local: Supervisor, remote: RemoteRunner) -> None:
        self.local = local
        self.remote = remote

    def launch(self, attempt, done) -> None:
        (self.remote if attempt.request is not None else self.local).launch(attempt, done)

    def terminate_all(self, grace: float) -> None:
        """Stop both at once, each given the same grace."""
        remote = threading.Thread(target=self.remote.terminate_all, args=(grace,))
        remote.start()
        self.local.terminate_all(grace)
        remote.join()
        self.local.stop()
        self.remote.stop()


class StartupError(Exception):
    """Start-up cannot go on; the message is the one line the user sees."""


def job_environment(environ: dict[str, str]) -> dict[str, str]:
    """The base environment of every job: a few locale and path variables, nothing else."""
    env = {"PATH": environ.get("PATH") or DEFAULT_PATH}
    for name in ("HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME"):
        if name in environ:
            env[name] = environ[name]
    return env


def serve(config: Config) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT; return the exit status."""
    signals = SignalQueue(signal.SIGTERM, signal.SIGINT)
    clock = SystemClock()
    try:
        store = open_store(config.jobdb, lmdb_path=config.lmdb_path, keep_runs=config.keep_runs)
    except (StoreError, OSError) as exc:
        raise StartupError(f"cannot open the job store: {exc}") from None
    committer = GroupCommitter(store)
    supervisor = Supervisor(clock, reap_orphans=True)
    launchers = Launchers(supervisor, RemoteRunner(clock))
    service = Service(
        store,
        launchers,
        clock,
        committer,
        local_zone=local_zone(),
        base_env=job_environment(dict(os.environ)),
        default_owner=config.default_owner,
        recent_stats=config.stats_per_job,
    )
    try:
        count = service.load()
    except StoreError as exc:
        committer.close()
        store.close()
        raise StartupError(f"cannot load jobs: {exc}") from None
    host, port = listen_address(config)
    try:
        server = ApiServer(create_app(service), host, port, threads=config.threads,
                           max_body=MAX_BODY + 4096)
    except OSError as exc:
        committer.close()
        store.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    timer = Timer(service.tick, service.next_due, clock)
    service.set_waker(timer.wake)
    supervisor.start()
    timer.start()
    server.start()
    bound_host, bound_port = server.address
    log.info("kalad ready: %d jobs, API on http://%s:%s/api/v1/, store %s",
             count, bound_host, bound_port, config.jobdb)
    systemd.notify("READY=1", f"STATUS={count} jobs", f"MAINPID={os.getpid()}")

    while True:
        signum = signals.get(timeout=HOUSEKEEPING_EVERY)
        if signum is not None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            break
        housekeeping(config, store, clock)

    systemd.notify("STOPPING=1")
    server.stop_listening()
    service.stop_accepting()
    timer.stop()
    launchers.terminate_all(config.stop_grace)
    server.close()
    committer.close()
    store.close()
    log.info("kalad stopped")
    return 0


def housekeeping(config: Config, store, clock) -> None:
    """Periodic work of the main thread: run-record retention by age."""
    if config.jobstat_ttl < 0:
        return
    try:
        pruned = store.prune_runs(clock.now() - timedelta(minutes=config.jobstat_ttl))
    except StoreError as exc:
        log.warning("pruning old runs failed: %s", exc)
        return
    if pruned:
        log.info("pruned %d run records older than %d minutes", pruned, config.jobstat_ttl)
