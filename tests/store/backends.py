"""Store backends for the tests (the fixture is in conftest.py).

Each test gets its own tables / key prefix, dropped after.

Servers (override with the environment):

* PostgreSQL: ``KALAD_TEST_POSTGRES`` (``127.0.0.1:5432/test``), user ``KALAD_TEST_POSTGRES_USER``
  (``postgres``);
* MariaDB/MySQL: ``KALAD_TEST_MYSQL`` (``127.0.0.1:3306/test``), user ``KALAD_TEST_MYSQL_USER``
  (``root``), password ``KALAD_TEST_MYSQL_PASSWORD`` (none);
* Redis: ``KALAD_TEST_REDIS`` (``127.0.0.1:6379/0``).

A missing driver or an unreachable server skips the test with a message naming it,
except under CI (``$CI`` set), where it fails the test.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from kalad.core.ports import JobStore
from kalad.store import open_store

BACKENDS = ("memory", "lmdb", "sqlite", "postgres", "mysql", "redis")
SERVER_BACKENDS = ("postgres", "mysql", "redis")

ADDRESS = {
    "postgres": os.environ.get("KALAD_TEST_POSTGRES", "127.0.0.1:5432/test"),
    "mysql": os.environ.get("KALAD_TEST_MYSQL", "127.0.0.1:3306/test"),
    "redis": os.environ.get("KALAD_TEST_REDIS", "127.0.0.1:6379/0"),
}
USERNAME = {
    "postgres": os.environ.get("KALAD_TEST_POSTGRES_USER", "postgres"),
    "mysql": os.environ.get("KALAD_TEST_MYSQL_USER", "root"),
    "redis": None,
}
PASSWORD = {
    "postgres": os.environ.get("KALAD_TEST_POSTGRES_PASSWORD"),
    "mysql": os.environ.get("KALAD_TEST_MYSQL_PASSWORD"),
    "redis": os.environ.get("KALAD_TEST_REDIS_PASSWORD"),
}
SERVER_NAME = {"postgres": "PostgreSQL", "mysql": "MariaDB/MySQL", "redis": "Redis"}
DRIVER = {"postgres": "psycopg", "mysql": "pymysql", "redis": "redis"}

_unavailable: dict[str, str | None] = {}


def unavailable(message: str) -> None:
    """Fail under CI, skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def admin_connection(kind: str) -> Any:
    """A plain driver connection (autocommit) to the test server of ``kind``."""
    address = ADDRESS[kind]
    if kind == "postgres":
        import psycopg

        from kalad.store.postgres import parse_address

        params = parse_address(address, USERNAME[kind], PASSWORD[kind])
        conninfo = params.pop("conninfo", "")
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=3, **params)
    if kind == "mysql":
        import pymysql

        from kalad.store.mysql import parse_address

        params = parse_address(address, USERNAME[kind], PASSWORD[kind])
        return pymysql.connect(**params, autocommit=True, connect_timeout=3, read_timeout=30)
    if kind == "redis":
        import redis

        if "://" in address:
            return redis.Redis.from_url(address, socket_connect_timeout=3, socket_timeout=30)
        hostport, _, db = address.partition("/")
        host, _, port = hostport.partition(":")
        return redis.Redis(
            host=host, port=int(port or 6379), db=int(db or 0), password=PASSWORD[kind],
            socket_connect_timeout=3, socket_timeout=30,
        )
    raise ValueError(kind)


def require(kind: str) -> None:
    """Skip (or under CI fail) unless ``kind``'s driver is installed and its server answers."""
    if kind not in SERVER_BACKENDS:
        return
    if kind not in _unavailable:
        why = None
        try:
            __import__(DRIVER[kind])
        except ImportError:
            why = (
                f"{SERVER_NAME[kind]} tests need the {DRIVER[kind]} package:"
                f" pip install 'kalad[{kind}]'"
            )
        else:
            try:
                conn = admin_connection(kind)
                if kind == "redis":
                    conn.ping()
                conn.close()
            except Exception as exc:
                why = f"{SERVER_NAME[kind]} server at {ADDRESS[kind]} is not reachable: {exc}"
        _unavailable[kind] = why
    if _unavailable[kind]:
        unavailable(_unavailable[kind])


def drop(kind: str, prefix: str) -> None:
    """Remove the tables / keys of ``prefix``."""
    conn = admin_connection(kind)
    try:
        if kind == "redis":
            keys = list(conn.scan_iter(match=prefix + "*", count=1000))
            if keys:
                conn.delete(*keys)
        else:
            with conn.cursor() as cur:
                for table in ("runs", "jobs", "meta"):
                    cur.execute(f"DROP TABLE IF EXISTS {prefix}{table}")
    finally:
        conn.close()


class StoreFactory:
    """Opens stores of one backend; each call a fresh store (own directory or prefix)."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.opened: list[JobStore] = []
        self.prefixes: list[str] = []

    def new_prefix(self) -> str:
        prefix = f"kalad_test_{secrets.token_hex(4)}_"
        self.prefixes.append(prefix)
        return prefix

    def url(self, prefix_owner: bool = True) -> str:
        """A URL for this backend's test server or a fresh file (for copy-store)."""
        n = len(self.opened) + len(self.prefixes)
        if self.kind == "lmdb":
            return f"lmdb://{self.tmp_path / f'lmdb-url{n}'}"
        if self.kind == "sqlite":
            return f"sqlite://{self.tmp_path / f'url{n}.db'}"
        if self.kind == "memory":
            return "memory:"
        address = ADDRESS[self.kind]
        user = USERNAME[self.kind]
        password = PASSWORD[self.kind]
        auth = f"{user or ''}{':' + password if password else ''}@" if (user or password) else ""
        scheme = {"postgres": "postgresql", "mysql": "mysql", "redis": "redis"}[self.kind]
        return f"{scheme}://{auth}{address}"

    def __call__(self, keep_runs: int = 1000, prefix: str | None = None,
                 exclusive: bool = True) -> JobStore:
        n = len(self.opened)
        if self.kind in SERVER_BACKENDS:
            store = open_store(
                self.kind,
                address=ADDRESS[self.kind],
                username=USERNAME[self.kind],
                password=PASSWORD[self.kind],
                keep_runs=keep_runs,
                prefix=prefix or self.new_prefix(),
                exclusive=exclusive,
            )
        else:
            store = open_store(
                self.kind,
                lmdb_path=str(self.tmp_path / f"lmdb{n}"),
                address=str(self.tmp_path / f"sqlite{n}.db"),
                keep_runs=keep_runs,
                prefix=prefix or "kalad_",
            )
        self.opened.append(store)
        return store

    def cleanup(self) -> None:
        for store in self.opened:
            store.close()
        if self.kind in SERVER_BACKENDS:
            for prefix in self.prefixes:
                drop(self.kind, prefix)


def stored_schema(kind: str, prefix: str) -> str | None:
    """The schema number as stored on the test server (or ``None``)."""
    conn = admin_connection(kind)
    try:
        if kind == "redis":
            value = conn.hget(prefix + "meta", "schema")
            return None if value is None else value.decode()
        with conn.cursor() as cur:
            cur.execute(f"SELECT value FROM {prefix}meta WHERE name = 'schema'")
            row = cur.fetchone()
            return None if row is None else str(row[0])
    finally:
        conn.close()


def set_stored_schema(kind: str, prefix: str, value: int) -> None:
    conn = admin_connection(kind)
    try:
        if kind == "redis":
            conn.hset(prefix + "meta", "schema", str(value))
            return
        with conn.cursor() as cur:
            cur.execute(f"UPDATE {prefix}meta SET value = '{value}' WHERE name = 'schema'")
    finally:
        conn.close()


def kill_store_connections(kind: str, store: Any) -> int:
    """Kill, from the server side, the connections the store holds; return how many."""
    conn = admin_connection(kind)
    try:
        if kind == "postgres":
            with conn.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (store.backend_pid,))
                return 1 if cur.fetchone()[0] else 0
        if kind == "mysql":
            with conn.cursor() as cur:
                cur.execute(f"KILL {int(store.thread_id)}")
            return 1
        if kind == "redis":
            killed = 0
            for client in conn.client_list():
                if client.get("name") == store.client_name:
                    conn.client_kill_filter(_id=client["id"])
                    killed += 1
            return killed
    finally:
        conn.close()
    raise ValueError(kind)
