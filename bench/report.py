"""Output: the terminal table (each figure, its baselines and the ratio kalad / baseline),
results.json (every figure and the raw data behind it) and PNG charts (lateness
distribution of kalad vs the floor vs APScheduler; throughput bars), all in one
``bench/results/<timestamp>/`` directory per run.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

FIG_W, VAL_W, RATIO_W = 46, 11, 6


def number(v):
    """(float, is_lower_bound) of a figure, or (None, False) when it is not a number."""
    if isinstance(v, bool) or v is None:
        return None, False
    if isinstance(v, (int, float)):
        return float(v), False
    if isinstance(v, str) and v.startswith(">= "):
        try:
            return float(v[3:]), True
        except ValueError:
            pass
    return None, False


def ratio(kalad, base) -> str:
    k, k_bound = number(kalad)
    b, b_bound = number(base)
    if k is None or b is None or b == 0:
        return "-"
    r = k / b
    text = f"{r:.2f}" if r < 100 else f"{r:.0f}"
    return ("~" if k_bound or b_bound else "") + text


def cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def table(sections: list[dict]) -> str:
    lines = []
    for s in sections:
        lines.append("")
        lines.append(f"== {s['title']}")
        widths = [max(VAL_W, len(name)) for name in s["baselines"]]
        head = f"{'figure':<{FIG_W}} {'kalad':>{VAL_W}}"
        for name, w in zip(s["baselines"], widths):
            head += f" {name:>{w}} {'ratio':>{RATIO_W}}"
        lines.append(head)
        for row in s["rows"]:
            line = f"{row['figure'][:FIG_W]:<{FIG_W}} {cell(row['kalad']):>{VAL_W}}"
            for base, w in zip(row["baselines"], widths):
                line += f" {cell(base):>{w}} {ratio(row['kalad'], base) if base is not None else '':>{RATIO_W}}"
            lines.append(line.rstrip())
        if s.get("note"):
            lines.append(f"   ({s['note']})")
    lines.append("")
    lines.append("ratio = kalad / baseline (lower is better for times and sizes, higher for rates)")
    return "\n".join(lines)


def _jsonable(obj):
    """Lateness samples go to the JSON in ms; everything else as is."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k.endswith("samples_ns"):
                out[k.removesuffix("ns") + "ms"] = [round(x / 1e6, 3) for x in sorted(v)]
            else:
                out[k] = _jsonable(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [_jsonable(x) for x in obj]
    return obj


def write_json(path: Path, meta: dict, results: dict) -> None:
    doc = {"meta": meta,
           "table": [s for r in results.values() for s in r.get("sections", [])],
           "data": {name: _jsonable(r.get("data")) for name, r in results.items()},
           "errors": {name: r["error"] for name, r in results.items() if "error" in r}}
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")


def charts(out_dir: Path, results: dict) -> list[Path]:
    """PNG charts of whatever ran; none when matplotlib is missing."""
    try:
        os.environ.setdefault("MPLCONFIGDIR", str(out_dir / ".mpl"))
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    lat = (results.get("lateness") or {}).get("data")
    if lat:
        made.append(_lateness_chart(plt, out_dir / "lateness.png", lat))
    if any((results.get(k) or {}).get("data") for k in ("api", "firerate")):
        made.append(_throughput_chart(plt, out_dir / "throughput.png", results))
    plt.close("all")
    return made


def matplotlib_ticker():
    import matplotlib.ticker
    return matplotlib.ticker


COLORS = {"kalad": "tab:blue", "floor": "tab:gray", "APScheduler": "tab:orange"}


def _lateness_chart(plt, path: Path, lat: dict) -> Path:
    trials = lat["trials"]
    levels = [0, lat["ballast"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, b in zip(axes, levels):
        for key, label in ((f"floor/{b}", "floor (bare spawn loop)"), (f"APScheduler/{b}", "APScheduler"),
                           (f"kalad/{b}", "kalad")):
            t = trials.get(key)
            if not t or not t.get("samples_ns"):
                continue
            xs = sorted(v / 1e6 for v in t["samples_ns"])
            ys = [(i + 1) / t["expected"] for i in range(len(xs))]
            ax.step(xs, ys, where="post", color=COLORS[key.split("/")[0]],
                    label=f"{label}: p50 {t['p50_ms']} p99 {t['p99_ms']} ms")
        ax.set_xscale("log")
        # Ticks at 1-2-5 steps, in plain ms: the range is often under a decade, where
        # matplotlib would label only minor ticks, as powers of ten (2x10^0).
        ticker = matplotlib_ticker()
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("lateness: child's clock read - scheduled instant (ms, log)")
        ax.set_title(f"{lat['jobs']} jobs/s for {lat['duration_s']} s, {b} idle jobs")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel("fraction of expected runs started")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _throughput_chart(plt, path: Path, results: dict) -> Path:
    api = (results.get("api") or {}).get("data")
    fire = (results.get("firerate") or {}).get("data")
    panels = [p for p in (api, fire) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    axes = list(axes[0])
    if api:
        ax = axes.pop(0)
        keys = [("post", "POST /job/"), ("job", "GET /job/{id}/"), ("stats", "GET /stats/"),
                ("list", f"GET /job/\n({api['kalad'].get('jobs_before_gets')} jobs)")]
        xs = range(len(keys))
        for off, who, color, label in ((-0.2, "kalad", COLORS["kalad"], "kalad"),
                                       (0.2, "ceiling", "tab:green", "bare falcon+waitress")):
            vals = [api[who][k]["rps"] for k, _ in keys]
            bars = ax.bar([x + off for x in xs], vals, 0.4, color=color, label=label)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks(list(xs), [label for _, label in keys], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(top=max(api[w][k]["rps"] for w in ("kalad", "ceiling") for k, _ in keys) * 5)
        ax.set_ylabel("requests/s (log)")
        ax.set_title(f"API throughput ({api['client']})")
        ax.legend(fontsize=8, loc="upper right")
    if fire:
        ax = axes.pop(0)
        rates = fire["spawn_rates"]
        names = ["kalad", "APScheduler", "raw spawn\n(64 alive)", "raw spawn\n(1 at a time)"]
        vals = [fire["kalad"]["max_sustained_per_s"], fire["APScheduler"]["max_sustained_per_s"],
                rates["stamp_c64_per_s"], rates["stamp_c1_per_s"]]
        bars = ax.bar(names, vals, color=[COLORS["kalad"], COLORS["APScheduler"], "tab:gray", "silver"])
        unbounded = [not fire[w]["first_fail"] for w in ("kalad", "APScheduler")] + [False, False]
        ax.bar_label(bars, labels=[(">= " if u else "") + f"{v:.0f}" for v, u in zip(vals, unbounded)], fontsize=8)
        ax.set_ylabel("job starts per second sustained")
        ax.set_title("fire rate (>= 99 % runs, p99 < 1 s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
