"""PostgreSQL, MariaDB and Redis backends: schema versioning, lost connections, addresses."""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

import pytest

from kalad.core.errors import StoreError, StoreUnavailable
from kalad.core.job import Job
from kalad.core.ports import Change
from kalad.store import open_store, open_url, sql
from tests.store.backends import (
    admin_connection,
    kill_store_connections,
    set_stored_schema,
    stored_schema,
)
from tests.store.test_contract import T0, at, job, run

SERVERS = ("postgres", "mysql", "redis")


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql, "RETRY_DELAYS", (0.05, 0.1, 0.2))


@pytest.mark.parametrize("kind", SERVERS)
def test_schema_version_is_recorded(backend: Callable[[str], Any], kind: str) -> None:
    make = backend(kind)
    make()
    assert stored_schema(kind, make.prefixes[-1]) == "1"


@pytest.mark.parametrize("kind", SERVERS)
def test_a_newer_schema_is_refused(backend: Callable[[str], Any], kind: str) -> None:
    make = backend(kind)
    store = make()
    store.apply([Change(put=(job("a"),))])
    store.close()
    prefix = make.prefixes[-1]
    set_stored_schema(kind, prefix, 99)
    with pytest.raises(StoreError, match="has schema 99, this kalad supports up to 1"):
        make(prefix=prefix)
    assert stored_schema(kind, prefix) == "99"  # left alone


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_an_older_schema_is_upgraded(
    backend: Callable[[str], Any], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make = backend(kind)
    old = make()
    old.apply([Change(put=(job("a"),))])
    old.close()
    prefix = make.prefixes[-1]
    monkeypatch.setattr(sql, "SCHEMA", 2)
    monkeypatch.setitem(
        sql.UPGRADES, 1, lambda p: [f"CREATE INDEX {p}runs_started ON {p}runs (started)"]
    )
    store = make(prefix=prefix)
    assert stored_schema(kind, prefix) == "2"
    assert store.load().jobs == [job("a")]


@pytest.mark.parametrize("kind", SERVERS)
def test_a_connection_killed_by_the_server_is_reopened(
    backend: Callable[[str], Any], kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    make = backend(kind)
    store = make(keep_runs=2)
    store.apply([Change(put=(job("a"),), runs=(run("a", 1),))])
    assert kill_store_connections(kind, store) >= 1
    with caplog.at_level(logging.INFO):
        store.apply([Change(put=(job("b"),), runs=(run("a", 2), run("a", 3)))])
    if kind != "redis":  # redis-py's pool notices the closed socket itself, on checkout
        assert any("reconnected" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert sorted(j.id for j in store.load().jobs) == ["a", "b"]
    assert [r.id for r in store.list_runs("a")] == ["run-002", "run-003"]
    # Reads recover the same way.
    kill_store_connections(kind, store)
    assert [r.id for r in store.list_runs("a", limit=1)] == ["run-003"]
    kill_store_connections(kind, store)
    assert store.prune_runs(at(100)) == 2


@pytest.mark.parametrize(
    ("kind", "address"),
    [("postgres", "127.0.0.1:1/test"), ("mysql", "127.0.0.1:1/test"), ("redis", "127.0.0.1:1")],
)
def test_an_unreachable_server_raises_store_unavailable(
    kind: str, address: str, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip({"postgres": "psycopg", "mysql": "pymysql", "redis": "redis"}[kind])
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreUnavailable, match="unavailable"):
        open_store(kind, address=address)
    retries = [r for r in caplog.records if "failed" in r.getMessage()
               and "reconnecting in" in r.getMessage()]
    assert len(retries) == 3 and all(r.levelno == logging.DEBUG for r in retries)


@pytest.mark.parametrize(
    ("module", "driver", "message"),
    [
        ("postgres", "psycopg",
         "the postgres backend needs psycopg: pip install 'kalad[postgres]'"),
        ("mysql", "pymysql", "the mysql backend needs PyMySQL: pip install 'kalad[mysql]'"),
        ("redis", "redis", "the redis backend needs redis: pip install 'kalad[redis]'"),
    ],
)
def test_a_missing_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, driver: str, message: str
) -> None:
    monkeypatch.setitem(sys.modules, driver, None)  # import fails
    monkeypatch.delitem(sys.modules, f"kalad.store.{module}", raising=False)
    with pytest.raises(StoreError) as caught:
        open_store(module, address="127.0.0.1:1/x")
    assert str(caught.value) == message


@pytest.mark.parametrize("kind", SERVERS)
def test_stores_with_other_prefixes_do_not_see_each_other(
    backend: Callable[[str], Any], kind: str
) -> None:
    make = backend(kind)
    one, two = make(), make()
    one.apply([Change(put=(job("a"),), runs=(run("a", 1),))])
    assert two.load().jobs == []
    assert two.list_runs("a") == []
    assert two.prune_runs(at(1000)) == 0
    assert len(one.list_runs("a")) == 1


@pytest.mark.parametrize("kind", SERVERS)
def test_ids_that_differ_only_in_trailing_spaces_or_case_stay_apart(
    backend: Callable[[str], Any], kind: str
) -> None:
    store = backend(kind)()
    store.apply([Change(put=(job("a"), job("a "), job("A")), runs=(run("a", 1), run("a ", 2)))])
    assert sorted(j.id for j in store.load().jobs) == ["A", "a", "a "]
    assert [r.id for r in store.list_runs("a")] == ["run-001"]
    assert [r.id for r in store.list_runs("a ")] == ["run-002"]


@pytest.mark.parametrize("kind", SERVERS)
def test_a_failed_apply_changes_nothing(backend: Callable[[str], Any], kind: str) -> None:
    store = backend(kind)()
    store.apply([Change(put=(job("a"),))])
    bad = Job(id="", name="no id", created_at=T0)
    with pytest.raises(StoreError):
        store.apply([Change(put=(job("b"),), delete=("a",)), Change(put=(bad,))])
    assert store.load().jobs == [job("a")]


@pytest.mark.parametrize("kind", SERVERS)
def test_open_url_reaches_the_same_store(backend: Callable[[str], Any], kind: str) -> None:
    make = backend(kind)
    store = make()
    store.apply([Change(put=(job("a"),))])
    other = open_url(make.url(), prefix=make.prefixes[-1], exclusive=False)
    try:
        assert other.load().jobs == [job("a")]
    finally:
        other.close()


def test_addresses_parse() -> None:
    pytest.importorskip("psycopg")
    pytest.importorskip("pymysql")
    from kalad.store import mysql, postgres

    assert postgres.parse_address("db.example:6543/kala", "u", None) == {
        "host": "db.example", "port": 6543, "dbname": "kala", "user": "u",
    }
    assert postgres.parse_address("[::1]/kala", None, None)["host"] == "::1"
    url = postgres.parse_address("postgresql://me:pw@h:7/d?sslmode=require", None, "over")
    assert (url["host"], url["port"], url["dbname"], url["user"], url["password"]) == (
        "h", 7, "d", "me", "over",
    )
    assert mysql.parse_address("h/kala", "root", None) == {
        "host": "h", "port": 3306, "database": "kala", "user": "root",
    }
    assert mysql.parse_address("mariadb://a:b%40c@h:1/d", None, None) == {
        "host": "h", "port": 1, "database": "d", "user": "a", "password": "b@c",
    }
    with pytest.raises(ValueError, match="unknown store URL scheme"):
        open_url("ftp://x")


def test_a_run_record_with_a_future_version_is_skipped_not_fatal(
    backend: Callable[[str], Any]
) -> None:
    make = backend("postgres")
    store = make()
    store.apply([Change(runs=(run("a", 1), run("a", 2)))])
    conn = admin_connection("postgres")
    with conn.cursor() as cur:
        cur.execute(
            f"UPDATE {make.prefixes[-1]}runs SET data = %s WHERE run_id = 'run-001'",
            (b'{"v":99}',),
        )
    conn.close()
    assert [r.id for r in store.list_runs("a")] == ["run-002"]

