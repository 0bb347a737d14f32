"""The schedulers a lateness or fire-rate trial can drive, behind one small interface.

    pid             the scheduler's process (None: none to measure)
    add(jobs)       register jobs (Job tuples); ``ballast(n)`` adds n idle far-future jobs
    run(base, end, stop, starts, period)
                    return at ``stop``; the window [base, end) is scored; returns extra figures
    remove()        delete the jobs ``add`` registered (the ballast stays for the next trial)
    drop_ballast()  delete the idle jobs

KaladDriver talks to a real kalad over HTTP (and reads kalad's own run records back);
FloorDriver is no scheduler at all, the floor this machine allows; the APScheduler peer
is in peer_aps.py.
"""
from __future__ import annotations

import os
import time
from typing import NamedTuple

from bench.client import Api
from bench.common import NS, far_schedule, iso_utc, parse_rfc3339_ns, sleep_until, summary_ms


class Job(NamedTuple):
    name: str
    command: str
    argv: list
    start_ns: int
    period_s: int


class KaladDriver:
    name = "kalad"
    OWN_VIEW_JOBS = 200  # kalad's own run records are read back for at most this many jobs

    def __init__(self, api: Api, pid: int | None = None):
        self.api = api
        self.pid = pid  # kalad's process, for its CPU over a trial's window (cpu.py)
        self.ballast_ids: list[str] = []
        self.measured: list[str] = []

    def _create(self, bodies: list[dict], into: list[str]) -> None:
        """Create jobs, their ids appended to ``into`` (also those made before a failure)."""
        ok = [i for i in self.api.create_many(bodies) if i]
        into += ok
        if len(ok) < len(bodies):
            raise RuntimeError(f"kalad: {len(bodies) - len(ok)} of {len(bodies)} jobs were not created")

    def ballast(self, n: int) -> None:
        schedule = far_schedule()
        self._create([{"name": f"ballast-{i}", "command": "/bin/true", "schedule": schedule,
                       "epsilon": "PT5S"} for i in range(n)], self.ballast_ids)

    def add(self, jobs: list[Job]) -> None:
        self._create([{"name": j.name, "command": j.command, "epsilon": "PT5S",
                       "schedule": f"R/{iso_utc(j.start_ns)}/PT{j.period_s}S"} for j in jobs],
                     self.measured)

    def run(self, base_ns: int, end_ns: int, stop_ns: int, starts: dict, period_ns: int) -> dict:
        sleep_until(base_ns - NS // 5)
        before = self.api.stats()
        sleep_until(end_ns)
        after = self.api.stats()
        sleep_until(stop_ns)
        extras = {"kalad_success_delta": after.get("SuccessCount", 0) - before.get("SuccessCount", 0),
                  "kalad_error_delta": after.get("ErrorCount", 0) - before.get("ErrorCount", 0)}
        extras.update(self.own_view(base_ns, end_ns))
        return extras

    def own_view(self, base_ns: int, end_ns: int) -> dict:
        """kalad's own records (GET /job/{id}/runs/): started_at - scheduled_at, and statuses."""
        def runs(job_id: str) -> list:
            try:
                status, body, _ = self.api.request("GET", f"/job/{job_id}/runs/?limit=1000")
            except OSError:
                return []
            return (body or {}).get("runs") or [] if status == 200 else []
        sample = self.measured[: self.OWN_VIEW_JOBS]
        lat, statuses, missed = [], {}, 0
        for records in self.api.map(runs, sample):
            for r in records:
                sched = parse_rfc3339_ns(r.get("scheduled_at"))
                if sched is None or not base_ns <= sched < end_ns:
                    continue
                statuses[r.get("status")] = statuses.get(r.get("status"), 0) + 1
                missed += int(r.get("missed") or 0)
                started = parse_rfc3339_ns(r.get("started_at"))
                if started is not None and r.get("status") in ("succeeded", "failed"):
                    lat.append(started - sched)
        own = summary_ms(lat)
        return {"kalad_own_jobs_read": len(sample), "kalad_own_records": sum(statuses.values()),
                "kalad_own_statuses": statuses, "kalad_own_missed": missed, "kalad_own_samples_ns": lat,
                **{f"kalad_own_{k}": v for k, v in own.items()}}

    def remove(self) -> dict:
        t0 = time.monotonic()
        deleted = self.api.delete_many(self.measured)
        self.measured = []
        return {"deleted": deleted, "delete_s": round(time.monotonic() - t0, 2)}

    def drop_ballast(self) -> None:
        self.api.delete_many(self.ballast_ids)
        self.ballast_ids = []

    def close(self) -> None:
        pass


class FloorDriver:
    """One loop that sleeps to 1 ms before each instant, busy-waits to it and posix_spawns
    the command, reaping with WNOHANG: the least lateness this machine allows."""

    name = "floor"
    pid = None  # the floor's loop is the bench itself, busy-waiting: its CPU is not a cost

    def __init__(self):
        self.jobs: list[Job] = []

    def ballast(self, n: int) -> None:
        pass  # idle jobs cost a loop over a plan nothing: the floor has no table

    def add(self, jobs: list[Job]) -> None:
        self.jobs += jobs

    def run(self, base_ns, end_ns, stop_ns, starts, period_ns) -> dict:
        plan = sorted((j.start_ns + i * j.period_s * NS, j.argv) for j in self.jobs
                      for i in range(max(0, -(-(end_ns - j.start_ns) // (j.period_s * NS)))))
        live: set[int] = set()
        for t, argv in plan:
            if t - time.time_ns() > 2_000_000:
                time.sleep((t - time.time_ns() - 1_000_000) / NS)
            while time.time_ns() < t:
                pass
            live.add(os.posix_spawn(argv[0], argv, os.environ))
            reap(live)
        deadline = time.monotonic() + 10
        while live and time.monotonic() < deadline:
            reap(live)
            time.sleep(0.01)
        sleep_until(stop_ns)
        return {}

    def remove(self) -> dict:
        self.jobs = []
        return {}

    def drop_ballast(self) -> None:
        pass

    def close(self) -> None:
        pass


def reap(pids: set[int]) -> None:
    """Collect those of our children (pids) that finished, without blocking; only ours,
    so a daemon or peer this process also started is never reaped by mistake."""
    for pid in list(pids):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            pids.discard(pid)
