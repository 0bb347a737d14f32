"""What only the LMDB store promises: durability, files on disk, growth, damage, refusal."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import lmdb
import pytest

from kalad.core.errors import StoreError
from kalad.core.job import Job
from kalad.core.ports import Change
from kalad.core.runs import Run, RunStatus, Trigger
from kalad.store.codec import encode_job
from kalad.store.lmdb import LmdbStore

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parents[2]


def job(job_id: str, command: str = "true") -> Job:
    return Job(id=job_id, name=f"name of {job_id}", created_at=T0, command=command)


def run(job_id: str, n: int) -> Run:
    started = T0 + timedelta(seconds=n)
    return Run(
        id=f"run-{n:05d}",
        job_id=job_id,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.SUCCEEDED,
        started_at=started,
        ended_at=started + timedelta(seconds=1),
        output="x" * 50,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "lmdb"


def test_jobs_and_runs_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "lmdb"
    store = LmdbStore(path, keep_runs=10)
    jobs = [job(f"j{i}") for i in range(5)]
    store.apply([Change(put=tuple(jobs), runs=tuple(run("j0", n) for n in range(10)))])
    store.close()

    store = LmdbStore(path, keep_runs=10)
    try:
        assert sorted(store.load().jobs, key=lambda j: j.id) == jobs
        # The run count of a job is recounted after reopening, so retention still holds.
        store.apply([Change(runs=tuple(run("j0", n) for n in range(10, 15)))])
        assert [r.id for r in store.list_runs("j0")] == [f"run-{n:05d}" for n in range(5, 15)]
    finally:
        store.close()


def test_an_applied_change_survives_kill_9(path: Path) -> None:
    script = """
import os, sys
from datetime import datetime, timezone
from kalad.core.job import Job
from kalad.core.ports import Change
from kalad.store.lmdb import LmdbStore
store = LmdbStore(sys.argv[1])
job = Job(id="survivor", name="s", created_at=datetime(2030, 1, 1, tzinfo=timezone.utc))
store.apply([Change(put=(job,))])
print("ok", flush=True)
os.kill(os.getpid(), 9)
"""
    child = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.stdout == "ok\n", child.stderr
    assert child.returncode == -9
    store = LmdbStore(path)  # the dead child's lock is gone with it
    try:
        assert [j.id for j in store.load().jobs] == ["survivor"]
    finally:
        store.close()


def test_a_full_map_grows_while_readers_keep_reading(path: Path) -> None:
    store = LmdbStore(path, map_size=256 * 1024, keep_runs=10_000)
    store.apply([Change(runs=(run("watched", 0),))])
    failures: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                assert store.list_runs("watched", limit=1)
            except BaseException as exc:  # reported to the main thread below
                failures.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        jobs = [job(f"job-{i:05d}", command="echo " + "y" * 200) for i in range(3000)]
        store.apply([Change(put=tuple(jobs))])  # about 1 MiB in one transaction
        for chunk in range(20):
            store.apply([Change(runs=tuple(run("watched", chunk * 100 + n) for n in range(100)))])
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    try:
        assert failures == []
        assert os.path.getsize(path / "data.mdb") > 4 * 256 * 1024
        assert len(store.load().jobs) == 3000
        assert len(store.list_runs("watched")) == 2000
    finally:
        store.close()


def test_a_broken_record_is_reported_and_the_rest_load(path: Path) -> None:
    store = LmdbStore(path)
    store.apply([Change(put=(job("good1"), job("good2")))])
    store.close()
    env = lmdb.open(str(path), max_dbs=3)
    with env.begin(write=True) as txn:
        jobs = env.open_db(b"jobs", txn=txn)
        txn.put(b"bad", b"\x00garbage", db=jobs)
        txn.put(b"moved", encode_job(job("elsewhere")), db=jobs)
    env.close()

    store = LmdbStore(path)
    try:
        loaded = store.load()
        assert sorted(j.id for j in loaded.jobs) == ["good1", "good2"]
        assert dict(loaded.broken).keys() == {"bad", "moved"}
        assert "not JSON" in dict(loaded.broken)["bad"]
        assert "elsewhere" in dict(loaded.broken)["moved"]
    finally:
        store.close()


def test_a_failed_apply_changes_nothing(path: Path) -> None:
    store = LmdbStore(path)
    try:
        store.apply([Change(put=(job("kept"),))])
        naive = Job(id="naive", name="n", created_at=datetime(2030, 1, 1))
        with pytest.raises(StoreError, match="naive datetime"):
            store.apply([Change(put=(job("new"),), delete=("kept",)), Change(put=(naive,))])
        with pytest.raises(StoreError, match="NUL"):
            store.apply([Change(put=(job("new"),)), Change(runs=(run("a\x00b", 1),))])
        assert [j.id for j in store.load().jobs] == ["kept"]
    finally:
        store.close()


def test_prune_works_through_many_batches(path: Path) -> None:
    store = LmdbStore(path)
    try:
        store.apply([Change(runs=tuple(run(f"j{j}", n) for j in range(50) for n in range(500)))])
        assert store.prune_runs(T0 + timedelta(seconds=400)) == 50 * 399
        assert [r.id for r in store.list_runs("j7", limit=1)] == ["run-00499"]
        assert len(store.list_runs("j7")) == 101
    finally:
        store.close()


def test_a_store_with_a_newer_schema_is_refused(path: Path) -> None:
    LmdbStore(path).close()
    env = lmdb.open(str(path), max_dbs=3)
    with env.begin(write=True) as txn:
        txn.put(b"schema", b"2", db=env.open_db(b"meta", txn=txn))
    env.close()
    refusal = f"^store at {path} has schema 2, this kalad supports 1$"
    for _ in range(2):  # a refused open leaves nothing open or locked behind
        with pytest.raises(StoreError, match=refusal):
            LmdbStore(path)


def test_files_are_private_whatever_the_umask(path: Path) -> None:
    old = os.umask(0)
    try:
        LmdbStore(path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for name in ("data.mdb", "lock.mdb", "kalad.lock"):
        assert stat.S_IMODE((path / name).stat().st_mode) == 0o600, name


def test_a_second_open_of_the_same_store_is_refused(path: Path) -> None:
    store = LmdbStore(path)
    try:
        with pytest.raises(StoreError, match=f"store at {path} is in use by another kalad"):
            LmdbStore(path)
    finally:
        store.close()
    LmdbStore(path).close()  # free again once closed


@pytest.mark.parametrize("kind", ["file", "under a file", "unwritable"])
def test_an_unusable_path_raises_store_error_naming_it(tmp_path: Path, kind: str) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("")
    path = {
        "file": blocker,
        "under a file": blocker / "lmdb",
        "unwritable": Path("/proc/self"),  # a directory nobody can create files in, not even root
    }[kind]
    with pytest.raises(StoreError, match=str(path)) as caught:
        LmdbStore(path)
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_read_only_directory_raises_store_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StoreError, match=str(tmp_path / "lmdb")):
            LmdbStore(tmp_path / "lmdb")
    finally:
        tmp_path.chmod(0o700)
