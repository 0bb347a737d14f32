"""The timer thread with the real service and supervisor: no deadlock under load.

Runs ending on the supervisor thread wake the timer while holding the service's
lock, and the timer asks the service for its next due time: the timer's own lock
must never be held while it calls the service (a lock-order deadlock once hung
the daemon within seconds of a 50 jobs/s benchmark).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from datetime import datetime, timedelta, timezone

from kalad.runtime.clock import SystemClock
from kalad.runtime.supervisor import Supervisor
from kalad.runtime.timer import Timer
from kalad.service import Service
from kalad.store.committer import GroupCommitter
from kalad.store.memory import MemoryStore
from tests.conftest import make_job, wait_until

PR_GET_TIMERSLACK = 30


def test_busy_schedules_never_deadlock_the_api(caplog):
    caplog.set_level(logging.ERROR)  # overload makes every job log its missed occurrences
    clock = SystemClock()
    supervisor = Supervisor(clock)
    store = MemoryStore()
    committer = GroupCommitter(store)
    service = Service(store, supervisor, clock, committer, base_env={"PATH": "/usr/bin:/bin"})
    timer = Timer(service.tick, service.next_due, clock)
    service.set_waker(timer.wake)
    supervisor.start()
    timer.start()
    start = datetime.now(timezone.utc) + timedelta(seconds=0.2)
    schedule = f"R/{start.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}/PT0.02S"
    try:
        for i in range(100):
            service.create_job(make_job(f"j{i}", id=f"j{i}", schedule=schedule))
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            answered = threading.Event()
            threading.Thread(target=lambda: (service.app_stats(), answered.set()),
                             daemon=True).start()
            assert answered.wait(5), "the service stopped answering: deadlock"
            time.sleep(0.01)
        assert service.app_stats().success_count > 100
    finally:
        service.stop_accepting()
        timer.stop()
        supervisor.terminate_all(1)
        supervisor.stop()
        committer.close()


def run_two_starts(late_by: timedelta, first_hangs: bool,
                   max_wait: float = 5.0) -> tuple[list, list, bool]:
    """Two jobs 0.1 s apart on a two-thread timer whose tick says the jobs are
    ``late_by``; return the jobs started, the threads that started them, and whether
    the first start was still hanging when the second began."""
    clock = SystemClock()
    now = clock.now()
    due = [now + timedelta(seconds=0.2), now + timedelta(seconds=0.3)]
    lock = threading.Lock()
    started: list[datetime] = []
    threads: list[threading.Thread] = []
    release = threading.Event()
    overlapped = []

    def next_due():
        with lock:
            return due[0] if due else None

    def tick(lead, limit, handoff):
        with lock:
            if not due or due[0] > clock.now() + lead:
                return
            taken = due.pop(0)
        handoff(late_by)
        started.append(taken)
        threads.append(threading.current_thread())
        if len(started) == 1 and first_hangs:
            release.wait(10)  # the first start hangs
        elif len(started) == 2:
            overlapped.append(not release.is_set())

    timer = Timer(tick, next_due, clock, threads=2, batch=1, behind=0.001, max_wait=max_wait)
    timer.start()
    try:
        deadline = time.monotonic() + 5
        while len(started) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        release.set()
        timer.stop()
    return started, threads, bool(overlapped and overlapped[0])


def test_a_timer_behind_starts_on_another_thread_while_a_start_hangs():
    started, threads, overlapped = run_two_starts(timedelta(seconds=0.01), first_hangs=True)
    assert len(started) == 2 and started[0] < started[1]
    assert overlapped and threads[0] is not threads[1]


def test_a_timer_on_time_starts_everything_on_one_thread():
    started, threads, _ = run_two_starts(timedelta(seconds=-0.001), first_hangs=False)
    assert len(started) == 2 and threads[0] is threads[1]


def test_a_start_hanging_on_time_is_taken_over_after_max_wait(caplog):
    caplog.set_level(logging.WARNING)
    started, threads, overlapped = run_two_starts(timedelta(seconds=-0.001), first_hangs=True,
                                                  max_wait=0.3)
    assert len(started) == 2 and overlapped and threads[0] is not threads[1]
    assert any("another timer thread takes over" in r.getMessage() for r in caplog.records)


def test_timer_threads_sleep_without_timer_slack():
    """A start's last wait for its instant is on a timer thread: no 50 µs of slack there."""
    slack: list[int] = []

    def tick(lead, batch, handoff):
        slack.append(ctypes.CDLL(None).prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0))  # this thread's

    timer = Timer(tick, lambda: None, SystemClock(), max_wait=0.01)
    timer.start()
    try:
        wait_until(lambda: slack)
    finally:
        timer.stop()
    assert slack[0] == 1
