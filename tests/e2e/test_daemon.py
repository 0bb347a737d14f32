"""The real daemon over real HTTP: timing, counts, restarts, kill -9, SIGTERM, start-up errors."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import group_gone, wait_until
from tests.e2e.daemon import Daemon, create_until_killed


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{when.microsecond:06d}Z"


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path).start()
    yield d
    d.stop()


def stamp_command(path) -> str:
    return f"sh -c 'date +%s.%N >> {path}'"


def stamps(path) -> list[float]:
    try:
        return [float(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return []


def test_job_runs_within_a_second_of_its_instant(daemon, tmp_path):
    out = tmp_path / "stamps"
    start = datetime.now(timezone.utc) + timedelta(seconds=2)
    job_id = daemon.create(name="soon", command=stamp_command(out), schedule=f"R0/{iso(start)}/")
    [stamp] = wait_until(lambda: stamps(out), timeout=15)
    lateness = stamp - start.timestamp()
    assert 0 <= lateness < 1.0, lateness
    wait_until(lambda: daemon.request("GET", f"/job/{job_id}/")[1]["job"]["is_done"])


def test_r1_every_second_runs_exactly_twice(daemon, tmp_path):
    out = tmp_path / "stamps"
    start = datetime.now(timezone.utc) + timedelta(seconds=1)
    job_id = daemon.create(name="r1", command=stamp_command(out), schedule=f"R1/{iso(start)}/PT1S")
    wait_until(lambda: daemon.request("GET", f"/job/{job_id}/")[1]["job"]["is_done"], timeout=15)
    time.sleep(1.5)  # a third run would have come by now
    got = stamps(out)
    assert len(got) == 2
    assert 0.9 < got[1] - got[0] < 1.1  # on the grid, one second apart
    meta = daemon.request("GET", f"/job/{job_id}/")[1]["job"]["metadata"]
    assert meta["success_count"] == 2 and meta["number_of_finished_runs"] == 2


def test_one_off_runs_once_with_output_and_environment(daemon, tmp_path):
    job_id = daemon.create(name="hello world", command="sh -c 'echo $KALAD_JOB_NAME; echo oops >&2'")
    runs = wait_until(lambda: daemon.runs(job_id), timeout=15)
    assert len(runs) == 1
    assert runs[0]["status"] == "succeeded"
    assert runs[0]["output"] == "hello world\noops\n"
    assert daemon.request("GET", f"/job/stats/{job_id}/")[1]["job_stats"][0]["success"] is True


def test_missing_command_is_a_failed_run_with_a_message(daemon):
    job_id = daemon.create(name="nope", command="/no/such/program --flag")
    [run] = wait_until(lambda: daemon.runs(job_id), timeout=15)
    assert run["status"] == "failed" and "/no/such/program" in run["message"]


def test_restart_keeps_jobs_counters_and_runs(tmp_path):
    d = Daemon(tmp_path).start()
    once = d.create(name="once", command="true")
    wait_until(lambda: d.runs(once))
    far = d.create(name="far", command="true", schedule="R/2099-01-01T00:00:00Z/P1D", retries=2)
    child = d.create(name="child", command="true", parent_jobs=[far])
    off = d.create(name="off", command="true", schedule="R/2099-01-01T00:00:00Z/P1D", disabled=True)
    assert d.request("POST", f"/job/start/{far}/")[0] == 204
    wait_until(lambda: d.runs(far))
    before = d.request("GET", "/job/")[1]["jobs"]
    assert d.stop() == 0
    d = Daemon(tmp_path, port=d.port).start()
    try:
        after = d.request("GET", "/job/")[1]["jobs"]
        assert set(after) == {once, far, child, off}
        for job_id in after:
            assert after[job_id]["metadata"] == before[job_id]["metadata"]
            assert after[job_id]["dependent_jobs"] == before[job_id]["dependent_jobs"]
            assert after[job_id]["disabled"] == before[job_id]["disabled"]
        assert len(d.runs(once)) == 1  # a finished one-off does not run again
        assert len(d.runs(far)) == 1
    finally:
        d.stop()


def test_kill_9_during_concurrent_creates_loses_no_acknowledged_job(tmp_path):
    acknowledged: set[str] = set()
    port = None
    for round_ in range(20):
        d = Daemon(tmp_path, port=port).start()
        port = d.port
        acknowledged |= create_until_killed(d, f"r{round_}", 0.2 + 0.02 * round_,
                                            schedule="R/2099-01-01T00:00:00Z/P1D")
    d = Daemon(tmp_path, port=port).start()
    try:
        stored = set(d.request("GET", "/job/")[1]["jobs"])
        assert acknowledged, "no job was acknowledged at all"
        assert acknowledged <= stored, f"lost {len(acknowledged - stored)} of {len(acknowledged)}"
    finally:
        d.stop()


def test_sigterm_kills_running_jobs_and_records_them(tmp_path):
    d = Daemon(tmp_path).start()
    pidfile = tmp_path / "pid"
    job_id = d.create(name="sleeper", command=f"sh -c 'echo $$ > {pidfile}; sleep 60 & sleep 60'")
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip()))
    began = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - began < 10
    wait_until(lambda: group_gone(pid), timeout=5)  # the whole process group, reaped
    d = Daemon(tmp_path, port=d.port).start()
    try:
        [run] = d.runs(job_id)
        assert run["status"] == "killed"
    finally:
        d.stop()


def test_port_taken_is_one_line_and_nonzero(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "kalad.cli.kalad", "serve", "--port", str(port),
             "--lmdb-path", str(tmp_path / "lmdb")],
            capture_output=True, text=True, timeout=30,
        )
    assert proc.returncode != 0
    errors = [l for l in proc.stderr.splitlines() if "kalad: error:" in l]
    assert len(errors) == 1 and str(port) in errors[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args,word", [
    (["--port", "notaport"], "port"),
    (["--jobdb", "bolt"], "jobdb"),
    (["--nonsense"], "unrecognized"),
])
def test_bad_flags_are_one_line_exit_2(tmp_path, args, word):
    proc = subprocess.run([sys.executable, "-m", "kalad.cli.kalad", "serve", *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and word in proc.stderr


def test_unreadable_store_is_one_line_and_nonzero(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "kalad.cli.kalad", "serve", "--port", "0",
         "--lmdb-path", str(not_a_dir)],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 1
    assert "kalad: error: cannot open the job store" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_kalad_run_reports_success_and_failure():
    ok = subprocess.run([sys.executable, "-m", "kalad.cli.kalad", "run", "echo hi there"],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0
    assert ok.stdout == "Command Succeeded!\nOutput:  hi there\n"
    bad = subprocess.run([sys.executable, "-m", "kalad.cli.kalad", "run", "sh -c 'echo no; exit 3'"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "exit status 3" in bad.stderr and "no" in bad.stderr
