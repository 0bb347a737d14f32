"""The stamp command, and matching its stamps to scheduled slots.

Each run's command is ``bash <dir>/stamp.sh K``: the child appends ``K $EPOCHREALTIME`` to
``runs.log`` as its first act, so lateness = the child's own clock read - the scheduled
instant. It includes the child's start-up (bash reads the clock 1-2 ms after the spawn);
``overhead()`` measures that in the same run. The command has no quotes, ``$`` or
redirection, so kalad (POSIX word splitting, no shell) and APScheduler run it the same.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time

from bench.common import NS, summary_ms

BASH = shutil.which("bash") or "/bin/bash"


class Stamps:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kalad-bench-stamps-")
        if re.search(r"[\s'\"\\$`]", self.dir):
            raise SystemExit(f"temp dir {self.dir!r} must not contain spaces or shell characters")
        self.log = os.path.join(self.dir, "runs.log")
        self.script = os.path.join(self.dir, "stamp.sh")
        with open(self.script, "w") as f:
            f.write(f'echo "$1 $EPOCHREALTIME" >> {self.log}\n')
        self.reset()

    def command(self, k: int) -> str:
        return f"{BASH} {self.script} {k}"

    def argv(self, k: int) -> list[str]:
        return [BASH, self.script, str(k)]

    def reset(self) -> None:
        with open(self.log, "w"):
            pass

    def read(self) -> tuple[list[tuple[int, int]], int]:
        """[(k, epoch ns)] and the number of unparseable lines."""
        runs, bad = [], 0
        with open(self.log, encoding="ascii", errors="replace") as f:
            for line in f:
                m = re.fullmatch(r"(-?\d+) (\d+)[.,](\d+)\n?", line)
                if m:
                    runs.append((int(m[1]), int(m[2]) * NS + int(m[3][:9].ljust(9, "0"))))
                else:
                    bad += 1
        return runs, bad

    def overhead(self, n: int = 50, gap: float = 0.02) -> dict:
        """posix_spawn -> the child's clock read, n samples gap seconds apart (ms)."""
        samples = []
        for i in range(n + 5):  # 5 warm-up spawns are not counted
            time.sleep(gap)
            t0 = time.time_ns()
            os.waitpid(os.posix_spawn(BASH, self.argv(-1), os.environ), 0)
            runs, _ = self.read()
            if not runs:
                raise SystemExit("the stamp child wrote nothing: bash >= 5 (EPOCHREALTIME) is needed")
            if i >= 5:
                samples.append(runs[-1][1] - t0)
        self.reset()
        return summary_ms(samples)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def analyze(starts: dict[int, int], runs: list[tuple[int, int]], period_ns: int, end_ns: int) -> dict:
    """Match runs (k, t) to the slots starts[k] + i*period before end_ns.

    A run belongs to the slot at or before it, allowing it to be up to period/10 early, so
    lateness is seen in [-period/10, 0.9*period); a run later than that counts as a miss of
    its slot plus an early run of the next. Returns counts and the lateness samples (ns).
    """
    tol = period_ns // 10
    late: dict[tuple[int, int], int] = {}
    dup = before = after = unknown = 0
    for k, t in runs:
        s = starts.get(k)
        if s is None:
            unknown += 1
            continue
        i = (t - s + tol) // period_ns
        if i < 0:
            before += 1
        elif s + i * period_ns >= end_ns:
            after += 1
        elif (k, i) in late:
            dup += 1
        else:
            late[(k, i)] = t - (s + i * period_ns)
    expected = sum(max(0, -(-(end_ns - s) // period_ns)) for s in starts.values())
    values = list(late.values())
    return {"expected": expected, "count": len(values), "missed": expected - len(values),
            "duplicates": dup, "early": sum(v < 0 for v in values), "before_start": before,
            "after_window": after, "unknown_job": unknown, "samples_ns": values, **summary_ms(values)}
