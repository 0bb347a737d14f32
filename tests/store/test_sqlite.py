"""The SQLite backend: file mode, WAL + synchronous=FULL, schema version, URLs."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from kalad.core.errors import StoreError
from kalad.core.ports import Change
from kalad.store import open_store, open_url
from kalad.store.sqlite import SqliteStore
from tests.store.test_contract import job, run


def test_the_file_is_private_and_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    store = SqliteStore(str(path))
    store.apply([Change(put=(job("a"),))])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_schema_is_recorded_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "k.db")
    open_store("sqlite", address=path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM kalad_meta WHERE name='schema'").fetchone() == ("1",)
    conn.execute("UPDATE kalad_meta SET value='7' WHERE name='schema'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="has schema 7, this kalad supports up to 1"):
        open_store("sqlite", address=path)


def test_data_survives_reopening_through_a_url(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    store = open_store("sqlite", address=str(path), keep_runs=1)
    store.apply([Change(put=(job("a"),), runs=(run("a", 1), run("a", 2)))])
    store.close()
    again = open_url(f"sqlite://{path}")
    assert again.load().jobs == [job("a")]
    assert [r.id for r in again.list_runs("a")] == ["run-002"]
    again.close()


def test_a_prefix_keeps_two_stores_apart_in_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "k.db")
    one = SqliteStore(path, prefix="one_")
    two = SqliteStore(path, prefix="two_")
    one.apply([Change(put=(job("a"),))])
    assert two.load().jobs == []
    with pytest.raises(ValueError, match="table prefix"):
        SqliteStore(path, prefix="bad-prefix;")
    one.close()
    two.close()
