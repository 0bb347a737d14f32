"""One daemon per store: a second exclusive opener is refused, with a clear one-line error.

Also: the lock comes back after its connection is killed, ``copy-store`` refuses a
store in use, and SQLite's default file lives in the state directory, private.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any, Callable

import pytest

from kalad.cli.copy_store import main as copy_main
from kalad.core.errors import StoreError
from kalad.core.ports import Change
from kalad.store import open_store, open_url, ownership
from tests.conftest import wait_until
from tests.store.backends import admin_connection
from tests.store.test_contract import job

LOCKING = ("sqlite", "postgres", "mysql", "redis")


@pytest.fixture(autouse=True)
def quick_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ownership, "LOCK_WAIT", 0.2)
    monkeypatch.setattr(ownership, "CHECK_EVERY", 0.1)


@pytest.mark.parametrize("kind", LOCKING)
def test_a_second_opener_is_refused_until_the_first_closes(
    backend: Callable[[str], Any], kind: str
) -> None:
    make = backend(kind)
    first = make()
    prefix = make.prefixes[-1] if make.prefixes else "kalad_"
    address = first.where() if kind == "sqlite" else None
    with pytest.raises(StoreError) as refused:
        reopen(make, kind, prefix, address)
    message = str(refused.value)
    assert "\n" not in message
    assert "is in use by another kalad" in message
    if kind != "mysql":  # MariaDB names the holder's connection, not its process
        assert f"pid {os.getpid()}" in message
    assert prefix in message
    # Another prefix is another store.
    if kind == "sqlite":
        open_store("sqlite", address=address, prefix="other_").close()
    else:
        make().close()
    first.close()
    reopen(make, kind, prefix, address).close()


def reopen(make: Any, kind: str, prefix: str, address: str | None) -> Any:
    if kind == "sqlite":
        return open_store("sqlite", address=address, prefix=prefix)
    return make(prefix=prefix)


@pytest.mark.parametrize("kind", LOCKING)
def test_a_non_exclusive_opener_is_not_refused(backend: Callable[[str], Any], kind: str) -> None:
    make = backend(kind)
    first = make()
    first.apply([Change(put=(job("a"),))])
    if kind == "sqlite":
        other = open_store("sqlite", address=first.where(), exclusive=False)
    else:
        other = make(prefix=make.prefixes[-1], exclusive=False)
    assert other.load().jobs == [job("a")]


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_lock_lost_with_its_connection_is_taken_again(
    backend: Callable[[str], Any], kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    make = backend(kind)
    with caplog.at_level(logging.INFO):
        store = make()
        kill_lock_connection(kind, store)
        wait_until(lambda: "lock taken again" in caplog.text, timeout=10)
    with pytest.raises(StoreError, match="in use by another kalad"):
        make(prefix=make.prefixes[-1])


def test_a_redis_lock_is_refreshed_and_taken_over_after_it_expires(
    backend: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ownership, "LOCK_TTL", 0.6)  # refreshed every 0.2 s
    make = backend("redis")
    first = make()
    prefix = make.prefixes[-1]
    conn = admin_connection("redis")
    try:
        wait_until(lambda: 0 < conn.pttl(prefix + "lock") <= 600)
        # Still held well past one TTL: it is refreshed.
        with pytest.raises(StoreError, match="the lock expires in"):
            make(prefix=prefix)
        # A holder that died (kill -9) leaves the key to expire; then it can be taken over.
        first._keeper.stop()
        wait_until(lambda: conn.exists(prefix + "lock") == 0, timeout=5)
        make(prefix=prefix).close()
    finally:
        conn.close()


def kill_lock_connection(kind: str, store: Any) -> None:
    conn = admin_connection(kind)
    try:
        with conn.cursor() as cur:
            if kind == "postgres":
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE application_name LIKE %s", (f"kalad-lock {store._prefix} %",))
                assert cur.fetchall()
            else:
                cur.execute("SELECT IS_USED_LOCK(%s)", (store._lock_name(),))
                cur.execute(f"KILL {int(cur.fetchone()[0])}")
    finally:
        conn.close()


@pytest.mark.parametrize("side", ["source", "destination"])
def test_copy_store_refuses_a_store_in_use(
    backend: Callable[[str], Any], side: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pg = backend("postgres")
    live = pg()
    live.apply([Change(put=(job("a"),))])
    prefix = pg.prefixes[-1]
    other = str(backend("sqlite").tmp_path / "copy.db")
    args = (["--from", pg.url(), "--from-prefix", prefix, "--to", f"sqlite://{other}"]
            if side == "source" else
            ["--from", f"sqlite://{other}", "--to", pg.url(), "--to-prefix", prefix, "--replace"])
    assert copy_main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is in use by another kalad" in err
    assert live.load().jobs == [job("a")]  # untouched


def test_sqlite_defaults_to_a_private_file_in_the_state_directory(tmp_path: Path) -> None:
    state = tmp_path / "state" / "kalad"
    old = os.umask(0o022)
    try:
        store = open_store("sqlite", lmdb_path=str(state))
    finally:
        os.umask(old)
    try:
        store.apply([Change(put=(job("a"),))])
        path = state / "kalad.db"
        assert store.where() == str(path)
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for extra in state.iterdir():
            assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra
    finally:
        store.close()
    again = open_url(f"sqlite://{state / 'kalad.db'}")
    try:
        assert again.load().jobs == [job("a")]
    finally:
        again.close()
