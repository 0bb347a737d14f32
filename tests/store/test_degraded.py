"""A store that goes away at run time: the group committer degrades, keeps runs, recovers.

The server backends are reached through ``tests/store/proxy.py`` so a test can take
the "server" down and bring it back without touching the real one, and connections
are also killed from the server side (``pg_terminate_backend``, ``KILL``, ``CLIENT KILL``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterator, Sequence

import pytest

from kalad.core.errors import StoreUnavailable
from kalad.core.ports import Change, JobStore
from kalad.store import committer as committer_module
from kalad.store import open_store, sql
from kalad.store.committer import GroupCommitter
from kalad.store.memory import MemoryStore
from tests.conftest import wait_until
from tests.store.backends import ADDRESS, PASSWORD, USERNAME, kill_store_connections
from tests.store.proxy import Proxy
from tests.store.test_contract import job, run

SERVERS = ("postgres", "mysql", "redis")


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql, "RETRY_DELAYS", (0.05, 0.1))
    monkeypatch.setattr(committer_module, "BACKOFF", (0.05, 0.1, 0.2))
    monkeypatch.setattr(committer_module, "WRITE_WAIT", 1.0)


class FlakyStore:
    """A memory store that raises ``StoreUnavailable`` while ``down`` is set."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.down = threading.Event()
        self.attempts = 0

    def apply(self, changes: Sequence[Change]) -> None:
        self.attempts += 1
        if self.down.is_set():
            raise StoreUnavailable("test store unavailable: connection refused")
        self.inner.apply(changes)

    def ping(self) -> None:
        if self.down.is_set():
            raise StoreUnavailable("test store unavailable: connection refused")
        self.inner.ping()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def flaky() -> Iterator[tuple[FlakyStore, GroupCommitter]]:
    store = FlakyStore()
    committer = GroupCommitter(store)
    yield store, committer
    store.down.clear()
    committer.close()


def committer_records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if r.name == "kalad.store.committer"]


def test_runs_written_while_down_are_kept_in_order_and_written_on_recovery(
    flaky: tuple[FlakyStore, GroupCommitter], caplog: pytest.LogCaptureFixture
) -> None:
    store, committer = flaky
    committer.submit(Change(put=(job("a"),))).wait()
    assert committer.problem is None
    store.down.set()
    with caplog.at_level(logging.INFO, logger="kalad.store.committer"):
        for n in range(1, 6):
            committer.submit(Change(runs=(run("a", n),)))
        wait_until(lambda: committer.problem)
        wait_until(lambda: store.attempts >= 5)  # retried with backoff, not given up
        assert "test store unavailable" in committer.problem
        assert "waiting" in committer.problem
        store.down.clear()
        wait_until(lambda: committer.problem is None)
        committer.flush()
    assert [r.id for r in store.list_runs("a")] == [f"run-00{n}" for n in range(1, 6)]
    records = committer_records(caplog)
    assert [level for level, _ in records] == [logging.WARNING, logging.INFO]
    assert "unavailable" in records[0][1] and "available again" in records[1][1]


def test_an_api_write_while_down_is_refused_in_bounded_time_and_never_applied(
    flaky: tuple[FlakyStore, GroupCommitter]
) -> None:
    store, committer = flaky
    store.down.set()
    committer.submit(Change(runs=(run("a", 1),)))
    wait_until(lambda: committer.problem)
    began = time.monotonic()
    ticket = committer.submit(Change(put=(job("b"),)))
    with pytest.raises(StoreUnavailable, match="the change was not saved: test store"):
        ticket.wait()
    assert time.monotonic() - began < 3 * committer_module.WRITE_WAIT
    store.down.clear()
    wait_until(lambda: committer.problem is None)
    committer.flush()
    assert store.load().jobs == []  # the refused write did not come back later
    assert [r.id for r in store.list_runs("a")] == ["run-001"]


def test_a_write_that_waits_through_a_short_outage_succeeds(
    flaky: tuple[FlakyStore, GroupCommitter]
) -> None:
    store, committer = flaky
    store.down.set()
    ticket = committer.submit(Change(put=(job("b"),)))
    wait_until(lambda: committer.problem)
    store.down.clear()
    ticket.wait()
    assert [j.id for j in store.load().jobs] == ["b"]


def test_the_queue_is_bounded_and_drops_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore()
    store.down.set()
    committer = GroupCommitter(store, max_queued=5)
    try:
        with caplog.at_level(logging.INFO, logger="kalad.store.committer"):
            committer.submit(Change(runs=(run("a", 0),)))
            wait_until(lambda: committer.problem)
            for n in range(1, 10):
                committer.submit(Change(runs=(run("a", n),)))
            assert "dropped" in committer.problem
            store.down.clear()
            wait_until(lambda: committer.problem is None)
            committer.flush()
    finally:
        committer.close()
    assert [r.id for r in store.list_runs("a")] == [f"run-00{n}" for n in range(5, 10)]
    messages = [m for _, m in committer_records(caplog)]
    assert any("queue full" in m for m in messages)
    assert "were dropped" in messages[-1]


def test_close_while_down_gives_up_and_says_how_much_was_lost(
    caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore()
    store.down.set()
    committer = GroupCommitter(store)
    committer.submit(Change(runs=(run("a", 1),)))
    committer.submit(Change(runs=(run("a", 2),)))
    wait_until(lambda: committer.problem)
    with caplog.at_level(logging.ERROR, logger="kalad.store.committer"):
        committer.close()
    [message] = [m for level, m in committer_records(caplog) if level == logging.ERROR]
    assert "2 changes not saved" in message


# -- real servers -----------------------------------------------------------------------


def open_via(kind: str, proxy: Proxy, prefix: str) -> JobStore:
    db = ADDRESS[kind].partition("/")[2]
    return open_store(kind, address=proxy.address(db), username=USERNAME[kind],
                      password=PASSWORD[kind], prefix=prefix)


@pytest.mark.parametrize("kind", SERVERS)
def test_a_server_that_goes_away_degrades_then_recovers_without_loss(
    backend: Callable[[str], Any], kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    make = backend(kind)
    direct = make(exclusive=False)  # creates the tables; reads them without the proxy
    host, _, port = ADDRESS[kind].partition("/")[0].partition(":")
    proxy = Proxy(host, int(port))
    store = open_via(kind, proxy, make.prefixes[-1])
    committer = GroupCommitter(store)
    try:
        committer.submit(Change(put=(job("a"),), runs=(run("a", 1),))).wait()
        proxy.down()
        with caplog.at_level(logging.INFO):
            for n in range(2, 6):
                committer.submit(Change(runs=(run("a", n),)))
            wait_until(lambda: committer.problem, timeout=20)
            with pytest.raises(StoreUnavailable, match="the change was not saved"):
                committer.submit(Change(put=(job("refused"),))).wait()
            proxy.up()
            wait_until(lambda: committer.problem is None, timeout=20)
            committer.submit(Change(put=(job("after"),))).wait()
        assert sorted(j.id for j in direct.load().jobs) == ["a", "after"]
        assert [r.id for r in direct.list_runs("a")] == [f"run-00{n}" for n in range(1, 6)]
        levels = [r.levelno for r in caplog.records if r.name == "kalad.store.committer"]
        assert levels == [logging.WARNING, logging.INFO]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING
                    and r.name != "kalad.store.committer"]
    finally:
        committer.close()
        store.close()
        proxy.close()


@pytest.mark.parametrize("kind", SERVERS)
def test_a_write_hanging_on_a_dead_network_is_refused_in_bounded_time(
    backend: Callable[[str], Any], kind: str
) -> None:
    make = backend(kind)
    make(exclusive=False)
    host, _, port = ADDRESS[kind].partition("/")[0].partition(":")
    proxy = Proxy(host, int(port))
    store = open_via(kind, proxy, make.prefixes[-1])
    committer = GroupCommitter(store)
    try:
        committer.submit(Change(put=(job("a"),))).wait()
        proxy.hold()
        began = time.monotonic()
        with pytest.raises(StoreUnavailable):
            committer.submit(Change(put=(job("b"),))).wait()
        assert time.monotonic() - began < 3 * committer_module.WRITE_WAIT
    finally:
        proxy.down()  # the hanging write fails now, so close() does not wait for it
        committer.close()
        store.close()
        proxy.close()


@pytest.mark.parametrize("kind", SERVERS)
def test_a_connection_killed_by_the_server_does_not_degrade_the_committer(
    backend: Callable[[str], Any], kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = backend(kind)()
    committer = GroupCommitter(store)
    try:
        committer.submit(Change(put=(job("a"),))).wait()
        for n in range(3):
            kill_store_connections(kind, store)
            with caplog.at_level(logging.WARNING):
                committer.submit(Change(runs=(run("a", n),))).wait()
        assert committer.problem is None
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(store.list_runs("a")) == 3
    finally:
        committer.close()


def test_a_refused_one_off_is_not_saved_by_its_own_run() -> None:
    from kalad.service import Service
    from tests.conftest import FakeClock, ManualLauncher, make_job

    store = FlakyStore()
    committer = GroupCommitter(store)
    clock = FakeClock()
    launcher = ManualLauncher(clock)
    service = Service(store, launcher, clock, committer)
    service.load()
    store.down.set()
    refused: list[BaseException] = []

    def create() -> None:
        try:
            service.create_job(make_job("once"))
        except StoreUnavailable as exc:
            refused.append(exc)

    creating = threading.Thread(target=create)
    creating.start()
    try:
        service.tick()  # the one-off is due at once
        if launcher.pending:
            launcher.finish(0)
    finally:
        creating.join()
        store.down.clear()
    later = service.create_job(make_job("later"))  # the next write finds the store back
    assert committer.problem is None
    committer.flush()
    committer.close()
    assert refused
    assert [job.id for job in store.load().jobs] == [later.id]


def test_an_idle_committer_finds_the_store_back_without_a_write(
    flaky: tuple[FlakyStore, GroupCommitter], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kalad.store.committer")
    store, committer = flaky
    store.down.set()
    with pytest.raises(StoreUnavailable):
        committer.submit(Change(put=(job("a"),))).wait()  # refused: nothing stays queued
    assert committer.problem is not None
    store.down.clear()
    wait_until(lambda: committer.problem is None, timeout=5)  # probed, not written
    assert store.inner.load().jobs == []
    levels = [level for level, _ in committer_records(caplog)]
    assert levels.count(logging.WARNING) == 1 and levels.count(logging.INFO) == 1
