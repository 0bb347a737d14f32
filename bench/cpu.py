"""CPU spent over a trial's firing window, per run: the scheduler's own process, the
children it reaped, and the whole machine.

On two cores a scheduler can start at most about 2 / (its CPU per run + its child's)
runs a second, so these figures, taken at a rate both schedulers keep up with, show
what a run costs where the fire-rate search only shows where the CPU ran out. On a
shared VM they drift as its pace does: 13-19 % at 800 jobs/s between two runs 20
minutes apart. Read from /proc: the process's utime+stime and its waited-for
children's cutime+cstime (a child counts once reaped); the machine's busy time is the
window's wall time on every CPU less their idle, iowait and steal time. The busy fields
of /proc/stat are not used: they are sampled at the timer tick, and a tickless CPU that
wakes for a short bash and sleeps again between two ticks counts none of it (they
summed to less than one process's own CPU in a 5 s window), while the idle time is
measured exactly. Steal is the time the hypervisor ran someone else while a CPU of this
VM had work: not work done here, so it is left out of the busy time and reported on its
own (percent of the window's CPU time), as a sign the VM was slowed from outside.
"""
from __future__ import annotations

import os
import threading
import time

from bench.common import sleep_until

_TICK = os.sysconf("SC_CLK_TCK")
with open("/proc/stat") as _f:
    _CPUS = sum(1 for line in _f if line.startswith("cpu") and line[3].isdigit())


def _process(pid: int) -> tuple[float, float] | None:
    """(own, reaped children's) CPU seconds of ``pid``, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK, (int(fields[13]) + int(fields[14])) / _TICK


def _machine() -> tuple[float, float, float]:
    """(monotonic seconds now, idle + iowait seconds, steal seconds), all CPUs since boot."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return time.monotonic(), (ticks[3] + ticks[4]) / _TICK, ticks[7] / _TICK


class WindowCpu:
    """Samples at ``start_ns`` and ``end_ns`` (epoch ns) from a thread of its own, so
    the driver can sleep through the window as it does without it."""

    def __init__(self, pid: int, start_ns: int, end_ns: int):
        self.pid = pid
        self._samples: list[tuple[tuple[float, float] | None, tuple[float, float, float]]] = []
        self._thread = threading.Thread(target=self._run, args=(start_ns, end_ns), daemon=True)
        self._thread.start()

    def _run(self, start_ns: int, end_ns: int) -> None:
        for t in (start_ns, end_ns):
            sleep_until(t)
            self._samples.append((_process(self.pid), _machine()))

    def per_run(self, runs: int) -> dict | None:
        """ms of CPU per run over the window; None if a sample is missing."""
        self._thread.join()
        if len(self._samples) < 2 or runs <= 0:
            return None
        (p0, m0), (p1, m1) = self._samples
        if p0 is None or p1 is None:
            return None
        per = 1000 / runs
        cpu_s = (m1[0] - m0[0]) * _CPUS
        steal = m1[2] - m0[2]
        return {"scheduler_ms": round((p1[0] - p0[0]) * per, 3),
                "children_ms": round((p1[1] - p0[1]) * per, 3),
                "machine_ms": round((cpu_s - (m1[1] - m0[1]) - steal) * per, 3),
                "steal_pct": round(100 * steal / cpu_s, 1)}
