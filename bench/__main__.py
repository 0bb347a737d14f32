"""``python -m bench [lateness] [firerate] [api] [scale] [store] [--quick] ...``: run the benchmarks.

Starts a real kalad (LMDB in a temp dir, free port on 127.0.0.1, ready on READY=1), runs
the chosen measurements (all by default) each beside its baselines, and writes
``bench/results/<timestamp>/``: results.json, table.txt, lateness.png, throughput.png and
kalad.log (the daemon's stderr). The table is printed at the end. Nothing is asserted: on a
small shared machine the figures are for reading, and repeated runs differ by ~15 %.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from bench import api, firerate, lateness, report, scale, store
from bench.common import PROJECT_ROOT, RESULTS_DIR, say
from bench.daemon import Kalad
from bench.load import WRK

MEASURES = {"lateness": lateness, "firerate": firerate, "api": api, "scale": scale,
            "store": store}


class Context:
    """What the measurements share: options, the results dir, and one kalad started on demand."""

    def __init__(self, args, out_dir: Path):
        self.quick = args.quick
        self.ballast = args.ballast
        self.scale = args.scale
        self.use_wrk = not args.no_wrk
        self.kalad_args = tuple(args.kalad_arg)
        self.out_dir = out_dir
        self.log_path = out_dir / "kalad.log"
        self._kalad: Kalad | None = None
        self._api = None
        self.kalad_ready_s = None

    def kalad_api(self):
        """The shared kalad's API client, starting kalad the first time."""
        if self._kalad is None:
            self._kalad = Kalad(self.log_path, *self.kalad_args)
            self.kalad_ready_s = self._kalad.start()
            say(f"kalad ready in {self.kalad_ready_s:.2f}s on port {self._kalad.port}, pid {self._kalad.pid}")
            self._api = self._kalad.api(8)
        return self._api

    @property
    def kalad_pid(self) -> int | None:
        return self._kalad.pid if self._kalad else None

    def unresponsive(self) -> str | None:
        """Why the shared kalad stopped answering, if it did."""
        return self._api.broken if self._api else None

    def close(self) -> None:
        """Stop the shared kalad (SIGKILL if SIGTERM does not end it) and drop its store."""
        if self._api:
            self._api.close()
        if self._kalad:
            self._kalad.cleanup()
        self._api = self._kalad = None


def meta(args) -> dict:
    def git(*cmd):
        try:
            return subprocess.run(["git", *cmd], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(),
            "cpus": os.cpu_count(), "loadavg": os.getloadavg(), "python": sys.version.split()[0],
            "platform": platform.platform(), "kalad_commit": git("rev-parse", "--short", "HEAD"),
            "kalad_dirty": bool(git("status", "--porcelain", "--", "kalad")),
            "measures": args.measures, "quick": args.quick, "ballast": args.ballast, "scale": args.scale,
            "wrk": WRK if not args.no_wrk else None, "kalad_args": args.kalad_arg}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("measures", nargs="*", choices=[[], *MEASURES], metavar="MEASURE",
                   help=f"any of {', '.join(MEASURES)} (default: all, in that order)")
    p.add_argument("--quick", action="store_true", help="a short smoke run (~2-3 minutes): shorter windows, fewer jobs")
    p.add_argument("--ballast", type=int, help="idle jobs for the lateness run (default 100000; quick 1000)")
    p.add_argument("--scale", type=int, help="jobs for the scale run (default 1000000; quick 2000)")
    p.add_argument("--no-wrk", action="store_true", help="drive the API load with Python threads even if wrk is here")
    p.add_argument("--out", type=Path, help="results dir (default bench/results/<timestamp>)")
    p.add_argument("--kalad-arg", action="append", default=[], metavar="ARG",
                   help="one more argument for `kalad serve`, repeatable, for A/B runs of a "
                        "setting: --kalad-arg=--log-level=warning")
    args = p.parse_args(argv)
    args.measures = [m for m in MEASURES if m in args.measures] or list(MEASURES)
    for name, v, hi in (("--ballast", args.ballast, 1_000_000), ("--scale", args.scale, 2_000_000)):
        if v is not None and not 0 < v <= hi:
            p.error(f"{name} must be 1..{hi}")

    out_dir = args.out or RESULTS_DIR / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    info = meta(args)
    say(f"results in {out_dir}; measuring {', '.join(args.measures)}{' (quick)' if args.quick else ''}"
        + (f"; kalad serve {' '.join(args.kalad_arg)}" if args.kalad_arg else ""))
    ctx = Context(args, out_dir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still clean up kalad and peers
    results: dict[str, dict] = {}
    t0 = time.monotonic()
    try:
        for name in args.measures:
            started = time.monotonic()
            try:
                results[name] = MEASURES[name].run(ctx)
            except Exception as exc:  # one failed measurement must not lose the others
                traceback.print_exc()
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            if ctx.unresponsive():  # a hung kalad: record it, start a fresh one for the rest
                results[name]["error"] = f"kalad hung: {ctx.unresponsive()} (see kalad.log)"
                say(f"{name}: {results[name]['error']}; restarting kalad")
                ctx.close()
            results[name]["seconds"] = round(time.monotonic() - started, 1)
            say(f"{name} done in {results[name]['seconds']}s")
    finally:
        ctx.close()
    info["seconds"] = round(time.monotonic() - t0, 1)
    info["kalad_ready_s"] = ctx.kalad_ready_s

    sections = [s for r in results.values() for s in r.get("sections", [])]
    text = report.table(sections)
    failed = {n: r["error"] for n, r in results.items() if "error" in r}
    if failed:
        text += "\n" + "\n".join(f"FAILED {n}: {e}" for n, e in failed.items())
    (out_dir / "table.txt").write_text(text + "\n")
    report.write_json(out_dir / "results.json", info, results)
    pngs = report.charts(out_dir, results)
    shutil.rmtree(out_dir / ".mpl", ignore_errors=True)
    print(text)
    print(f"\n{info['seconds']} s; results: {out_dir}/ (results.json, table.txt"
          + "".join(f", {p.name}" for p in pngs) + ", kalad.log)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
