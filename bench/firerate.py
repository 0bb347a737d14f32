"""Fire rate: the most job starts per second a scheduler sustains.

J jobs each every second for S seconds (10) per step, J = 50, 100, 200, ... doubling up to
6400, then ``REFINE`` bisection steps past the first failure. A step passes when >= 99 % of the
expected runs were stamped by their children, p99 lateness < 1 s, and the jobs were all
created before the first slot. The answer is the largest passing J. Baselines in the same
run: the raw posix_spawn rate of the same stamp command (up to 64 children alive, no
scheduler: the machine's ceiling) and APScheduler 3.11 searched the same way.
"""
from __future__ import annotations

import collections
import os
import time

from bench.common import say
from bench.drivers import KaladDriver
from bench.lateness import trial
from bench.peer_aps import ApsDriver
from bench.stamps import Stamps

MAX_P99_MS = 1000.0
REFINE = 3  # bisection steps past the first failure: the answer is within J/8 of the limit


def spawn_rate(argv: list[str], seconds: float, concurrency: int, max_spawns: int = 200_000) -> float:
    """Children started per second with at most `concurrency` alive (only ours are waited)."""
    start = time.monotonic()
    deadline = start + seconds
    spawned = 0
    live: collections.deque[int] = collections.deque()
    while time.monotonic() < deadline and spawned < max_spawns:
        live.append(os.posix_spawn(argv[0], argv, os.environ))
        spawned += 1
        if len(live) >= concurrency:
            os.waitpid(live.popleft(), 0)
    while live:
        os.waitpid(live.popleft(), 0)
    return spawned / (time.monotonic() - start)


def passes(r: dict) -> bool:
    return (r["count"] >= 0.99 * r["expected"] and r["p99_ms"] is not None and r["p99_ms"] < MAX_P99_MS
            and not r["setup_overran"])


def search(driver, stamps: Stamps, steps: list[int] | None, start: int, max_jobs: int, seconds: int,
           refine: int, budget_s: float, settle: float = 2.0) -> dict:
    """Step J up (a fixed list, or doubling from start) and bisect; the largest passing J."""
    out, best, fail, rate = [], 0, None, None
    budget_end = time.monotonic() + budget_s
    queue = list(steps) if steps else [start]
    while queue:
        j = queue.pop(0)
        lead = max(1.5, 1.0 + 2.0 * j / rate) if rate else 2.0
        if time.monotonic() + lead + seconds + 5 > budget_end:
            say(f"firerate: {driver.name}: time budget spent, stopping at J={j}")
            break
        r = trial(driver, stamps, j, seconds, 1, lead, grace=min(settle, 1.0))
        rate = r["create_rate_per_s"]
        ok = passes(r)
        step = {k: r.get(k) for k in ("jobs", "expected", "count", "missed", "duplicates", "p50_ms", "p99_ms",
                                      "setup_overran", "create_rate_per_s", "kalad_success_delta",
                                      "kalad_own_p50_ms", "kalad_own_p99_ms")} | {"pass": ok}
        out.append(step)
        say(f"firerate: {driver.name} J={j}: {r['count']}/{r['expected']} runs, p50 {r['p50_ms']} "
            f"p99 {r['p99_ms']} ms -> {'pass' if ok else 'FAIL'}" + (" (setup overran)" if r["setup_overran"] else ""))
        if ok:
            best = max(best, j)
        else:
            fail = j if fail is None else min(fail, j)
        time.sleep(settle)  # let the machine settle between steps
        if steps:
            if not ok:
                break
        elif fail is None and j * 2 <= max_jobs:
            queue.append(j * 2)
        elif fail is not None and refine > 0 and best < (best + fail) // 2 < fail:
            queue.append((best + fail) // 2)
            refine -= 1
    return {"max_sustained_per_s": best, "first_fail": fail, "steps": out}


def shown(res: dict) -> str | int:
    """The answer; '>= J' when no step failed (the search stopped before a limit)."""
    return res["max_sustained_per_s"] if res["first_fail"] else f">= {res['max_sustained_per_s']}"


def run(ctx) -> dict:
    quick = ctx.quick
    seconds = 2 if quick else 10
    steps = [100, 300] if quick else None
    spawn_s = 0.5 if quick else 5.0
    stamps = Stamps()
    try:
        rates = {}
        for name, argv in (("true", ["/bin/true"]), ("stamp", stamps.argv(0))):
            for conc in (1, 64):
                rates[f"{name}_c{conc}_per_s"] = round(spawn_rate(argv, spawn_s, conc), 1)
                stamps.reset()
        say(f"firerate: raw spawn rate {rates}")
        results = {}
        api = ctx.kalad_api()
        aps = ApsDriver(ctx.out_dir / "apscheduler.log")
        try:
            for driver in (aps, KaladDriver(api)):
                results[driver.name] = search(driver, stamps, steps, 50, 6400, seconds, REFINE,
                                              120 if quick else 420, 0.5 if quick else 2.0)
        finally:
            aps.close()
    finally:
        stamps.cleanup()
    k, a = results["kalad"], results["APScheduler"]
    rows = [{"figure": "max sustained jobs/s (>= 99 % runs, p99 < 1 s)", "kalad": shown(k),
             "baselines": [rates["stamp_c64_per_s"], shown(a)]}]
    best_k = next((s for s in k["steps"] if s["jobs"] == k["max_sustained_per_s"]), None)
    best_a = next((s for s in a["steps"] if s["jobs"] == k["max_sustained_per_s"]), None)
    if best_k:
        rows.append({"figure": f"p99 lateness at J={best_k['jobs']} (ms)", "kalad": best_k["p99_ms"],
                     "baselines": [None, best_a["p99_ms"] if best_a else None]})
    return {"sections": [{"title": f"fire rate: jobs every second, {seconds} s per step",
                          "baselines": ["raw spawn", "APScheduler"], "rows": rows,
                          "note": f"APScheduler {aps.version}; raw posix_spawn rate of the stamp command: {rates['stamp_c1_per_s']}/s one "
                                  f"at a time, {rates['stamp_c64_per_s']}/s up to 64 alive; /bin/true "
                                  f"{rates['true_c1_per_s']} / {rates['true_c64_per_s']}/s"}],
            "data": {"seconds_per_step": seconds, "spawn_rates": rates, **results}}
