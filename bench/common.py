"""Small helpers shared by the measurements: time formats, percentiles, processes, sizes.

All times are nanoseconds of CLOCK_REALTIME (``time.time_ns``) when they are compared with
a schedule, monotonic otherwise; everything printed is in milliseconds or seconds.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

NS = 1_000_000_000
MS = 1_000_000
PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
RESULTS_DIR = PACKAGE_DIR / "results"


def say(msg: str) -> None:
    """Progress to stderr, so the table on stdout stays clean."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def iso_utc(ns: int) -> str:
    """A schedule start with millisecond precision, e.g. 2026-11-27T10:00:00.020Z."""
    stamp = datetime.fromtimestamp(ns // NS, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ns % NS // MS:03d}Z"


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_rfc3339_ns(text) -> int | None:
    """RFC 3339 with up to nanoseconds -> epoch ns; None if it is not one."""
    m = _RFC3339.match(text or "") if isinstance(text, str) else None
    if not m:
        return None
    whole = datetime.fromisoformat(m[1] + ("+00:00" if m[3] == "Z" else m[3]))
    return int(whole.timestamp()) * NS + int((m[2] or "0")[:9].ljust(9, "0"))


def far_schedule() -> str:
    """A schedule a year ahead: jobs on it never fire during a benchmark (idle ballast)."""
    return f"R/{iso_utc(time.time_ns() + 365 * 86400 * NS)}/PT1H"


def pct(sorted_values: list, p: float):
    """Nearest-rank percentile of an already sorted, non-empty list."""
    n = len(sorted_values)
    return sorted_values[max(0, min(n - 1, math.ceil(p / 100 * n) - 1))]


def summary_ms(values_ns: list[int]) -> dict:
    """p50/p90/p99/max of nanosecond samples, in ms (None when there are none)."""
    v = sorted(values_ns)
    return {f"{k}_ms": (round(pct(v, p) / MS, 3) if v else None)
            for k, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}


def sleep_until(t_ns: int) -> None:
    while (left := t_ns - time.time_ns()) > 0:
        time.sleep(min(left / NS, 1.0))


def rss_kib(pid: int | None) -> int | None:
    """VmRSS of a process, KiB (None if it is gone)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def disk_bytes(path: Path) -> tuple[int, int]:
    """(allocated, apparent) bytes of the files under path: LMDB files may be sparse."""
    allocated = apparent = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            allocated += st.st_blocks * 512
            apparent += st.st_size
    return allocated, apparent


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM a child we started (by its PID); SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def module_command(module: str, *args: str) -> tuple[list[str], dict]:
    """argv and env to run ``python -m bench.<module>`` with this interpreter."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return [sys.executable, "-m", f"bench.{module}", *args], env
