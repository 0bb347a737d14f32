"""Lateness: how long after its scheduled instant does each run's child really start?

J jobs (50) every second for D seconds (20), job k offset by k/J s so firing is uniform,
with no idle jobs and then with B idle jobs (100,000) scheduled a year ahead: does a big job
table slow the timer? Lateness = the child's own clock read - the scheduled instant (see
stamps.py), p50/p99/max, plus missed slots and duplicated runs. Baselines in the same run:
the floor (a bare sleep-and-posix_spawn loop: the machine's own limit, measured again between
each section's two trials, as a shared VM's pace drifts over minutes) and APScheduler
3.11 with the same jobs and the same idle jobs. kalad's own run records (started_at -
scheduled_at) are shown beside, as a cross-check of what it thinks it did.
"""
from __future__ import annotations

import time

from bench.common import MS, NS, say
from bench.drivers import FloorDriver, Job, KaladDriver
from bench.peer_aps import ApsDriver
from bench.stamps import Stamps, analyze

FIGURES = ("p50_ms", "p99_ms", "max_ms")


def trial(driver, stamps: Stamps, jobs: int, duration: int, period: int = 1, lead: float = 3.0,
          ballast: int = 0, grace: float = 1.0) -> dict:
    """One scored window; every job the trial added is removed before it returns. The
    window is [first slot, first slot + duration); runs are awaited one period + grace more."""
    stamps.reset()
    res = {"scheduler": driver.name, "jobs": jobs, "duration_s": duration, "period_s": period,
           "ballast": ballast}
    period_ns = period * NS
    try:
        if ballast:
            t0 = time.monotonic()
            driver.ballast(ballast)
            res["ballast_create_s"] = round(time.monotonic() - t0, 2)
        base = (time.time_ns() + int(lead * NS)) // MS * MS
        starts = {k: base + round(k * period_ns / jobs / MS) * MS for k in range(jobs)}
        t0 = time.time_ns()
        driver.add([Job(f"bench-{k}", stamps.command(k), stamps.argv(k), starts[k], period)
                    for k in range(jobs)])
        created = time.time_ns()
        res["create_s"] = round((created - t0) / NS, 3)
        res["create_rate_per_s"] = round(jobs / max(created - t0, 1) * NS, 1)
        res["setup_overran"] = created > base - 50 * MS
        end = base + duration * NS
        res.update(driver.run(base, end, end + period_ns + int(grace * NS), starts, period_ns))
    finally:
        res["cleanup"] = driver.remove()
    time.sleep(0.5)  # children already spawned finish writing
    runs, bad = stamps.read()
    res.update(analyze(starts, runs, period_ns, end))
    res["bad_lines"] = bad
    return res


def brief(key: str, r: dict) -> str:
    """One trial in a line; ``key`` names it by scheduler and section (floor/100000)."""
    own = f", kalad's own p50 {r['kalad_own_p50_ms']} ms" if "kalad_own_p50_ms" in r else ""
    return (f"{key}: {r['count']}/{r['expected']} runs, p50 {r['p50_ms']} "
            f"p99 {r['p99_ms']} max {r['max_ms']} ms, missed {r['missed']}, dup {r['duplicates']}{own}")


def run(ctx) -> dict:
    quick = ctx.quick
    jobs, duration = 50, (3 if quick else 20)
    lead, grace = (1.5, 0.3) if quick else (3.0, 1.0)
    ballast = ctx.ballast if ctx.ballast is not None else (1000 if quick else 100_000)
    stamps = Stamps()
    trials: dict[str, dict] = {}
    try:
        overhead = stamps.overhead(20 if quick else 50)
        say(f"lateness: child start overhead p50 {overhead['p50_ms']} ms; J={jobs}, D={duration}s, "
            f"idle jobs 0 and {ballast}")
        api = ctx.kalad_api()
        aps = ApsDriver(ctx.out_dir / "apscheduler.log")
        try:
            plan = []
            for b in (0, ballast):  # each section's floor is measured between its trials
                plan += [(f"APScheduler/{b}", aps, b), (f"floor/{b}", FloorDriver(), 0),
                         (f"kalad/{b}", KaladDriver(api), b)]
            for key, driver, b in plan:
                r = trial(driver, stamps, jobs, duration, 1, lead, b, grace)
                trials[key] = r
                say("lateness: " + brief(key, r))
                time.sleep(grace)
        finally:
            aps.close()
    finally:
        stamps.cleanup()
    sections = []
    for b in (0, ballast):
        floor, k, a = trials[f"floor/{b}"], trials[f"kalad/{b}"], trials[f"APScheduler/{b}"]
        rows = [{"figure": f"lateness {f.removesuffix('_ms')} (ms)", "kalad": k[f], "baselines": [floor[f], a[f]]}
                for f in FIGURES]
        rows += [{"figure": "missed runs", "kalad": k["missed"], "baselines": [floor["missed"], a["missed"]]},
                 {"figure": "duplicated runs", "kalad": k["duplicates"],
                  "baselines": [floor["duplicates"], a["duplicates"]]},
                 {"figure": "kalad's own record: p50 / p99 (ms)",
                  "kalad": f"{k.get('kalad_own_p50_ms')} / {k.get('kalad_own_p99_ms')}", "baselines": [None, None]}]
        if b:
            rows.append({"figure": f"create {b} idle jobs (s)", "kalad": k.get("ballast_create_s"),
                         "baselines": [None, a.get("ballast_create_s")]})
        sections.append({"title": f"lateness: {jobs} jobs/s for {duration} s, {b} idle jobs "
                                  f"({k['expected']} runs expected)",
                         "baselines": ["floor", "APScheduler"], "rows": rows})
    sections[0]["note"] = (f"APScheduler {aps.version}; lateness = child's clock read - scheduled instant; includes the child's own start-up, "
                           f"p50 {overhead['p50_ms']} ms here (posix_spawn -> bash's clock read)")
    return {"sections": sections,
            "data": {"jobs": jobs, "duration_s": duration, "ballast": ballast, "child_overhead": overhead,
                     "apscheduler": aps.version, "trials": trials}}
