"""APScheduler 3.11 as the peer scheduler: same jobs, same commands, its own process.

The parent side (ApsDriver) runs ``python -m bench.peer_aps WORKERS`` and talks to it with
one JSON object per line on stdin/stdout:

    {"op": "add", "jobs": [{"argv": [...], "start_ns": int, "period_s": int}, ...]}
    {"op": "ballast", "n": N}   N idle jobs a year ahead
    {"op": "remove"}            remove the jobs "add" added (the ballast stays)
    {"op": "clear"}             remove every job
    {"op": "stop"}              shut down and exit

Configuration, the sensible one for a Kala-like workload: BackgroundScheduler,
ThreadPoolExecutor(64), coalesce=False (every run counts), max_instances=3,
misfire_grace_time=5 s (kalad's epsilon PT5S); each job is ``subprocess.run(argv)``:
exec without a shell, waiting for the child, as kalad does. Nothing is durable.
"""
from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from bench.common import module_command, rss_kib, sleep_until, stop_process

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
WORKERS = 64


class ApsDriver:
    """Parent side: the peer process, driven like the other schedulers (see drivers.py)."""

    name = "APScheduler"

    def __init__(self, log_path, workers: int = WORKERS):
        """``log_path``: where the peer's own log goes (its misfire warnings, one per run)."""
        argv, env = module_command("peer_aps", str(workers))
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log, text=True)
        self.version = self._reply(60)["version"]

    def _reply(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError("the APScheduler peer did not answer")
        return json.loads(line)

    def _call(self, msg: dict, timeout: float = 600) -> dict:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self._reply(timeout)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int | None:
        return rss_kib(self.proc.pid)

    def ballast(self, n: int) -> float:
        return self._call({"op": "ballast", "n": n})["seconds"]

    def add(self, jobs) -> None:
        self._call({"op": "add", "jobs": [{"argv": j.argv, "start_ns": j.start_ns, "period_s": j.period_s}
                                          for j in jobs]})

    def run(self, base_ns, end_ns, stop_ns, starts, period_ns) -> dict:
        sleep_until(stop_ns)
        return {}

    def remove(self) -> dict:
        return {"delete_s": self._call({"op": "remove"})["seconds"]}

    def drop_ballast(self) -> None:
        self._call({"op": "clear"})

    def close(self) -> None:
        try:
            self._call({"op": "stop"}, 15)
        except (OSError, RuntimeError, ValueError):
            pass
        stop_process(self.proc)


# ---------------------------------------------------------------- the peer process

def run_command(argv):
    subprocess.run(argv, check=False)


def noop():
    pass


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> None:
    import apscheduler
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    workers = int(sys.argv[1]) if len(sys.argv) > 1 else WORKERS
    sched = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(workers)},
        job_defaults={"coalesce": False, "max_instances": 3, "misfire_grace_time": 5},
        timezone=timezone.utc)
    sched.start()
    reply({"version": apscheduler.__version__})
    added = []
    for line in sys.stdin:
        msg = json.loads(line)
        t0 = time.monotonic()
        if msg["op"] == "add":
            for job in msg["jobs"]:
                start = EPOCH + timedelta(microseconds=job["start_ns"] // 1000)
                added.append(sched.add_job(run_command, IntervalTrigger(seconds=job["period_s"],
                                                                        start_date=start), args=[job["argv"]]))
        elif msg["op"] == "ballast":
            far = datetime.now(timezone.utc) + timedelta(days=365)
            for _ in range(msg["n"]):
                sched.add_job(noop, IntervalTrigger(hours=1, start_date=far))
        elif msg["op"] == "remove":
            for job in added:
                job.remove()
            added = []
        elif msg["op"] == "clear":
            sched.remove_all_jobs()
            added = []
        elif msg["op"] == "stop":
            sched.shutdown(wait=False)
            reply({"ok": True})
            return
        reply({"ok": True, "seconds": round(time.monotonic() - t0, 3)})


if __name__ == "__main__":
    main()
