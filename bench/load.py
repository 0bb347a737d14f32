"""HTTP load generators: wrk when installed, else Python threads.

wrk (one thread) costs ~0.15 CPU at 6 k req/s against ~0.6 for Python threads, which
matters on 2 cores where client and server share the CPUs; the Python client is the
fallback and is used for what wrk cannot do cheaply (the 10,000-job list). Both are
bounded in time; the Python client also in request count.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import threading
import time

from bench.client import API_PREFIX, Api
from bench.common import summary_ms

WRK = shutil.which("wrk")


def result(ok: int, errors: int, elapsed: float, p50, p99, client: str) -> dict:
    return {"requests": ok, "errors": errors, "rps": round(ok / max(elapsed, 1e-9), 1),
            "p50_ms": p50, "p99_ms": p99, "seconds": round(elapsed, 2), "client": client}


def py_load(api: Api, method: str, paths: list[str], body_for, seconds: float, conc: int,
            max_requests: int) -> dict:
    """conc threads, each on its own keep-alive connection, until the deadline or the cap."""
    deadline = time.monotonic() + seconds
    lat: list[list[int]] = [[] for _ in range(conc)]
    errors = [0] * conc
    per_thread = max(1, max_requests // conc)

    def worker(w: int) -> None:
        n = w
        while time.monotonic() < deadline and len(lat[w]) + errors[w] < per_thread:
            t0 = time.perf_counter_ns()
            try:
                status = api.request(method, paths[n % len(paths)], body_for(n) if body_for else None,
                                     parse=False)[0]
            except (OSError, http.client.HTTPException):
                status = 0
            if 200 <= status < 300:
                lat[w].append(time.perf_counter_ns() - t0)
            else:
                errors[w] += 1
            n += conc

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [v for w in lat for v in w]
    s = summary_ms(ok)
    return result(len(ok), sum(errors), time.monotonic() - start, s["p50_ms"], s["p99_ms"],
                  f"python x{conc}")


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def wrk_load(url: str, seconds: float, conc: int, script: str | None = None) -> dict:
    cmd = [WRK, "-t1", f"-c{conc}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60,
                         check=True).stdout
    total = int(re.search(r"(\d+) requests in", out)[1])
    elapsed = float(re.search(r"requests in ([\d.]+)(m?s)", out)[1])
    if re.search(r"requests in [\d.]+ms", out):
        elapsed /= 1000
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad[1]) if bad else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors += sum(map(int, sock.groups())) if sock else 0
    pcts = {p: round(float(v) * _UNIT[u], 3)
            for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)}
    return result(total - errors, errors, elapsed, pcts.get("50"), pcts.get("99"), f"wrk -t1 -c{conc}")


def wrk_post_script(workdir: str, job: dict, name_prefix: str) -> str:
    """A wrk Lua script POSTing job with name name_prefix<n>, n counting up."""
    path = os.path.join(workdir, "post.lua")
    body = json.dumps(dict(job, name=f"{name_prefix}%d"))
    with open(path, "w") as f:
        f.write('local n = 0\nrequest = function()\n  n = n + 1\n'
                f'  return wrk.format("POST", "{API_PREFIX}/job/", '
                '{["Content-Type"] = "application/json"}, '
                f'string.format({json.dumps(body)}, n))\nend\n')
    return path


def wrk_get_script(workdir: str, paths: list[str]) -> str:
    """A wrk Lua script GETting paths (under /api/v1) round robin."""
    path = os.path.join(workdir, "get.lua")
    items = ",\n".join(json.dumps(API_PREFIX + p) for p in paths)
    with open(path, "w") as f:
        f.write(f"local paths = {{\n{items}\n}}\nlocal i = 0\nrequest = function()\n"
                "  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n")
    return path


def load(api: Api, method: str, paths: list[str], seconds: float, conc: int, max_requests: int,
         workdir: str, job: dict | None = None, name_prefix: str = "", use_wrk: bool = True) -> dict:
    """One phase against api: GET of paths round robin, or POST of job (named uniquely)."""
    if use_wrk and WRK:
        if method == "POST":
            script = wrk_post_script(workdir, job, name_prefix)
        else:
            script = None if len(paths) == 1 else wrk_get_script(workdir, paths)
        return wrk_load(f"http://{api.host}:{api.port}{API_PREFIX}{paths[0]}", seconds, conc, script)
    body_for = (lambda n: dict(job, name=f"{name_prefix}{n}")) if method == "POST" else None
    return py_load(api, method, paths, body_for, seconds, conc, max_requests)
