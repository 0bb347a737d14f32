"""The daemon's main-thread pieces: SIGHUP reloads, the status line, a hurried shutdown."""

from __future__ import annotations

import logging
import signal
import threading

from kalad import config as settings
from kalad.core.ports import Attempt
from kalad.runtime import daemon
from kalad.runtime.clock import SystemClock
from kalad.runtime.remote import RemoteRunner
from kalad.runtime.signals import SignalQueue
from kalad.runtime.supervisor import Supervisor
from tests.conftest import wait_until


def loader(path):
    return lambda: settings.load({}, str(path))


def test_reload_keeps_the_config_on_errors_and_logs_each(tmp_path, caplog):
    conf = tmp_path / "kalad.conf"
    conf.write_text("[runs]\njobstat_ttl = 60\n")
    current = settings.load({}, str(conf)).config
    conf.write_text("[runs]\njobstat_ttl = x\n[bogus]\n")
    with caplog.at_level(logging.INFO):
        assert daemon.reload_config(current, loader(conf)) is current
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3 and "keeping the current one" in errors[-1]


def test_reload_applies_live_settings_and_names_the_rest(tmp_path, caplog):
    conf = tmp_path / "kalad.conf"
    conf.write_text("")
    current = settings.load({}, str(conf)).config
    conf.write_text("[daemon]\nstop_grace = 3\n[store]\njobdb = memory\n")
    root = logging.getLogger()
    with caplog.at_level(logging.INFO):
        new = daemon.reload_config(current, loader(conf))
    assert new.stop_grace == 3.0 and new.jobdb == "lmdb"  # the store waits for a restart
    text = caplog.text
    assert "[daemon] stop_grace 10 -> 3 (applied)" in text
    assert "[store] jobdb lmdb -> memory needs a restart" in text
    with caplog.at_level(logging.INFO):
        assert daemon.reload_config(new, lambda: settings.load({}, str(tmp_path / "none.conf"))) \
            is new  # a missing --config file is an error, not "back to defaults"
    assert root is logging.getLogger()


def test_status_line(tmp_path):
    from datetime import timezone
    from tests.conftest import FakeClock, ManualLauncher, build_service, make_job
    from kalad.store.memory import MemoryStore

    clock = FakeClock()
    service = build_service(MemoryStore(), ManualLauncher(clock), clock,
                            local_zone=timezone.utc)
    service.load()
    assert daemon.status_line(service, clock, timezone.utc) == "0 jobs"
    service.create_job(make_job("a", schedule="R/2030-01-01T00:00:05Z/PT1H"))
    assert daemon.status_line(service, clock, timezone.utc) == "1 job, next run 00:00:05"


def test_a_second_term_cuts_the_grace_short(tmp_path):
    clock = SystemClock()
    supervisor = Supervisor(clock)
    supervisor.start()
    launchers = daemon.Launchers(supervisor, RemoteRunner(clock))
    done = threading.Event()
    outcomes = []
    argv = ["sh", "-c", "trap '' TERM; echo up; sleep 60"]
    supervisor.launch(Attempt("run1", "job1", "stubborn", 1, argv, {"PATH": "/usr/bin:/bin"}),
                      lambda o: (outcomes.append(o), done.set()))
    wait_until(lambda: supervisor.running())
    signals = SignalQueue()
    stopper = threading.Thread(target=daemon.stop_jobs, args=(launchers, 60.0, signals))
    stopper.start()
    signals.post(signal.SIGTERM)
    stopper.join(timeout=20)
    assert not stopper.is_alive()
    assert done.is_set() and outcomes[0].killed
