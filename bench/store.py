"""Store: the job store's operations, per backend (LMDB, SQLite, PostgreSQL, MariaDB, Redis).

Each backend is driven directly (no daemon, no HTTP), as the service and the group
committer drive it:

* put: one job per transaction, durable (``apply([Change(put=(job,))])``): an API create;
* get: the newest 10 runs of one job (``list_runs(id, 10)``), the store read behind
  ``GET /job/<id>/``; jobs themselves are read from memory, so there is no other get;
* append_run single: one run record (and its job) per transaction;
* append_run batched: 64 such changes per transaction, as the committer groups them
  under load;
* load: ``load()`` of N jobs (100,000; 2,000 with ``--quick``), as at start-up.

The servers are the test servers (``KALAD_TEST_POSTGRES``, ``KALAD_TEST_MYSQL``,
``KALAD_TEST_REDIS``, as in ``tests/store/backends.py``); each run uses its own table
or key prefix and drops it. A backend whose driver is missing or whose server does not
answer is skipped and the note says why. The LMDB figure is in the ``kalad`` column
(it is the default store); the ratio is LMDB / that backend.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone

from bench.common import say
from kalad.core.job import Job
from kalad.core.ports import Change
from kalad.core.runs import Run, RunStatus, Trigger
from kalad.store import open_store

BACKENDS = ("lmdb", "sqlite", "postgres", "mysql", "redis")
SERVERS = {
    "postgres": (os.environ.get("KALAD_TEST_POSTGRES", "127.0.0.1:5432/test"),
                 os.environ.get("KALAD_TEST_POSTGRES_USER", "postgres"),
                 os.environ.get("KALAD_TEST_POSTGRES_PASSWORD")),
    "mysql": (os.environ.get("KALAD_TEST_MYSQL", "127.0.0.1:3306/test"),
              os.environ.get("KALAD_TEST_MYSQL_USER", "root"),
              os.environ.get("KALAD_TEST_MYSQL_PASSWORD")),
    "redis": (os.environ.get("KALAD_TEST_REDIS", "127.0.0.1:6379/0"), None,
              os.environ.get("KALAD_TEST_REDIS_PASSWORD")),
}
BATCH = 64  # changes per transaction in the batched append
FILL = 1000  # jobs per transaction when filling the store for load()
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def job(n: int) -> Job:
    return Job(id=f"bench-{n:07d}", name=f"bench job {n}", created_at=T0, command="/bin/true",
               schedule="R/2031-01-01T00:00:00Z/PT1H", owner="bench@example.com")


def run_record(job_id: str, n: int) -> Run:
    started = T0 + timedelta(seconds=n)
    return Run(id=f"run-{n:08d}", job_id=job_id, trigger=Trigger.SCHEDULE,
               status=RunStatus.SUCCEEDED, started_at=started,
               ended_at=started + timedelta(milliseconds=5), scheduled_at=started, attempts=1,
               duration_ns=5_000_000, exit_status=0, output="ok\n")


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else None


def timed(work, count: int) -> float:
    t0 = time.perf_counter()
    work()
    return rate(count, time.perf_counter() - t0)


def open_backend(kind: str, tmp: str, prefix: str):
    """The store, or a string saying why it cannot be measured here."""
    if kind == "lmdb":
        return open_store("lmdb", lmdb_path=os.path.join(tmp, "lmdb"))
    if kind == "sqlite":
        return open_store("sqlite", address=os.path.join(tmp, "bench.db"))
    address, user, password = SERVERS[kind]
    try:
        return open_store(kind, address=address, username=user, password=password,
                          prefix=prefix)
    except Exception as exc:  # missing driver or unreachable server: say so, go on
        return " ".join(str(exc).split())[:160]


def drop(kind: str, store, prefix: str) -> None:
    """Remove the benchmark's tables / keys from a server."""
    if kind == "redis":
        client = store._client
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i:i + 1000])
        return
    conn = store._connect()
    try:
        with conn.cursor() as cur:
            for table in ("runs", "jobs", "meta"):
                cur.execute(f"DROP TABLE IF EXISTS {prefix}{table}")
        if kind == "mysql":
            conn.commit()
    finally:
        conn.close()


def measure(store, n_load: int, n_ops: int) -> dict:
    out: dict = {}
    jobs = [job(i) for i in range(n_ops)]
    out["put_per_s"] = timed(lambda: [store.apply([Change(put=(j,))]) for j in jobs], n_ops)
    out["get_per_s"] = timed(lambda: [store.list_runs(j.id, 10) for j in jobs], n_ops)
    singles = [Change(put=(j,), runs=(run_record(j.id, i),)) for i, j in enumerate(jobs)]
    out["append_single_per_s"] = timed(lambda: [store.apply([c]) for c in singles], n_ops)
    n_batched = n_ops * 8
    batched = [Change(put=(jobs[i % n_ops],), runs=(run_record(jobs[i % n_ops].id, n_ops + i),))
               for i in range(n_batched)]
    out["append_batched_per_s"] = timed(
        lambda: [store.apply(batched[i:i + BATCH]) for i in range(0, n_batched, BATCH)], n_batched)
    t0 = time.perf_counter()
    for start in range(n_ops, n_load, FILL):
        store.apply([Change(put=tuple(job(i) for i in range(start, min(start + FILL, n_load))))])
    out["fill_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    loaded = store.load()
    out["load_s"] = round(time.perf_counter() - t0, 3)
    out["loaded"] = len(loaded.jobs)
    out["load_per_s"] = rate(len(loaded.jobs), out["load_s"])
    return out


def run_all(quick: bool) -> dict:
    n_load = 2000 if quick else 100_000
    n_ops = 200 if quick else 2000
    data: dict = {"jobs_loaded": n_load, "ops": n_ops, "batch": BATCH, "backends": {}}
    for kind in BACKENDS:
        tmp = tempfile.mkdtemp(prefix=f"kalad-bench-{kind}-")
        prefix = f"kalad_bench_{secrets.token_hex(3)}_"
        try:
            store = open_backend(kind, tmp, prefix)
            if isinstance(store, str):
                say(f"store: {kind} skipped: {store}")
                data["backends"][kind] = {"skipped": store}
                continue
            say(f"store: {kind}: {n_ops} ops each, load of {n_load} jobs")
            try:
                data["backends"][kind] = measure(store, n_load, n_ops)
            finally:
                try:
                    if kind in SERVERS:
                        drop(kind, store, prefix)
                finally:
                    store.close()
            say(f"store: {kind}: {data['backends'][kind]}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return data


ROWS = (
    ("put jobs/s (1 per transaction, durable)", "put_per_s"),
    ("get: list_runs(job, 10)/s", "get_per_s"),
    ("append_run/s (1 per transaction)", "append_single_per_s"),
    (f"append_run/s (batched, {BATCH} per transaction)", "append_batched_per_s"),
    ("load() jobs/s", "load_per_s"),
    ("load() seconds", "load_s"),
)


def run(ctx) -> dict:
    data = run_all(ctx.quick)
    measured = data["backends"]
    others = [k for k in BACKENDS if k != "lmdb"]
    rows = [{"figure": figure,
             "kalad": measured.get("lmdb", {}).get(key),
             "baselines": [measured.get(k, {}).get(key) for k in others]}
            for figure, key in ROWS]
    skipped = [f"{k} skipped ({v['skipped']})" for k, v in measured.items() if "skipped" in v]
    note = (f"kalad column = LMDB (the default); {data['ops']} ops per figure, load of"
            f" {data['jobs_loaded']} jobs; servers local, default durability settings")
    if skipped:
        note += "; " + "; ".join(skipped)
    return {"sections": [{"title": "store: operations per backend (higher is better but"
                                   " load seconds)",
                          "baselines": others, "rows": rows, "note": note}],
            "data": data}


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run_all(parser.parse_args().quick), indent=1))
