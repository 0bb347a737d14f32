"""GroupCommitter's batching: changes nobody waits for share transactions, waiters don't wait.

A real LMDB store, wrapped to record the size of each transaction it is given.
"""

from __future__ import annotations

import threading

import pytest

from kalad.core.ports import Change
from kalad.store.committer import GroupCommitter
from kalad.store.lmdb import LmdbStore
from tests.conftest import make_job


class Recording(LmdbStore):
    """An LMDB store that remembers how many changes each transaction held."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.transactions: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def apply(self, changes) -> None:
        self.gate.wait()
        super().apply(changes)
        self.transactions.append(len(changes))


def jobs(n: int):
    return [make_job(f"j{i}", id=f"j{i}") for i in range(n)]


@pytest.fixture
def store(tmp_path):
    s = Recording(tmp_path / "lmdb")
    yield s
    s.close()


@pytest.fixture
def make_committer(store):
    made: list[GroupCommitter] = []

    def make(linger: float) -> GroupCommitter:
        made.append(GroupCommitter(store, linger=linger))
        return made[-1]

    yield make
    for committer in made:
        committer.close()


def test_unwaited_changes_linger_and_share_one_transaction(store, make_committer):
    committer = make_committer(60.0)
    first, *rest = jobs(50)
    committer.submit(Change(put=(first,)))  # the first goes at once: nothing was written
    committer.flush()
    for job in rest:  # within the linger after it: held back, nobody waits for them
        committer.submit(Change(put=(job,)))
    assert store.transactions == [1]
    committer.flush()  # a waiter ends the linger: one transaction for all
    assert store.transactions == [1, 49]
    assert len(store.load().jobs) == 50


def test_a_waited_change_is_not_held_back_by_the_linger(store, make_committer):
    committer = make_committer(60.0)
    a, b, c = jobs(3)
    committer.submit(Change(put=(a,)))
    committer.flush()
    committer.submit(Change(put=(b,)))  # a run record: lingers
    ticket = committer.submit(Change(put=(c,)))  # an API write: its caller waits
    ticket.wait(timeout=30.0)  # would be refused after 30 s if it lingered 60
    assert store.transactions == [1, 2]  # the lingering change went with it, in order


def test_close_writes_what_lingers(store, make_committer):
    committer = make_committer(60.0)
    for job in jobs(10):
        committer.submit(Change(put=(job,)))
    committer.close()
    assert sum(store.transactions) == 10
    assert len(store.load().jobs) == 10


def test_changes_queued_during_a_slow_write_go_in_the_next_transaction(store, make_committer):
    committer = make_committer(0.0)
    first, *rest = jobs(20)
    store.gate.clear()  # the first transaction hangs, as on a slow disk
    committer.submit(Change(put=(first,)))
    for job in rest:
        committer.submit(Change(put=(job,)))
    store.gate.set()
    committer.flush()
    assert sum(store.transactions) == 20
    assert len(store.transactions) <= 3  # not one per change
