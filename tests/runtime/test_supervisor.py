"""The supervisor against real child processes: no mocks, no sleeping to synchronise."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone

import pytest

from kalad.core.ports import Attempt
from kalad.core.runs import AttemptOutcome
from kalad.runtime.clock import SystemClock
from kalad.runtime.supervisor import Supervisor
from tests.conftest import group_gone

pytestmark = pytest.mark.timeout(120)

WAIT = 10.0
BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KALAD_JOB_ID": "job-1"}


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def make_attempt(*argv: str, env: Mapping[str, str] | None = None, timeout: float | None = None,
                 name: str = "job", run_id: str = "run-1") -> Attempt:
    return Attempt(run_id=run_id, job_id="job-1", job_name=name, number=1, argv=argv,
                   env=BASE_ENV if env is None else env, timeout=timeout)


class Waiter:
    """A ``done`` callback that records outcomes and the thread each came on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.outcomes: list[AttemptOutcome] = []
        self.threads: list[str] = []

    def __call__(self, outcome: AttemptOutcome) -> None:
        self.outcomes.append(outcome)
        self.threads.append(threading.current_thread().name)
        self.event.set()

    def wait(self) -> AttemptOutcome:
        assert self.event.wait(WAIT), "done was not called in time"
        assert len(self.outcomes) == 1
        return self.outcomes[0]


def exited_unreaped(pid: int) -> bool:
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def test_an_unknown_exited_child_is_reaped_at_once_when_no_spawn_is_in_flight():
    # Not started: this test is the supervisor's watcher, so nothing else sweeps.
    sup = Supervisor(SystemClock(), reap_orphans=True)
    try:
        pid = os.posix_spawn("/bin/true", ["/bin/true"], dict(os.environ))
        wait_until(lambda: exited_unreaped(pid))
        sup._sweep_orphans()
        with pytest.raises(ChildProcessError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)
    finally:
        sup.stop()


def test_an_unknown_exited_child_is_taken_for_an_orphan_at_the_second_sweep_during_a_spawn():
    # It may be the attempt that spawn is still registering: the first sweep leaves
    # it rather than hold off every spawn to find out.
    sup = Supervisor(SystemClock(), reap_orphans=True)
    try:
        assert sup._enter_spawn()
        pid = os.posix_spawn("/bin/true", ["/bin/true"], dict(os.environ))
        wait_until(lambda: exited_unreaped(pid))
        sup._sweep_orphans()
        assert exited_unreaped(pid)
        # Still unknown at the next: it waits for the spawns in flight, then reaps.
        threading.Timer(0.2, sup._leave_spawn).start()
        sup._sweep_orphans()
        with pytest.raises(ChildProcessError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)
        # The last sweep, when the watcher ends, has no next one to wait for.
        assert sup._enter_spawn()
        pid = os.posix_spawn("/bin/true", ["/bin/true"], dict(os.environ))
        wait_until(lambda: exited_unreaped(pid))
        threading.Timer(0.2, sup._leave_spawn).start()
        sup._sweep_orphans(final=True)
        with pytest.raises(ChildProcessError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)
    finally:
        sup.stop()


def launch(sup: Supervisor, attempt: Attempt) -> tuple[Waiter, int]:
    """Launch and return the waiter and the child's pid (its process group id)."""
    waiter = Waiter()
    sup.launch(attempt, waiter)
    pids = [pid for run_id, _name, pid in sup.running() if run_id == attempt.run_id]
    assert pids, "the child is gone already: use this only for long-lived children"
    return waiter, pids[0]


def run(sup: Supervisor, *argv: str, **kwargs) -> AttemptOutcome:
    waiter = Waiter()
    sup.launch(make_attempt(*argv, **kwargs), waiter)
    return waiter.wait()


@pytest.fixture
def make_sup() -> Iterator[Callable[..., Supervisor]]:
    made: list[Supervisor] = []

    def make(**kwargs) -> Supervisor:
        # Adopting and reaping orphans keeps "the group is gone" checks independent
        # of how promptly the machine's init reaps (a container's may never).
        kwargs.setdefault("reap_orphans", True)
        sup = Supervisor(SystemClock(), **kwargs)
        sup.start()
        made.append(sup)
        return sup

    yield make
    for sup in made:
        sup.stop()


@pytest.fixture
def sup(make_sup) -> Supervisor:
    return make_sup()


def zombie_children() -> list[int]:
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == me:
            found.append(int(entry))
    return found


# -- what a child gets and what comes back ----------------------------------------------------


def test_success_captures_output(sup):
    waiter = Waiter()
    sup.launch(make_attempt("echo", "hello"), waiter)
    outcome = waiter.wait()
    assert outcome.exit_status == 0
    assert outcome.output == "hello\n"
    assert outcome.message == ""
    assert not outcome.killed
    assert outcome.success
    assert outcome.started_at.tzinfo is not None
    assert outcome.started_at <= outcome.ended_at
    assert waiter.threads == ["supervisor"]


@pytest.mark.parametrize("alone", [False, True])  # alone: the child has the CPU first
def test_an_attempt_with_a_start_instant_starts_on_it(sup, alone):
    start_at = datetime.now(timezone.utc) + timedelta(seconds=0.3)
    waiter = Waiter()
    sup.launch(dataclasses.replace(make_attempt("date", "+%s.%N"), start_at=start_at,
                                   alone=alone), waiter)
    outcome = waiter.wait()
    assert outcome.exit_status == 0
    assert start_at <= outcome.started_at  # measured once the wait is over
    assert float(outcome.output) >= outcome.started_at.timestamp()  # the child's own clock


def test_stdout_and_stderr_share_one_pipe(sup):
    outcome = run(sup, "sh", "-c", "echo out; echo err >&2")
    assert outcome.output == "out\nerr\n"


def test_non_zero_exit(sup):
    outcome = run(sup, "sh", "-c", "echo failing; exit 3")
    assert outcome.exit_status == 3
    assert outcome.message == "exit status 3"
    assert outcome.output == "failing\n"
    assert not outcome.killed
    assert not outcome.success


def test_killed_by_a_signal_it_was_not_sent_by_kalad(sup):
    outcome = run(sup, "sh", "-c", "kill -KILL $$")
    assert outcome.exit_status == -signal.SIGKILL
    assert outcome.message == "killed by signal 9 (SIGKILL)"
    assert not outcome.killed


def test_command_not_found(sup):
    waiter = Waiter()
    sup.launch(make_attempt("kalad-no-such-command", "x"), waiter)
    assert waiter.event.is_set()  # reported at once, on the calling thread
    outcome = waiter.wait()
    assert outcome.exit_status is None
    assert outcome.message == "command not found: kalad-no-such-command"
    assert not outcome.killed
    assert sup.running() == []


@pytest.mark.parametrize("argv, env, why", [
    (("echo", "a\0b"), {}, "NUL byte"),
    (("echo",), {"A=B": "x"}, "illegal environment variable name"),
    (("echo",), {"A": "x\0y"}, "NUL byte"),
])
def test_an_argument_or_environment_exec_cannot_take_is_refused(sup, argv, env, why):
    outcome = run(sup, *argv, env=env)
    assert outcome.exit_status is None and why in outcome.message, outcome.message
    assert sup.running() == []


def test_command_not_found_by_path(sup, tmp_path):
    missing = str(tmp_path / "missing")
    outcome = run(sup, missing)
    assert outcome.exit_status is None
    assert outcome.message == f"command not found: {missing}"


def test_permission_denied(sup, tmp_path):
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho hi\n")
    outcome = run(sup, str(script))
    assert outcome.exit_status is None
    assert outcome.message == f"permission denied: {script}"
    env = dict(BASE_ENV, PATH=f"{tmp_path}:/usr/bin:/bin")
    outcome = run(sup, "not-executable", env=env)
    assert outcome.message == "permission denied: not-executable"


def test_command_is_searched_on_the_attempts_path(sup, tmp_path):
    script = tmp_path / "kalad-test-hello"
    script.write_text("#!/bin/sh\necho from-job-path\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    outcome = run(sup, "kalad-test-hello", env=dict(BASE_ENV, PATH=f"{tmp_path}:/usr/bin:/bin"))
    assert outcome.output == "from-job-path\n"
    assert run(sup, "kalad-test-hello").message == "command not found: kalad-test-hello"


def test_empty_command(sup):
    outcome = run(sup)
    assert outcome.exit_status is None
    assert outcome.message.endswith("empty command")


def test_output_keeps_only_the_tail(make_sup):
    sup = make_sup(output_limit=4096)
    outcome = run(sup, "sh", "-c", "yes 0123456789 | head -n 100000; echo the-end")
    assert outcome.exit_status == 0
    assert len(outcome.output) == 4096
    assert outcome.output.endswith("0123456789\nthe-end\n")


def test_output_is_decoded_with_replacement(sup):
    outcome = run(sup, "printf", r"\377ok\n")
    assert outcome.output == "\ufffdok\n"


def test_environment_is_exactly_the_attempts(sup, monkeypatch):
    monkeypatch.setenv("KALAD_TEST_DAEMON_ONLY", "must-not-leak")
    outcome = run(sup, "env")
    lines = set(outcome.output.splitlines())
    assert lines == {f"PATH={BASE_ENV['PATH']}", "KALAD_JOB_ID=job-1"}


def test_stdin_is_dev_null(sup):
    outcome = run(sup, "cat")
    assert outcome.exit_status == 0
    assert outcome.output == ""


def test_child_leads_a_new_session_and_process_group(sup):
    outcome = run(sup, "cat", "/proc/self/stat")
    pid, rest = outcome.output.split(" ", 1)
    _state, _ppid, pgrp, session = rest.rsplit(")", 1)[1].split()[:4]
    assert int(pgrp) == int(pid)
    assert int(session) == int(pid)


def test_child_starts_with_default_signals_and_an_empty_mask(sup):
    # Python ignores SIGPIPE; a child that inherited that would see EPIPE instead of dying.
    # (glibc's posix_spawn leaves its two internal signals, 32 and 33, ignored: not ours.)
    ordinary = sum(1 << (int(sig) - 1) for sig in signal.valid_signals())
    outcome = run(sup, "cat", "/proc/self/status")
    fields = dict(line.split(":\t", 1) for line in outcome.output.splitlines() if ":\t" in line)
    assert int(fields["SigIgn"], 16) & ordinary == 0
    assert int(fields["SigBlk"], 16) == 0
    assert run(sup, "sh", "-c", "yes | head -n 1").output == "y\n"


def test_running_lists_live_children(sup):
    waiter, pid = launch(sup, make_attempt("sleep", "60", name="sleeper", run_id="run-9"))
    assert sup.running() == [("run-9", "sleeper", pid)]
    os.killpg(pid, signal.SIGKILL)
    assert waiter.wait().exit_status == -signal.SIGKILL
    assert sup.running() == []


# -- timeouts and shutdown -------------------------------------------------------------


def test_timeout_kills_the_whole_group(sup):
    waiter, pgid = launch(sup, make_attempt("sh", "-c", "sleep 100 & sleep 100", timeout=0.5))
    outcome = waiter.wait()
    assert outcome.killed
    assert outcome.message == "timed out after 0.5 s"
    assert outcome.exit_status == -signal.SIGTERM
    assert not outcome.success
    wait_until(lambda: group_gone(pgid))


def test_timeout_escalates_to_sigkill(make_sup):
    sup = make_sup(kill_grace=0.2)
    waiter, pgid = launch(sup, make_attempt("sh", "-c", 'trap "" TERM; sleep 60', timeout=1))
    outcome = waiter.wait()
    assert outcome.killed
    assert outcome.message == "timed out after 1 s"
    assert outcome.exit_status == -signal.SIGKILL
    wait_until(lambda: group_gone(pgid))


def test_terminate_all_stops_children_with_sigterm(sup):
    waiter, pgid = launch(sup, make_attempt("sleep", "60", name="sleeper"))
    sup.terminate_all(5.0)
    assert waiter.event.is_set()  # every done has run when terminate_all returns
    outcome = waiter.wait()
    assert outcome.killed
    assert outcome.message == "killed by kalad at shutdown (SIGTERM)"
    assert outcome.exit_status == -signal.SIGTERM
    assert sup.running() == []
    wait_until(lambda: group_gone(pgid))


def test_terminate_all_kills_what_ignores_sigterm(sup, tmp_path, caplog):
    ready = tmp_path / "ready"
    waiter, pgid = launch(sup, make_attempt(
        "sh", "-c", f'trap "" TERM; touch {ready}; sleep 60', name="stubborn"))
    wait_until(ready.exists)
    with caplog.at_level(logging.INFO, logger="kalad.runtime.supervisor"):
        sup.terminate_all(0.3)
    assert waiter.event.is_set()
    outcome = waiter.wait()
    assert outcome.killed
    assert outcome.message == "killed by kalad at shutdown (SIGKILL)"
    assert outcome.exit_status == -signal.SIGKILL
    assert f"waiting for 1 job: stubborn (pid {pgid})" in caplog.messages
    wait_until(lambda: group_gone(pgid))


def test_launch_after_terminate_all_is_refused(sup):
    sup.terminate_all(1.0)
    waiter = Waiter()
    sup.launch(make_attempt("true"), waiter)
    outcome = waiter.wait()
    assert outcome.killed
    assert outcome.exit_status is None
    assert outcome.message == "not started: kalad is stopping"


def test_stop_kills_leftovers_and_is_idempotent():
    sup = Supervisor(SystemClock())
    sup.start()
    waiter, pgid = launch(sup, make_attempt("sleep", "60"))
    sup.stop()
    assert waiter.wait().killed
    sup.stop()
    wait_until(lambda: group_gone(pgid))


# -- robustness -------------------------------------------------------------------------


def test_many_launches_leave_no_fds_and_no_zombies(sup):
    fds_before = len(os.listdir("/proc/self/fd"))
    in_flight = threading.Semaphore(32)
    finished = threading.Semaphore(0)
    outcomes: list[AttemptOutcome] = []

    def done(outcome: AttemptOutcome) -> None:
        outcomes.append(outcome)
        in_flight.release()
        finished.release()

    for i in range(200):
        assert in_flight.acquire(timeout=WAIT)
        sup.launch(make_attempt("true", run_id=f"run-{i}"), done)
    for _ in range(200):
        assert finished.acquire(timeout=WAIT)
    assert len(outcomes) == 200
    assert all(o.exit_status == 0 for o in outcomes)
    assert sup.running() == []
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert zombie_children() == []


def test_a_child_that_cannot_be_watched_is_killed_and_reported_once(sup, monkeypatch, tmp_path):
    # epoll refusing a descriptor (fs.epoll.max_user_watches reached) cannot be caused
    # for one process alone: the second registration, the pipe's, is made to fail.
    real = sup._watch_fd

    def full(fd, data):
        if data is not None and data[1] == "out":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(sup, "_watch_fd", full)
    fds_before = len(os.listdir("/proc/self/fd"))
    marker = tmp_path / "ran"
    waiter = Waiter()
    sup.launch(make_attempt("sh", "-c", f"sleep 0.5; touch {marker}"), waiter)
    outcome = waiter.wait()
    assert outcome.exit_status is None
    assert outcome.message == "cannot watch sh: No space left on device"
    assert sup.running() == []
    time.sleep(1)
    assert not marker.exists(), "the unwatched child was left running"
    assert len(waiter.outcomes) == 1
    assert len(os.listdir("/proc/self/fd")) == fds_before
    # The killed group's other members came to this process: a sweep reaps them.
    wait_until(lambda: zombie_children() == [])


def test_concurrent_launches_from_several_threads(sup):
    lock = threading.Lock()
    outputs: dict[str, list[str]] = {}
    all_done = threading.Event()
    total = 4 * 25

    def launcher(t: int) -> None:
        for i in range(25):
            key = f"{t}-{i}"

            def done(outcome: AttemptOutcome, key: str = key) -> None:
                with lock:
                    outputs.setdefault(key, []).append(outcome.output)
                    if len(outputs) == total:
                        all_done.set()

            sup.launch(make_attempt("sh", "-c", f"echo {key}", run_id=key), done)

    threads = [threading.Thread(target=launcher, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert all_done.wait(WAIT)
    assert outputs == {key: [f"{key}\n"] for key in outputs}
    assert len(outputs) == total


def test_done_callback_errors_do_not_stop_the_watcher(sup, caplog):
    def broken(outcome: AttemptOutcome) -> None:
        raise RuntimeError("callback bug")

    waiter = Waiter()
    with caplog.at_level(logging.ERROR, logger="kalad.runtime.supervisor"):
        sup.launch(make_attempt("true", run_id="run-a"), broken)
        sup.launch(make_attempt("echo", "still here", run_id="run-b"), waiter)
        assert waiter.wait().output == "still here\n"
        # Both may be reaped in one round, run-b first: wait for run-a's report itself.
        wait_until(lambda: any("done callback failed" in r.getMessage() and r.exc_info
                               for r in caplog.records))
        wait_until(lambda: sup.running() == [])


def kill_leftovers(pgid: int) -> None:
    """SIGKILL what is left of a finished attempt's group (its grandchildren pin the id)."""
    assert pgid > 1  # never killpg(0): that is the test's own group
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    wait_until(lambda: group_gone(pgid))


def test_grandchild_with_redirected_output_does_not_hold_the_attempt(sup):
    outcome = run(sup, "sh", "-c", "sleep 30 >/dev/null 2>&1 & echo done $$")
    word, pgid = outcome.output.split()
    kill_leftovers(int(pgid))
    assert outcome.exit_status == 0
    assert word == "done"


def test_grandchild_holding_the_pipe_does_not_hold_the_attempt(sup):
    outcome = run(sup, "sh", "-c", "(sleep 30 &) ; echo hi $$")
    word, pgid = outcome.output.split()
    kill_leftovers(int(pgid))
    assert outcome.exit_status == 0
    assert word == "hi"
    assert sup.running() == []


def group_members(pgid: int) -> dict[int, int]:
    """pid -> parent pid of every process in the group."""
    members = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            members[int(entry)] = int(fields[1])
    return members


def test_reap_orphans_adopts_and_reaps_grandchildren(make_sup):
    sup = make_sup(reap_orphans=True)
    outcome = run(sup, "sh", "-c", "(sleep 30 &) ; echo $$")
    pgid = int(outcome.output)
    try:
        # Orphaned when its parent exited, the sleep came to this process, not to init...
        wait_until(lambda: list(group_members(pgid).values()) == [os.getpid()])
    finally:
        os.killpg(pgid, signal.SIGKILL)
    # ...so only the supervisor can reap it: the group vanishing proves it did.
    wait_until(lambda: group_gone(pgid))
    assert zombie_children() == []
