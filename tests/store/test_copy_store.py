"""copy-store: every job, link and run moves between backends unchanged."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from kalad.cli.copy_store import copy_store, main
from kalad.core.errors import StoreError
from kalad.core.ports import Change, JobStore
from kalad.store import open_url
from tests.store.test_contract import full_job, job, run


def fill(store: JobStore) -> None:
    parent = job("parent", dependent_jobs=("child",))
    child = job("child", parent_jobs=("parent",), schedule="")
    store.apply([
        Change(put=(full_job(), parent, child, job("idle")),
               runs=tuple(run("parent", n) for n in range(5)) + (run("full", 9),)),
        Change(runs=(run("child", 3),)),
    ])


def snapshot(store: JobStore) -> tuple[list[Any], dict[str, list[Any]]]:
    jobs = sorted(store.load().jobs, key=lambda j: j.id)
    return jobs, {j.id: store.list_runs(j.id) for j in jobs}


def test_round_trip_lmdb_postgres_redis_sqlite_lmdb(backend: Callable[[str], Any]) -> None:
    chain = [backend(kind)() for kind in ("lmdb", "postgres", "redis", "sqlite", "lmdb")]
    fill(chain[0])
    expected = snapshot(chain[0])
    assert len(expected[0]) == 4 and len(expected[1]["parent"]) == 5
    for src, dst in zip(chain, chain[1:]):
        copied = copy_store(src, dst)
        assert (copied.jobs, copied.runs, copied.broken) == (4, 7, [])
        assert snapshot(dst) == expected


def test_a_destination_with_jobs_is_refused_unless_replace(backend: Callable[[str], Any]) -> None:
    make = backend("sqlite")
    src, dst = make(), make()
    fill(src)
    dst.apply([Change(put=(job("stale"),), runs=(run("stale", 1),))])
    with pytest.raises(StoreError, match="already holds 1 jobs"):
        copy_store(src, dst)
    copy_store(src, dst, replace=True)
    assert snapshot(dst) == snapshot(src)
    assert dst.list_runs("stale") == []


def test_the_command_copies_between_urls(
    backend: Callable[[str], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    lmdb, pg = backend("lmdb"), backend("postgres")
    src_url, dst_url = lmdb.url(), pg.url()
    src = open_url(src_url)
    fill(src)
    expected = snapshot(src)
    src.close()
    prefix = pg.new_prefix()  # dropped after the test
    assert main(["--from", src_url, "--to", dst_url, "--to-prefix", prefix]) == 0
    assert capsys.readouterr().out == "copied 4 jobs and 7 runs\n"
    dst = open_url(dst_url, prefix=prefix)
    try:
        assert snapshot(dst) == expected
    finally:
        dst.close()
    assert main(["--from", src_url, "--to", dst_url, "--to-prefix", prefix]) == 1
    assert "use --replace" in capsys.readouterr().err
