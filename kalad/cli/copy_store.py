"""``kalad copy-store --from URL --to URL``: copy every job (links included) and run.

Stores are named by URL (see ``kalad.store``): ``lmdb:///var/lib/kalad`` (or a
plain directory path), ``sqlite:///path/kalad.db``, ``postgresql://user:pw@host/db``,
``mysql://...``/``mariadb://...``, ``redis://host:6379/0``. Parent/child links live in
the jobs themselves (``parent_jobs``/``dependent_jobs``), so they travel with them.
The runs copied are those of the jobs copied (a run whose job is gone is not).
Each job travels with its runs in one transaction, many jobs per transaction.
The destination must be empty unless ``--replace``, which first deletes its jobs.
Both stores are locked as a daemon locks its store, so a store a running daemon
uses is refused: stop the daemon first.

Exit status: 0 copied, 1 a store failed (one line on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Sequence

from kalad.core.errors import StoreError
from kalad.core.ports import Change, JobStore

BATCH = 100  # jobs per destination transaction


@dataclass(frozen=True)
class Copied:
    jobs: int
    runs: int
    broken: list[tuple[str, str]]  # source records that could not be read, (key, why)


def copy_store(src: JobStore, dst: JobStore, *, replace: bool = False) -> Copied:
    """Copy every job of ``src`` and its runs into ``dst``; ``StoreError`` if ``dst`` holds jobs.

    With ``replace``, the jobs already in ``dst`` (and their runs) are deleted first.
    """
    existing = [job.id for job in dst.load().jobs]
    if existing and not replace:
        raise StoreError(
            f"the destination already holds {len(existing)} jobs: use --replace to overwrite it"
        )
    for start in range(0, len(existing), BATCH * 10):
        dst.apply([Change(delete=tuple(existing[start : start + BATCH * 10]))])
    loaded = src.load()
    jobs = sorted(loaded.jobs, key=lambda job: job.id)
    runs = 0
    for start in range(0, len(jobs), BATCH):
        changes = []
        for job in jobs[start : start + BATCH]:
            job_runs = tuple(src.list_runs(job.id))
            runs += len(job_runs)
            changes.append(Change(put=(job,), runs=job_runs))
        dst.apply(changes)
    return Copied(jobs=len(jobs), runs=runs, broken=list(loaded.broken))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``kalad copy-store``."""
    parser.add_argument("--from", dest="source", required=True, metavar="URL",
                        help="the store to read, e.g. lmdb:///var/lib/kalad")
    parser.add_argument("--to", dest="target", required=True, metavar="URL",
                        help="the store to write, e.g. postgresql://kalad@db/kalad")
    parser.add_argument("--from-prefix", default="kalad_", metavar="PREFIX",
                        help="table/key prefix of the source (default: kalad_)")
    parser.add_argument("--to-prefix", default="kalad_", metavar="PREFIX",
                        help="table/key prefix of the destination (default: kalad_)")
    parser.add_argument("--keep-runs", type=int, default=1000, metavar="N",
                        help="runs kept per job in the destination (default: 1000)")
    parser.add_argument("--replace", action="store_true",
                        help="delete the destination's jobs first instead of refusing")


def run(args: argparse.Namespace) -> int:
    """Run ``kalad copy-store`` with parsed ``args``; return the exit status."""
    from kalad.store import open_url

    try:
        src = open_url(args.source, prefix=args.from_prefix, keep_runs=max(args.keep_runs, 1))
    except (StoreError, ValueError) as exc:
        print(f"kalad copy-store: cannot open {args.source}: {exc}", file=sys.stderr)
        return 1
    try:
        try:
            dst = open_url(args.target, prefix=args.to_prefix, keep_runs=args.keep_runs)
        except (StoreError, ValueError) as exc:
            print(f"kalad copy-store: cannot open {args.target}: {exc}", file=sys.stderr)
            return 1
        try:
            copied = copy_store(src, dst, replace=args.replace)
        except StoreError as exc:
            print(f"kalad copy-store: {exc}", file=sys.stderr)
            return 1
        finally:
            dst.close()
    finally:
        src.close()
    for key, why in copied.broken:
        print(f"kalad copy-store: skipped unreadable job {key!r}: {why}", file=sys.stderr)
    print(f"copied {copied.jobs} jobs and {copied.runs} runs")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kalad copy-store", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
