"""SqliteStore: the JobStore in one SQLite file (Python's ``sqlite3``, no extra needed).

Tables as described in ``kalad.store.sql`` (runs ``WITHOUT ROWID``, clustered by
job and start). The database runs in WAL mode with ``synchronous=FULL``: a commit
is fsynced before ``apply`` returns. Writes take ``BEGIN IMMEDIATE``; a busy
database is waited on for up to 30 s. The file is created mode 0600.

One daemon per file and prefix: the store ``flock``s a sidecar file
``<file>.<prefix>lock`` (0600) while open (see ``kalad.store.ownership``).

Address: a file path, or ``sqlite:///abs/path`` (everything after ``sqlite://``).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from kalad.core.errors import StoreError
from kalad.store import ownership, sql
from kalad.store.sql import SqlStore


class SqliteStore(SqlStore):
    kind = "sqlite"
    qmark = True
    begin_sql = "BEGIN IMMEDIATE"
    lost_errors = ()
    driver_errors = (sqlite3.Error,)

    keeps_lock = False

    def __init__(self, path: str, *, keep_runs: int = 1000, prefix: str = "kalad_",
                 exclusive: bool = True) -> None:
        if path.startswith("sqlite://"):
            path = path[len("sqlite://"):]
        if not path:
            raise ValueError("the sqlite store needs a file path")
        self._path = path
        if path != ":memory:":
            try:
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            except OSError as exc:
                raise StoreError(f"cannot open sqlite store {path}: {exc.strerror}") from None
        super().__init__(keep_runs=keep_runs, prefix=prefix, exclusive=exclusive)

    def where(self) -> str:
        return self._path

    def _connect(self) -> Any:
        conn = sqlite3.connect(
            self._path, timeout=sql.STATEMENT_TIMEOUT, isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _try_lock(self) -> tuple[Any, str]:
        if self._path == ":memory:":
            return _NoLock(), ""
        return _Flock(ownership.flock_sidecar(
            f"{self._path}.{self._prefix}lock", self.kind, self._path, self._prefix)), ""

    def _ddl(self) -> list[str]:
        p = self._prefix
        return [
            f"CREATE TABLE IF NOT EXISTS {p}meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {p}jobs (id TEXT PRIMARY KEY, data BLOB NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {p}runs (job_id TEXT NOT NULL, started INTEGER NOT NULL,"
            " run_id TEXT NOT NULL, ended INTEGER NOT NULL, data BLOB NOT NULL,"
            " PRIMARY KEY (job_id, started, run_id)) WITHOUT ROWID",
            f"CREATE INDEX IF NOT EXISTS {p}runs_ended ON {p}runs (ended)",
        ]

    def _upsert(self, table: str, key: tuple[str, ...], values: tuple[str, ...]) -> str:
        columns = key + values
        updates = ", ".join(f"{c} = excluded.{c}" for c in values)
        return (
            f"INSERT INTO {table} ({', '.join(columns)})"
            f" VALUES ({', '.join(['%s'] * len(columns))})"
            f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        )


class _Flock:
    """The held sidecar lock file; closing it lets go of the lock."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        os.close(self.fd)


class _NoLock:
    def close(self) -> None:
        pass
