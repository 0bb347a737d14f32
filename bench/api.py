"""API: throughput and latency of kalad's REST API beside a bare falcon + waitress app.

Phases of S seconds (5) on 8 keep-alive connections, each against kalad and then against
the ceiling app (ceiling.py: same stack, same wire shapes, a dict instead of a scheduler
and a store):

    POST /job/        create jobs a year ahead (kalad: durable before the 201; ceiling: a dict)
    GET /job/{id}/    round robin over 1,000 of them
    GET /stats/
    GET /job/         the full list with L jobs (10,000) in the server, 2 connections

Between POST and the GETs each server is brought to exactly L jobs. wrk drives the load
when installed (far cheaper per request than Python threads on 2 shared cores), else
Python threads. kalad's jobs are deleted by id at the end.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time

from bench.client import Api
from bench.common import far_schedule, module_command, say, stop_process
from bench.load import WRK, load

PREFIX = "apibench-"
CEILING_THREADS = 8  # kalad's --api-threads default


def start_ceiling() -> tuple[subprocess.Popen, int]:
    argv, env = module_command("ceiling", str(CEILING_THREADS))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    port = proc.stdout.readline().strip()
    if not port.isdigit():
        stop_process(proc)
        raise RuntimeError("the ceiling app did not start")
    return proc, int(port)


def bring_to(api: Api, want: int, job: dict) -> tuple[list[str], float]:
    """Create or delete our jobs until there are exactly `want`; (ids, seconds)."""
    t0 = time.monotonic()
    ids = api.job_ids(PREFIX)
    if len(ids) < want:
        new = api.create_many([dict(job, name=f"{PREFIX}fill-{i}") for i in range(want - len(ids))])
        ids += [i for i in new if i]
    elif len(ids) > want:
        api.delete_many(ids[want:])
        ids = ids[:want]
    return ids, time.monotonic() - t0


def measure(api: Api, seconds: float, list_jobs: int, workdir: str, use_wrk: bool, max_requests: int) -> dict:
    job = {"name": "", "command": "/bin/true", "schedule": far_schedule(), "epsilon": "PT5S"}
    res = {"post": load(api, "POST", ["/job/"], seconds, 8, max_requests, workdir, job, PREFIX, use_wrk)}
    ids, fill_s = bring_to(api, list_jobs, job)
    res["jobs_before_gets"] = len(ids)
    res["fill_s"] = round(fill_s, 2)
    res["job"] = load(api, "GET", [f"/job/{i}/" for i in ids[:1000]], seconds, 8, max_requests, workdir,
                      use_wrk=use_wrk)
    res["stats"] = load(api, "GET", ["/stats/"], seconds, 8, max_requests, workdir, use_wrk=use_wrk)
    res["list"] = load(api, "GET", ["/job/"], seconds, 2, 200, workdir, use_wrk=use_wrk)
    res["list_bytes"] = api.request("GET", "/job/", parse=False)[2]
    return res


PHASES = (("post", "POST /job/ (durable)"), ("job", "GET /job/{id}/"), ("stats", "GET /stats/"),
          ("list", "GET /job/ (full list)"))


def run(ctx) -> dict:
    quick = ctx.quick
    seconds = 1.5 if quick else 5.0
    list_jobs = 1000 if quick else 10_000
    use_wrk = ctx.use_wrk and WRK is not None
    max_requests = 20_000 if quick else 100_000  # Python client only; wrk is bounded by time
    workdir = tempfile.mkdtemp(prefix="kalad-bench-api-")
    data = {"seconds": seconds, "list_jobs": list_jobs, "client": "wrk" if use_wrk else "python threads"}
    try:
        say(f"api: kalad, {seconds}s per phase, {data['client']}")
        api = ctx.kalad_api()
        try:
            data["kalad"] = measure(api, seconds, list_jobs, workdir, use_wrk, max_requests)
        finally:
            t0 = time.monotonic()
            ids = api.job_ids(PREFIX)
            data["kalad_cleanup"] = {"deleted": api.delete_many(ids), "of": len(ids),
                                     "seconds": round(time.monotonic() - t0, 2)}
        say("api: ceiling (bare falcon + waitress)")
        proc, port = start_ceiling()
        ceiling = Api(port, 8)
        try:
            data["ceiling"] = measure(ceiling, seconds, list_jobs, workdir, use_wrk, max_requests)
        finally:
            ceiling.close()
            stop_process(proc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    k, c = data["kalad"], data["ceiling"]
    rows = []
    for key, label in PHASES:
        label = label if key != "list" else f"GET /job/ ({k['jobs_before_gets']} jobs, {k['list_bytes'] / 1e6:.1f} MB)"
        rows.append({"figure": f"{label} req/s", "kalad": k[key]["rps"], "baselines": [c[key]["rps"]]})
        rows.append({"figure": f"{label} p99 ms", "kalad": k[key]["p99_ms"], "baselines": [c[key]["p99_ms"]]})
    errors = {f"{who}.{key}": d[key]["errors"] for who, d in (("kalad", k), ("ceiling", c))
              for key, _ in PHASES if d[key]["errors"]}
    note = f"client {k['post']['client']}, {seconds:g} s per phase"
    if errors:
        note += f"; errors: {errors}"
    return {"sections": [{"title": "API: kalad vs a bare falcon+waitress app (same stack, no work)",
                          "baselines": ["falcon+waitress"], "rows": rows, "note": note}],
            "data": data}
