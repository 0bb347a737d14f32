"""Lateness: how long after its scheduled instant does each run's child really start?

J jobs (50) every second for D seconds (20), job k offset by k/J s so firing is uniform,
with no idle jobs and then with B idle jobs (100,000) scheduled a year ahead: does a big job
table slow the timer? Lateness = the child's own clock read - the scheduled instant (see
stamps.py), p50/p99/max, plus missed slots and duplicated runs. Baselines in the same run:
the floor (a bare sleep-and-posix_spawn loop: the machine's own limit) and APScheduler 3.11
with the same jobs and the same idle jobs. Each scheduler's D seconds are taken in ROUNDS
turns (APScheduler, the floor and kalad in rotating order), pooled: a shared VM's pace
drifts over minutes, by more than the gap between the schedulers, and turns spread the
drift over all three alike. kalad's own run records (started_at - scheduled_at) are shown
beside, as a cross-check of what it thinks it did.
"""
from __future__ import annotations

import time

from bench.common import MS, NS, say, summary_ms
from bench.cpu import WindowCpu
from bench.drivers import FloorDriver, Job, KaladDriver
from bench.peer_aps import ApsDriver
from bench.stamps import Stamps, analyze

FIGURES = ("p50_ms", "p99_ms", "max_ms")
ROUNDS = 4  # turns per scheduler and section (2 with --quick)
COUNTS = ("expected", "count", "missed", "duplicates", "early", "before_start", "after_window",
          "unknown_job", "bad_lines", "kalad_success_delta", "kalad_error_delta", "kalad_own_records",
          "kalad_own_missed")


def trial(driver, stamps: Stamps, jobs: int, duration: int, period: int = 1, lead: float = 3.0,
          grace: float = 1.0) -> dict:
    """One scored window; the jobs the trial added are removed before it returns (a
    ballast stays). The window is [first slot, first slot + duration); runs are awaited
    one period + grace more."""
    stamps.reset()
    res = {"scheduler": driver.name, "jobs": jobs, "duration_s": duration, "period_s": period}
    period_ns = period * NS
    try:
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
        window = WindowCpu(driver.pid, base, end) if driver.pid else None
        res.update(driver.run(base, end, end + period_ns + int(grace * NS), starts, period_ns))
    finally:
        res["cleanup"] = driver.remove()
    time.sleep(0.5)  # children already spawned finish writing
    runs, bad = stamps.read()
    res.update(analyze(starts, runs, period_ns, end))
    res["bad_lines"] = bad
    if window:
        res["cpu_per_run"] = window.per_run(res["count"])
    return res


def pooled(turns: list[dict]) -> dict:
    """One scheduler's turns as one trial: counts summed, percentiles over all samples."""
    out = {"scheduler": turns[0]["scheduler"], "duration_s": sum(t["duration_s"] for t in turns),
           "setup_overran": any(t["setup_overran"] for t in turns),
           "turns": [{k: v for k, v in t.items() if not k.endswith("samples_ns")} for t in turns]}
    out.update({k: sum(t[k] for t in turns) for k in COUNTS if k in turns[0]})
    for prefix in ("", "kalad_own_"):
        if prefix + "samples_ns" in turns[0]:
            samples = out[prefix + "samples_ns"] = [v for t in turns for v in t[prefix + "samples_ns"]]
            out.update({prefix + k: v for k, v in summary_ms(samples).items()})
    return out


def brief(key: str, r: dict) -> str:
    """One trial in a line; ``key`` names it by scheduler and section (floor/100000)."""
    own = f", kalad's own p50 {r['kalad_own_p50_ms']} ms" if "kalad_own_p50_ms" in r else ""
    return (f"{key}: {r['count']}/{r['expected']} runs, p50 {r['p50_ms']} "
            f"p99 {r['p99_ms']} max {r['max_ms']} ms, missed {r['missed']}, dup {r['duplicates']}{own}")


def section(drivers: list, stamps: Stamps, ballast: int, jobs: int, duration: int, rounds: int,
            lead: float, grace: float) -> dict[str, dict]:
    """Each driver's pooled trial with ``ballast`` idle jobs, keyed "name/ballast"."""
    created, turns = {}, {d.name: [] for d in drivers}
    try:
        if ballast:
            for d in drivers:
                t0 = time.monotonic()
                d.ballast(ballast)
                created[d.name] = round(time.monotonic() - t0, 2)
        for r in range(rounds):
            for d in drivers[r % len(drivers):] + drivers[:r % len(drivers)]:
                t = trial(d, stamps, jobs, duration // rounds, 1, lead, grace)
                turns[d.name].append(t)
                say(f"lateness: {brief(f'{d.name}/{ballast} turn {r + 1}/{rounds}', t)}")
                time.sleep(grace)
    finally:
        for d in drivers:
            d.drop_ballast()
    out = {}
    for name, ts in turns.items():
        key = f"{name}/{ballast}"
        out[key] = dict(pooled(ts), ballast=ballast, ballast_create_s=created.get(name))
        say(f"lateness: {brief(key, out[key])}")
    return out


def run(ctx) -> dict:
    quick = ctx.quick
    jobs, duration, rounds = 50, (4 if quick else 20), (2 if quick else ROUNDS)
    lead, grace = (1.5, 0.3) if quick else (3.0, 1.0)
    ballast = ctx.ballast if ctx.ballast is not None else (1000 if quick else 100_000)
    stamps = Stamps()
    trials: dict[str, dict] = {}
    try:
        overhead = stamps.overhead(20 if quick else 50)
        say(f"lateness: child start overhead p50 {overhead['p50_ms']} ms; J={jobs}, D={duration}s "
            f"in {rounds} turns each, idle jobs 0 and {ballast}")
        aps = ApsDriver(ctx.out_dir / "apscheduler.log")
        try:
            drivers = [aps, FloorDriver(), KaladDriver(ctx.kalad_api(), ctx.kalad_pid)]
            for b in (0, ballast):
                trials.update(section(drivers, stamps, b, jobs, duration, rounds, lead, grace))
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
        sections.append({"title": f"lateness: {jobs} jobs/s for {duration} s ({rounds} turns), {b} idle jobs "
                                  f"({k['expected']} runs expected)",
                         "baselines": ["floor", "APScheduler"], "rows": rows})
    sections[0]["note"] = (f"APScheduler {aps.version}; lateness = child's clock read - scheduled instant; includes the child's own start-up, "
                           f"p50 {overhead['p50_ms']} ms here (posix_spawn -> bash's clock read)")
    return {"sections": sections,
            "data": {"jobs": jobs, "duration_s": duration, "turns": rounds, "ballast": ballast, "child_overhead": overhead,
                     "apscheduler": aps.version, "trials": trials}}
