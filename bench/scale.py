"""Scale: a kalad holding N idle jobs (1,000,000; ``--scale N``).

On a fresh kalad with its own store: creation rate of N jobs (POST /job/, 8 connections,
Python client; above ``API_CREATE`` jobs the rest are written into the stopped kalad's
store directly, as ``kalad copy-store`` would, because a million POSTs take half an
hour), RSS of the kalad process, store size on disk, and restart-to-ready:
SIGTERM, start again, time until READY=1 (sent once every job is loaded), then a check
that GET /stats/ counts all N. Baselines in the same run: the bare falcon+waitress app's
POST rate with the same client, APScheduler 3.11 holding N jobs in memory (RSS), kalad's
own restart with an empty store, and the raw JSON of N jobs as kalad serves them.
The N jobs are deleted by id at the end (bounded in time; the temp store goes anyway).
"""
from __future__ import annotations

import json
import time
import uuid

from bench.api import start_ceiling
from bench.client import Api
from bench.common import far_schedule, say, stop_process
from bench.daemon import Kalad
from bench.peer_aps import ApsDriver

CHUNK = 5000
API_CREATE = 100_000  # jobs created through the API; the rest of N go into the store


def fill_store(lmdb_path, n: int, prefix: str) -> float:
    """Write n jobs like those ``create`` makes straight into the LMDB store; seconds taken."""
    from dataclasses import replace
    from datetime import datetime, timezone

    from kalad.api.kala_json import parse_job
    from kalad.core.ports import Change
    from kalad.core.schedule import parse_schedule
    from kalad.store.lmdb import LmdbStore

    schedule = far_schedule()
    now = datetime.now(timezone.utc)
    first = parse_schedule(schedule, timezone.utc).first_at_or_after(now)
    store = LmdbStore(str(lmdb_path))
    t0 = time.monotonic()
    try:
        for start in range(0, n, 10_000):
            jobs = []
            for i in range(start, min(n, start + 10_000)):
                body = json.dumps({"name": f"{prefix}{i}", "command": "/bin/true",
                                   "schedule": schedule, "epsilon": "PT5S"}).encode()
                job = parse_job(body, job_id=str(uuid.uuid4()), now=now)
                jobs.append(replace(job, next_run_at=first))
            store.apply([Change(put=tuple(jobs))])
    finally:
        store.close()
    return time.monotonic() - t0


def create(api: Api, n: int, budget_s: float, prefix: str) -> tuple[list[str], int, float]:
    """Create n far-future jobs in chunks until done or out of time: (ids, errors, seconds)."""
    schedule = far_schedule()
    ids, errors, t0 = [], 0, time.monotonic()
    while len(ids) + errors < n and time.monotonic() - t0 < budget_s:
        base = len(ids) + errors
        got = api.create_many([{"name": f"{prefix}{base + i}", "command": "/bin/true", "schedule": schedule,
                                "epsilon": "PT5S"} for i in range(min(CHUNK, n - base))])
        ids += [i for i in got if i]
        errors += sum(i is None for i in got)
        if errors > 100 and errors > len(ids):
            break
    return ids, errors, time.monotonic() - t0


def mib(kib):
    return None if kib is None else round(kib / 1024, 1)


def run(ctx) -> dict:
    n = ctx.scale or (2000 if ctx.quick else 1_000_000)
    budget = max(300.0, n / 100)
    data: dict = {"jobs": n}

    say(f"scale: baselines: APScheduler with {n} jobs, bare falcon+waitress POST")
    aps = ApsDriver(ctx.out_dir / "apscheduler.log")
    try:
        time.sleep(0.5)
        aps_empty = aps.rss_kib()
        data["aps_add_s"] = aps.ballast(n)
        data["aps_rss_kib"] = aps.rss_kib()
        data["aps_rss_empty_kib"] = aps_empty
    finally:
        aps.close()
    proc, port = start_ceiling()
    ceiling = Api(port, 8)
    try:
        c_ids, c_err, c_s = create(ceiling, min(n, 20_000), 60, "scale-")
        data["ceiling_create"] = {"jobs": len(c_ids), "errors": c_err, "seconds": round(c_s, 2),
                                  "rate_per_s": round(len(c_ids) / c_s, 1)}
    finally:
        ceiling.close()
        stop_process(proc)

    kalad = Kalad(ctx.log_path, *ctx.kalad_args)
    try:
        data["first_start_s"] = round(kalad.start(), 3)
        kalad.stop()
        data["restart_empty_s"] = round(kalad.start(), 3)
        time.sleep(0.5)
        data["rss_empty_kib"] = kalad.rss_kib()
        data["store_empty_bytes"] = kalad.store_bytes()[0]
        api = kalad.api(8, timeout=120)
        via_api = min(n, API_CREATE)
        say(f"scale: creating {via_api} jobs in kalad through the API")
        ids, errors, secs = create(api, via_api, budget, "scale-")
        data["create"] = {"jobs": len(ids), "errors": errors, "seconds": round(secs, 2),
                          "rate_per_s": round(len(ids) / secs, 1)}
        say(f"scale: {len(ids)} jobs in {secs:.1f}s = {data['create']['rate_per_s']}/s, {errors} errors")
        data["rss_created_kib"] = kalad.rss_kib()
        data["store_bytes"], data["store_apparent_bytes"] = kalad.store_bytes()
        status, body, _ = api.request("GET", f"/job/{ids[0]}/") if ids else (0, None, 0)
        one = len(json.dumps((body or {}).get("job") or {}, separators=(",", ":")))
        data["raw_json_bytes"] = one * len(ids)
        api.close()

        data["stop_s"] = round(kalad.stop() or 0, 3)
        if n > via_api:
            say(f"scale: writing {n - via_api} more jobs into the store")
            fill_s = fill_store(kalad.lmdb, n - via_api, "fill-")
            data["fill"] = {"jobs": n - via_api, "seconds": round(fill_s, 2),
                            "rate_per_s": round((n - via_api) / fill_s, 1)}
        data["restart_s"] = round(kalad.start(timeout=max(600.0, n / 500)), 3)
        api = kalad.api(8, timeout=300)
        data["jobs_after_restart"] = api.stats().get("Jobs")
        time.sleep(0.5)
        data["rss_restarted_kib"] = kalad.rss_kib()
        data["store_restarted_bytes"] = kalad.store_bytes()[0]
        t0 = time.monotonic()
        status, _, _ = api.request("GET", f"/job/?limit=100&offset={max(0, n // 2)}", parse=False)
        data["page_s"] = round(time.monotonic() - t0, 3) if status == 200 else None
        say(f"scale: restart to READY=1 in {data['restart_s']}s, {data['jobs_after_restart']} jobs loaded")

        t0 = time.monotonic()
        deleted = 0
        for i in range(0, len(ids), CHUNK):
            if time.monotonic() - t0 > budget:
                break
            deleted += api.delete_many(ids[i:i + CHUNK])
        d_s = time.monotonic() - t0
        data["delete"] = {"deleted": deleted, "of": len(ids), "seconds": round(d_s, 2),
                          "rate_per_s": round(deleted / d_s, 1) if d_s else None}
        api.close()
    finally:
        kalad.cleanup()

    made = data["create"]["jobs"]
    total = data["jobs_after_restart"] or made
    per_job = lambda rss, empty, jobs: round((rss - empty) * 1024 / jobs) if rss and empty and jobs else None
    rows = [
        {"figure": "create jobs/s [ref: falcon+waitress POST]", "kalad": data["create"]["rate_per_s"],
         "baselines": [data["ceiling_create"]["rate_per_s"], None]},
        {"figure": f"RSS with {made} jobs (MiB)", "kalad": mib(data["rss_created_kib"]),
         "baselines": [None, mib(data["aps_rss_kib"]) if made == n else None]},
        {"figure": f"RSS after restart with {total} jobs (MiB)", "kalad": mib(data["rss_restarted_kib"]),
         "baselines": [None, mib(data["aps_rss_kib"]) if total == n else None]},
        {"figure": "RSS per job after restart (bytes)",
         "kalad": per_job(data["rss_restarted_kib"], data["rss_empty_kib"], total),
         "baselines": [None, per_job(data["aps_rss_kib"], data["aps_rss_empty_kib"], n)]},
        {"figure": f"restart to READY=1 with {total} jobs (s) [ref: 0 jobs]", "kalad": data["restart_s"],
         "baselines": [data["restart_empty_s"], None]},
        {"figure": "GET /job/?limit=100 from the middle (s)", "kalad": data.get("page_s"),
         "baselines": [None, None]},
        {"figure": f"store on disk with {total} jobs (MB)",
         "kalad": round(data["store_restarted_bytes"] / 1e6, 2), "baselines": [None, None]},
        {"figure": f"store on disk with {made} jobs (MB) [ref: jobs' JSON]",
         "kalad": round(data["store_bytes"] / 1e6, 2),
         "baselines": [round(data["raw_json_bytes"] / 1e6, 2), None]},
        {"figure": "delete jobs/s", "kalad": data["delete"]["rate_per_s"], "baselines": [None, None]},
    ]
    if "fill" in data:
        rows.insert(1, {"figure": "jobs/s written straight into the store (no API)",
                        "kalad": data["fill"]["rate_per_s"], "baselines": [None, None]})
    note = (f"create: POST /job/ on 8 connections, Python client; APScheduler holds the {n} jobs in memory; "
            f"jobs loaded after restart: {data['jobs_after_restart']}, "
            f"SIGTERM to exit {data['stop_s']} s")
    if data["create"]["errors"]:
        note += f"; {data['create']['errors']} create errors"
    return {"sections": [{"title": f"scale: {made} idle jobs in one kalad",
                          "baselines": ["reference", "APScheduler"], "rows": rows, "note": note}],
            "data": data}
