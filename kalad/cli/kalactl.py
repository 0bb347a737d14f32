"""``kalactl``: the command-line client of a running kalad (or Kala), over its HTTP API.

A polite client: a readable table on a terminal, tab-separated lines without a
header when piped, ``--json`` for scripts, one-line errors (``kalactl: error: ...``)
and fixed exit statuses: 0 ok, 1 refused by the server, 2 bad usage, 69 daemon
unreachable. Jobs may be named by id, unique id prefix or exact name.

Where it connects, first found wins: ``--url``, ``$KALAD_URL``, the listen address
of kalad's config file (``--config FILE``, default ``/etc/kalad/kalad.conf``),
``http://127.0.0.1:8000``. The token: ``--token``, ``--token-file``, ``$KALAD_TOKEN``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

from kalad.client import DEFAULT_URL, Client, KaladError, Refused, Unreachable

EX_OK = 0
EX_REFUSED = 1
EX_USAGE = 2
EX_UNAVAILABLE = 69

EXPORT_FORMAT = 1
ZERO_TIME = "0001-01-01T00:00:00Z"
# Server-owned fields left out of an export: a create would ignore them anyway.
SERVER_FIELDS = ("next_run_at", "stats", "is_done", "dependent_jobs")


class UsageError(Exception):
    """Bad input caught before any request: exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage dump
        self.exit(EX_USAGE, f"kalactl: error: {message}\n")


# ------------------------------------------------------------------------ output


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _clip(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…" if width > 0 else ""


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, tty: bool,
                 width: int | None = None) -> str:
    """A table fitted to ``width`` columns on a terminal; tab-separated lines otherwise.

    Off a terminal there is no header and no truncation, so ``cut -f`` and ``awk``
    see every value whole. On a terminal the widest columns shrink first, long
    cells ending in ``…``.
    """
    rows = [[_one_line(c) for c in row] for row in rows]
    if not tty:
        return "".join("\t".join(row) + "\n" for row in rows)
    width = width or shutil.get_terminal_size().columns
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    gap = 2
    floor = [min(w, max(len(h), 6)) for w, h in zip(widths, headers)]
    while sum(widths) + gap * (len(widths) - 1) > width:
        shrinkable = [i for i, w in enumerate(widths) if w > floor[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
    lines = []
    for row in [list(headers)] + rows:
        cells = [_clip(c, w).ljust(w) for c, w in zip(row, widths)]
        lines.append((" " * gap).join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _one_line(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def _when(text: str | None) -> str:
    """An RFC 3339 time for people: UTC to the second; the zero time is ``-``."""
    if not text or text == ZERO_TIME:
        return "-"
    return _time_key(text).strftime("%Y-%m-%d %H:%M:%SZ")


def _time_key(text: str | None) -> datetime:
    if not text or text == ZERO_TIME:
        return datetime.min.replace(tzinfo=timezone.utc)
    head, _, _ = text.partition(".")
    head = head.rstrip("Z")
    try:
        return datetime.fromisoformat(head[:19]).replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)


def _duration(ns: int | None) -> str:
    if not ns:
        return "-"
    seconds = ns / 1e9
    if seconds < 1:
        return f"{ns / 1e6:.0f}ms"
    if seconds < 120:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _last_result(job: dict) -> str:
    md = job.get("metadata") or {}
    ok, bad = md.get("last_success"), md.get("last_error")
    if _when(ok) == "-" and _when(bad) == "-":
        return "-"
    if _time_key(ok) >= _time_key(bad):
        return f"ok {_when(ok)}"
    return f"failed {_when(bad)}"


def _next_run(job: dict) -> str:
    if job.get("is_done"):
        return "done"
    if job.get("parent_jobs"):
        return "after parents"
    return _when(job.get("next_run_at"))


class Out:
    """Where a command writes: stdout for results, stderr for progress and questions."""

    def __init__(self, as_json: bool) -> None:
        self.json = as_json
        self.tty = _is_tty(sys.stdout)
        self.progress_tty = _is_tty(sys.stderr)

    def emit_json(self, value: Any) -> None:
        json.dump(value, sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
        sys.stdout.write(format_table(headers, rows, tty=self.tty))

    def line(self, text: str = "") -> None:
        print(text)

    def progress(self, done: int, total: int, what: str) -> None:
        if self.progress_tty:
            end = "\n" if done == total else ""
            sys.stderr.write(f"\r{what}: {done}/{total}{end}")
            sys.stderr.flush()


# ------------------------------------------------------------------------ resolving jobs


def resolve(client: Client, ref: str, jobs: dict[str, dict] | None = None) -> str:
    """The id of the job ``ref`` names: an id, a unique id prefix or an exact name.

    An exact id wins, then an exact name, then an id prefix. Nothing matching
    passes ``ref`` through, so the server's own "not found" message reaches the
    user. A full-length id is sent as is, without listing every job first.
    """
    if not ref:
        raise UsageError("an empty job id or name")
    if len(ref) == 36 and ref.count("-") == 4 and jobs is None:
        return ref
    if jobs is None:
        jobs = client.get_all()
    if ref in jobs:
        return ref
    for matches, kind in (([i for i, j in jobs.items() if j.get("name") == ref], "name"),
                          ([i for i in jobs if i.startswith(ref)], "id prefix")):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(f"{i} ({jobs[i].get('name', '')})" for i in sorted(matches))
            raise UsageError(f"{ref!r} is ambiguous: {len(matches)} jobs match by {kind}: "
                             f"{names}")
    return ref


# ------------------------------------------------------------------------ commands


def cmd_list(client: Client, args, out: Out) -> int:
    jobs = client.get_all()
    if out.json:
        out.emit_json(jobs)
        return EX_OK
    ordered = sorted(jobs.values(), key=lambda j: (j.get("name", ""), j.get("id", "")))
    out.table(
        ("ID", "NAME", "SCHEDULE", "NEXT RUN", "LAST RESULT", "ENABLED"),
        [(j.get("id", ""), j.get("name", ""), j.get("schedule") or "-", _next_run(j),
          _last_result(j), "no" if j.get("disabled") else "yes") for j in ordered],
    )
    return EX_OK


def cmd_get(client: Client, args, out: Out) -> int:
    job = client.get(resolve(client, args.job))
    if out.json:
        out.emit_json(job)
        return EX_OK
    rp = job.get("remote_properties") or {}
    fields = [
        ("id", job.get("id")), ("name", job.get("name")), ("owner", job.get("owner") or "-"),
        ("type", "remote" if job.get("type") == 1 else "local"),
        ("command", job.get("command") or "-"), ("schedule", job.get("schedule") or "-"),
        ("retries", job.get("retries")), ("epsilon", job.get("epsilon") or "-"),
        ("enabled", "no" if job.get("disabled") else "yes"),
        ("parents", ", ".join(job.get("parent_jobs") or []) or "-"),
        ("children", ", ".join(job.get("dependent_jobs") or []) or "-"),
        ("on failure", job.get("on_failure_job") or "-"),
        ("next run", _next_run(job)), ("last result", _last_result(job)),
    ]
    if job.get("type") == 1:
        fields.insert(5, ("remote", f"{rp.get('method') or 'GET'} {rp.get('url', '')}"))
    md = job.get("metadata") or {}
    fields.append(("runs", f"{md.get('success_count', 0)} ok, {md.get('error_count', 0)} failed"))
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        out.line(f"{key + ':':<{width + 1}} {_one_line(value)}")
    return EX_OK


def _load_json_file(path: str) -> Any:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{'stdin' if path == '-' else path}: not JSON: {exc}") from None


def build_job(client: Client, args) -> dict[str, Any]:
    """The job JSON of ``create``: ``--file`` first, the flags given on top of it."""
    job: dict[str, Any] = {}
    if args.file:
        loaded = _load_json_file(args.file)
        if not isinstance(loaded, dict):
            raise UsageError(f"{args.file}: expected a JSON object (one job)")
        job.update(loaded)
    for flag, key in (("name", "name"), ("command", "command"), ("schedule", "schedule"),
                      ("retries", "retries"), ("epsilon", "epsilon"), ("owner", "owner")):
        value = getattr(args, flag)
        if value is not None:
            job[key] = value
    if args.disabled:
        job["disabled"] = True
    if args.resume_at_next_scheduled_time:
        job["resume_at_next_scheduled_time"] = True
    if args.parent or args.on_failure:
        jobs = client.get_all()
        if args.parent:
            job["parent_jobs"] = [resolve(client, p, jobs) for p in args.parent]
        if args.on_failure:
            job["on_failure_job"] = resolve(client, args.on_failure, jobs)
    remote = args.remote_url or args.method or args.body is not None or args.header
    if remote:
        props = dict(job.get("remote_properties") or {})
        if args.remote_url:
            props["url"] = args.remote_url
        if args.method:
            props["method"] = args.method.upper()
        if args.body is not None:
            props["body"] = args.body
        if args.header:
            headers = dict(props.get("headers") or {})
            for header in args.header:
                name, sep, value = header.partition(":")
                if not sep or not name.strip():
                    raise UsageError(f"--header {header!r}: expected 'Name: value'")
                headers.setdefault(name.strip(), []).append(value.strip())
            props["headers"] = headers
        job["remote_properties"] = props
        job["type"] = 1
    if not job.get("name"):
        raise UsageError("a job needs a name: --name NAME (or a \"name\" in --file)")
    return job


def cmd_create(client: Client, args, out: Out) -> int:
    job_id = client.create(build_job(client, args))
    if out.json:
        out.emit_json({"id": job_id})
    else:
        out.line(job_id)
    return EX_OK


def _confirm(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_delete(client: Client, args, out: Out) -> int:
    if args.all:
        if args.jobs:
            raise UsageError("delete: give job ids or --all, not both")
        jobs = client.get_all()
        if not args.yes:
            if not _is_tty(sys.stdin):
                raise UsageError("delete --all: refusing without --yes "
                                 "(stdin is not a terminal to confirm on)")
            if not _confirm(f"Delete all {len(jobs)} jobs at {client.base_url}?"):
                sys.stderr.write("kalactl: nothing deleted\n")
                return EX_OK
        if out.progress_tty:
            sys.stderr.write(f"deleting {len(jobs)} jobs...\n")
        client.delete_all()
        if out.json:
            out.emit_json({"deleted": sorted(jobs)})
        elif out.tty:
            out.line(f"deleted {len(jobs)} jobs")
        return EX_OK
    if not args.jobs:
        raise UsageError("delete: give one or more job ids, or --all")
    jobs = None if all(len(r) == 36 for r in args.jobs) else client.get_all()
    ids = [resolve(client, ref, jobs) for ref in args.jobs]
    for n, job_id in enumerate(ids, 1):
        client.delete(job_id)
        if not out.json:
            out.line(f"deleted {job_id}")
        if len(ids) > 10:
            out.progress(n, len(ids), "deleting")
    if out.json:
        out.emit_json({"deleted": ids})
    return EX_OK


def _action(name: str, method: Callable[[Client], Callable[[str], None]], past: str):
    def run(client: Client, args, out: Out) -> int:
        job_id = resolve(client, args.job)
        method(client)(job_id)
        if out.json:
            out.emit_json({"id": job_id, name: True})
        else:
            out.line(f"{past} {job_id}")
        return EX_OK

    return run


cmd_start = _action("started", lambda c: c.start, "started")
cmd_enable = _action("enabled", lambda c: c.enable, "enabled")
cmd_disable = _action("disabled", lambda c: c.disable, "disabled")


def cmd_runs(client: Client, args, out: Out) -> int:
    runs = client.runs(resolve(client, args.job), args.limit)
    if out.json:
        out.emit_json(runs)
        return EX_OK
    if not args.output:
        out.table(
            ("STARTED", "TRIGGER", "STATUS", "DURATION", "EXIT", "ATTEMPTS", "RUN"),
            [(_when(r.get("started_at") if r.get("started_at") != ZERO_TIME
                    else r.get("scheduled_at")),
              r.get("trigger", ""), r.get("status", ""), _duration(r.get("duration_ns")),
              "-" if r.get("exit_status") is None else r.get("exit_status"),
              r.get("attempts", ""), r.get("id", "")) for r in runs],
        )
        return EX_OK
    for r in runs:
        exit_status = "-" if r.get("exit_status") is None else r.get("exit_status")
        out.line(f"== {_when(r.get('started_at'))}  {r.get('trigger')}  {r.get('status')}  "
                 f"exit {exit_status}  {_duration(r.get('duration_ns'))}  run {r.get('id')}")
        if r.get("message"):
            out.line(f"   {r['message']}")
        text = r.get("output") or ""
        if text:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EX_OK


def cmd_stats(client: Client, args, out: Out) -> int:
    if args.job:
        stats = client.job_stats(resolve(client, args.job))
        if out.json:
            out.emit_json(stats)
            return EX_OK
        out.table(("RAN AT", "SUCCESS", "RETRIES", "DURATION"),
                  [(_when(s.get("ran_at")), "yes" if s.get("success") else "no",
                    s.get("number_of_retries", 0), _duration(s.get("execution_duration")))
                   for s in stats])
        return EX_OK
    stats = client.app_stats()
    if out.json:
        out.emit_json(stats)
        return EX_OK
    for key, value in _app_stats_lines(stats):
        out.line(f"{key + ':':<19} {value}")
    return EX_OK


def _app_stats_lines(stats: dict) -> list[tuple[str, Any]]:
    return [
        ("jobs", stats.get("jobs", 0)),
        ("active", stats.get("active_jobs", 0)),
        ("disabled", stats.get("disabled_jobs", 0)),
        ("successes", stats.get("success_count", 0)),
        ("errors", stats.get("error_count", 0)),
        ("next run", _when(stats.get("next_run_at"))),
        ("last attempted run", _when(stats.get("last_attempted_run"))),
        ("up since", _when(stats.get("created"))),
    ]


def cmd_status(client: Client, args, out: Out) -> int:
    stats = client.app_stats()
    if out.json:
        out.emit_json({"up": True, "url": client.base_url, "stats": stats})
        return EX_OK
    out.line(f"up: {client.base_url}")
    out.line(f"jobs: {stats.get('jobs', 0)} ({stats.get('active_jobs', 0)} active, "
             f"{stats.get('disabled_jobs', 0)} disabled)")
    out.line(f"next run: {_when(stats.get('next_run_at'))}")
    out.line(f"up since: {_when(stats.get('created'))}")
    return EX_OK


def cmd_next(client: Client, args, out: Out) -> int:
    if (args.job is None) == (args.schedule is None):
        raise UsageError("next: give a job, or --schedule SCHEDULE to preview one")
    if args.schedule is not None:
        times = client.preview(args.schedule, args.n)
    else:
        times = client.next(resolve(client, args.job), args.n)
    if out.json:
        out.emit_json(times)
    else:
        for t in times:
            out.line(_when(t) if out.tty else t)
    return EX_OK


def export_order(jobs: Iterable[dict]) -> list[dict]:
    """``jobs`` in their order, but every parent (and on-failure job) before its dependents.

    References to ids outside ``jobs`` impose no order. Raises ``UsageError`` on a
    cycle, which kalad never creates but a hand-edited file may hold.
    """
    by_id = {j.get("id"): j for j in jobs}
    order: list[dict] = []
    state: dict[str, int] = {}  # 1 visiting, 2 placed

    def visit(job_id: str, trail: tuple[str, ...]) -> None:
        if state.get(job_id) == 2:
            return
        if state.get(job_id) == 1:
            raise UsageError(f"jobs link in a cycle: {' -> '.join(trail + (job_id,))}")
        state[job_id] = 1
        job = by_id[job_id]
        for dep in _links(job):
            if dep in by_id:
                visit(dep, trail + (job_id,))
        state[job_id] = 2
        order.append(job)

    for job_id in by_id:  # otherwise in the order given
        visit(job_id, ())
    return order


def _links(job: dict) -> list[str]:
    links = list(job.get("parent_jobs") or [])
    if job.get("on_failure_job"):
        links.append(job["on_failure_job"])
    return links


def cmd_export(client: Client, args, out: Out) -> int:
    jobs = client.get_all()
    clean = []
    by_name = sorted(jobs.values(), key=lambda j: (j.get("name", ""), j.get("id", "")))
    for job in export_order(by_name):
        clean.append({k: v for k, v in job.items() if k not in SERVER_FIELDS})
    document = {"kalactl_export": EXPORT_FORMAT, "source": client.base_url,
                "exported_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "jobs": clean}
    out.emit_json(document)
    return EX_OK


def cmd_import(client: Client, args, out: Out) -> int:
    document = _load_json_file(args.file)
    jobs = document
    if isinstance(document, dict) and isinstance(document.get("jobs"), (list, dict)):
        jobs = document["jobs"]
    if isinstance(jobs, dict):  # {id: job} from list --json, or GET /job/'s {"jobs": ...}
        jobs = [dict(job, id=job.get("id") or job_id) for job_id, job in jobs.items()]
    if not isinstance(jobs, list) or not all(isinstance(j, dict) for j in jobs):
        raise UsageError(f"{args.file}: expected a kalactl export ({{\"jobs\": [...]}}) "
                         "or a list of jobs")
    for n, job in enumerate(jobs):
        job.setdefault("id", f"#{n}")  # a job without an id can still be created
    ordered = export_order(jobs)
    mapping: dict[str, str] = {}
    for n, job in enumerate(ordered, 1):
        body = {k: v for k, v in job.items() if k not in SERVER_FIELDS and k != "id"}
        if body.get("parent_jobs"):
            body["parent_jobs"] = [mapping.get(p, p) for p in body["parent_jobs"]]
        if body.get("on_failure_job"):
            body["on_failure_job"] = mapping.get(body["on_failure_job"],
                                                 body["on_failure_job"])
        try:
            mapping[job["id"]] = client.create(body)
        except Refused as exc:
            exc.message = (f"job {job.get('name', '')!r} (#{n} of {len(ordered)}): "
                           f"{exc.message}; {len(mapping)} created before it")
            _print_mapping(out, mapping)
            raise
        out.progress(n, len(ordered), "importing")
    _print_mapping(out, mapping)
    return EX_OK


def _print_mapping(out: Out, mapping: dict[str, str]) -> None:
    """Old id -> new id of every job created, so a partial import can be finished by hand."""
    if out.json:
        out.emit_json({"ids": mapping})
    else:
        for old, new in mapping.items():
            out.line(f"{old}\t{new}")


def cmd_run(client: Client | None, args, out: Out) -> int:
    from kalad.cli import kalad

    return kalad.main(["run", args.job_command])


COMMANDS: dict[str, Callable[..., int]] = {
    "list": cmd_list, "get": cmd_get, "create": cmd_create, "delete": cmd_delete,
    "start": cmd_start, "enable": cmd_enable, "disable": cmd_disable, "runs": cmd_runs,
    "stats": cmd_stats, "status": cmd_status, "next": cmd_next, "export": cmd_export,
    "import": cmd_import, "run": cmd_run,
}


# ------------------------------------------------------------------------ arguments


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON for scripts instead of text")
    parser = _Parser(prog="kalactl", parents=[common],
                     description="Control a running kalad (or Kala) over its HTTP API.",
                     epilog="Exit status: 0 ok, 1 refused by the server, 2 bad usage, "
                            "69 daemon unreachable. See kalactl(1).")
    parser.add_argument("--url", help="the daemon, e.g. http://host:8000 (default: "
                                      "$KALAD_URL, the config file's listen address, "
                                      f"{DEFAULT_URL})")
    parser.add_argument("--config", metavar="FILE",
                        help="kalad's config file to take the listen address from "
                             "(default: /etc/kalad/kalad.conf)")
    parser.add_argument("--token", help="bearer token (default: --token-file, $KALAD_TOKEN)")
    parser.add_argument("--token-file", metavar="FILE", help="read the bearer token from FILE")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="per-request timeout (default: 10)")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[common])

    add("list", "list every job: id, name, schedule, next run, last result, enabled")
    p = add("get", "show one job")
    p.add_argument("job", metavar="JOB", help="id, unique id prefix or exact name")
    p = add("create", "create a job from flags or a JSON file; print its id")
    p.add_argument("--file", metavar="FILE", help="the job as Kala's JSON ('-': stdin); "
                                                  "flags given too override its fields")
    p.add_argument("--name")
    p.add_argument("--command")
    p.add_argument("--schedule", help="R[n]/START/INTERVAL; empty or none: run once now")
    p.add_argument("--retries", type=int)
    p.add_argument("--epsilon", metavar="DURATION")
    p.add_argument("--parent", action="append", metavar="JOB",
                   help="a job this one runs after (repeatable)")
    p.add_argument("--on-failure", metavar="JOB", help="the job to run when this one fails")
    p.add_argument("--owner")
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    p.add_argument("--resume-at-next-scheduled-time", action="store_true",
                   help="skip occurrences missed while down or disabled")
    p.add_argument("--remote-url", metavar="URL", help="make it a remote (HTTP) job")
    p.add_argument("--method", help="HTTP method of a remote job (default GET)")
    p.add_argument("--body", help="request body of a remote job")
    p.add_argument("--header", action="append", metavar="'NAME: VALUE'",
                   help="request header of a remote job (repeatable)")
    p = add("delete", "delete jobs (their children without another parent go too)")
    p.add_argument("jobs", nargs="*", metavar="JOB")
    p.add_argument("--all", action="store_true", help="delete every job")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    for name, text in (("start", "run a job now"), ("enable", "enable a job"),
                       ("disable", "disable a job: its occurrences are skipped")):
        add(name, text).add_argument("job", metavar="JOB")
    p = add("runs", "a job's run history")
    p.add_argument("job", metavar="JOB")
    p.add_argument("--limit", type=int, metavar="N", help="only the newest N runs")
    p.add_argument("--output", action="store_true", help="show each run's captured output")
    p = add("stats", "the daemon's job counts and totals, or one job's Kala stats")
    p.add_argument("job", nargs="?", metavar="JOB")
    add("status", "is the daemon up: its URL, job counts and next run")
    p = add("next", "a job's next fire times, or a schedule's (--schedule)")
    p.add_argument("job", nargs="?", metavar="JOB")
    p.add_argument("-n", type=int, default=5, metavar="N", help="how many (default 5)")
    p.add_argument("--schedule", help="preview this schedule instead of a job's")
    add("export", "print every job as one JSON document (links kept, parents first)")
    p = add("import", "create the jobs of an export (new ids; links rewritten)")
    p.add_argument("file", metavar="FILE", help="an export, or '-' for stdin")
    p = add("run", "run a command once locally, exactly as a job would (kalad run)")
    p.add_argument("job_command", metavar="COMMAND", help="the command line, quoted as one word")
    return parser


def daemon_url(args, environ: dict[str, str]) -> str:
    """``--url``, ``$KALAD_URL``, the config file's listen address, or the default."""
    if args.url:
        return args.url
    if environ.get("KALAD_URL"):
        return environ["KALAD_URL"]
    from kalad import config as settings

    loaded = settings.load({}, args.config)
    if args.config and loaded.problems:
        raise UsageError(f"{loaded.problems[0]}")
    if not loaded.files:
        return DEFAULT_URL
    host, port = settings.listen_address(loaded.config)
    if host in ("", "0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def daemon_token(args, environ: dict[str, str]) -> str | None:
    if args.token:
        return args.token
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as fh:
                return fh.readline().strip() or None
        except OSError as exc:
            raise UsageError(f"--token-file {args.token_file}: {exc.strerror or exc}") from None
    return environ.get("KALAD_TOKEN") or None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.subcommand is None:
        parser.print_help(sys.stderr)
        return EX_USAGE
    out = Out(getattr(args, "json", False))
    try:
        client = None
        if args.subcommand != "run":
            client = Client(daemon_url(args, dict(os.environ)),
                            token=daemon_token(args, dict(os.environ)), timeout=args.timeout)
        return COMMANDS[args.subcommand](client, args, out)
    except UsageError as exc:
        return _fail(EX_USAGE, str(exc))
    except Unreachable as exc:
        return _fail(EX_UNAVAILABLE, str(exc))
    except KaladError as exc:  # Refused (JobNotFound included): the server said no
        return _fail(EX_REFUSED, str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return 130
    except BrokenPipeError:
        # stdout closed early (| head): nothing more to say, and no traceback at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EX_OK


def _fail(status: int, message: str) -> int:
    sys.stderr.write(f"kalactl: error: {_one_line(message)}\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
