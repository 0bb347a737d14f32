"""The JobStore contract, run against every backend through one parametrized fixture."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import pytest

from kalad.core.errors import StoreUnavailable
from kalad.core.job import Job, JobType, Metadata, RemoteProperties
from kalad.core.ports import Change, JobStore
from kalad.core.runs import Run, RunStatus, Trigger
from kalad.store import open_store

BACKENDS = ("memory", "lmdb", "sqlite", "postgres", "mysql", "redis")

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)

MakeStore = Callable[..., JobStore]


@pytest.fixture(params=BACKENDS)
def make_store(
    request: pytest.FixtureRequest, backend: Callable[[str], Any]
) -> Iterator[MakeStore]:
    """Opens stores of one backend (each in its own directory, file or table prefix).

    Stores are closed, and server-side tables/keys dropped, by the ``backend`` fixture.
    """
    yield backend(request.param)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job(job_id: str, **fields: object) -> Job:
    return Job(id=job_id, name=f"name of {job_id}", created_at=T0, command="true", **fields)


def run(job_id: str, n: int, *, ended: float | None = None) -> Run:
    return Run(
        id=f"run-{n:03d}",
        job_id=job_id,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.SUCCEEDED,
        started_at=at(n),
        ended_at=at(n + 1 if ended is None else ended),
        attempts=1,
    )


def full_job() -> Job:
    return Job(
        id="full",
        name="every field set ✓",
        created_at=T0,
        command="/bin/echo hello",
        owner="ops@example.com",
        disabled=True,
        dependent_jobs=("c1", "c2"),
        parent_jobs=("p1",),
        on_failure_job="alert",
        schedule="R/2030-01-01T00:00:00Z/PT10S",
        retries=2,
        epsilon="PT1M",
        next_run_at=at(10),
        template_delimiters="<< >>",
        resume_at_next_scheduled_time=True,
        metadata=Metadata(
            success_count=1,
            last_success=at(-20),
            error_count=4,
            last_error=at(-10),
            last_attempted_run=at(-5),
            number_of_finished_runs=5,
        ),
        type=JobType.REMOTE,
        remote_properties=RemoteProperties(
            url="https://example.com/x",
            method="PUT",
            body="payload",
            headers={"Authorization": ("Bearer t",), "X-Two": ("1", "2")},
            timeout=15,
            expected_response_codes=(200, 202),
        ),
        is_done=True,
    )


def ids(runs: list[Run]) -> list[str]:
    return [r.id for r in runs]


def test_empty_store_loads_nothing(make_store: MakeStore) -> None:
    loaded = make_store().load()
    assert loaded.jobs == []
    assert loaded.broken == []


def test_full_and_minimal_jobs_round_trip(make_store: MakeStore) -> None:
    store = make_store()
    minimal = Job(id="min", name="m", created_at=T0)
    store.apply([Change(put=(full_job(), minimal))])
    loaded = store.load()
    assert sorted(loaded.jobs, key=lambda j: j.id) == [full_job(), minimal]
    assert loaded.broken == []


def test_put_replaces_a_job(make_store: MakeStore) -> None:
    store = make_store()
    store.apply([Change(put=(job("a"),))])
    store.apply([Change(put=(job("a", owner="new"),))])
    assert store.load().jobs == [job("a", owner="new")]


def test_changes_apply_in_order_within_one_call(make_store: MakeStore) -> None:
    store = make_store()
    store.apply(
        [
            Change(put=(job("a"), job("b")), runs=(run("a", 1),)),
            Change(put=(job("c"),), delete=("c",)),  # put, then delete: gone
            Change(delete=("a",)),
            Change(put=(job("a", owner="again"),)),
            Change(put=(job("b", owner="last"),)),
        ]
    )
    assert sorted(store.load().jobs, key=lambda j: j.id) == [
        job("a", owner="again"),
        job("b", owner="last"),
    ]
    assert store.list_runs("a") == []


def test_delete_removes_the_job_and_all_its_runs(make_store: MakeStore) -> None:
    store = make_store()
    store.apply([Change(put=(job("a"), job("ab")), runs=(run("a", 1), run("a", 2), run("ab", 3)))])
    store.apply([Change(delete=("a", "missing"))])
    assert store.load().jobs == [job("ab")]
    assert store.list_runs("a") == []
    assert ids(store.list_runs("ab")) == ["run-003"]


def test_runs_are_listed_oldest_first_with_limit_taking_the_newest(
    make_store: MakeStore,
) -> None:
    store = make_store()
    before_1970 = Run(
        id="old",
        job_id="a",
        trigger=Trigger.MANUAL,
        status=RunStatus.FAILED,
        started_at=datetime(1969, 12, 31, tzinfo=timezone.utc),
        ended_at=datetime(1969, 12, 31, 1, tzinfo=timezone.utc),
        exit_status=1,
    )
    store.apply([Change(runs=(run("a", 5), run("a", 2), run("ab", 1), before_1970))])
    store.apply([Change(runs=(run("a", 9), run("a", 7), run("a\u00e9", 3)))])
    assert ids(store.list_runs("a")) == ["old", "run-002", "run-005", "run-007", "run-009"]
    assert store.list_runs("a")[0] == before_1970
    assert ids(store.list_runs("a", limit=2)) == ["run-007", "run-009"]
    assert ids(store.list_runs("a", limit=50)) == ids(store.list_runs("a"))
    assert store.list_runs("a", limit=0) == []
    assert ids(store.list_runs("ab")) == ["run-001"]
    assert store.list_runs("nobody") == []
    assert store.list_runs("nobody", limit=3) == []


def test_appending_the_same_run_again_replaces_it(make_store: MakeStore) -> None:
    store = make_store(keep_runs=2)
    store.apply([Change(runs=(run("a", 1), run("a", 2)))])
    store.apply([Change(runs=(run("a", 2, ended=50),))])
    assert store.list_runs("a") == [run("a", 1), run("a", 2, ended=50)]


@pytest.mark.parametrize("per_call", [30, 7, 1])
def test_appends_keep_only_the_newest_runs(make_store: MakeStore, per_call: int) -> None:
    store = make_store(keep_runs=10)
    runs = [run("a", n) for n in range(30)]
    for i in range(0, 30, per_call):
        store.apply([Change(runs=tuple(runs[i : i + per_call]))])
    assert store.list_runs("a") == runs[20:]


def test_keep_runs_changed_while_open_trims_at_the_next_append(make_store: MakeStore) -> None:
    store = make_store(keep_runs=10)
    store.apply([Change(runs=tuple(run("a", n) for n in range(8)))])
    store.keep_runs = 3  # SIGHUP
    assert len(store.list_runs("a")) == 8
    store.apply([Change(runs=(run("a", 8),))])
    assert ids(store.list_runs("a")) == ["run-006", "run-007", "run-008"]


def test_an_old_run_appended_to_a_full_job_is_dropped(make_store: MakeStore) -> None:
    store = make_store(keep_runs=3)
    store.apply([Change(runs=(run("a", 5), run("a", 6), run("a", 7)))])
    store.apply([Change(runs=(run("a", 1),))])
    assert ids(store.list_runs("a")) == ["run-005", "run-006", "run-007"]


def test_prune_deletes_runs_that_ended_before_the_cutoff(make_store: MakeStore) -> None:
    store = make_store(keep_runs=5)
    store.apply([Change(runs=tuple(run("a", n) for n in range(5)) + (run("b", 0, ended=100),))])
    assert store.prune_runs(at(3.5)) == 3  # a: runs 0, 1 and 2 ended at 1, 2, 3
    assert ids(store.list_runs("a")) == ["run-003", "run-004"]
    assert ids(store.list_runs("b")) == ["run-000"]  # started long ago, ended after the cutoff
    assert store.prune_runs(at(3.5)) == 0
    # Retention counts what is left after pruning.
    store.apply([Change(runs=(run("a", 10),))])
    assert ids(store.list_runs("a")) == ["run-003", "run-004", "run-010"]


def test_calls_after_close_raise_store_unavailable(make_store: MakeStore) -> None:
    store = make_store()
    store.apply([Change(put=(job("a"),))])
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(StoreUnavailable):
        store.load()
    with pytest.raises(StoreUnavailable):
        store.apply([Change(put=(job("b"),))])
    with pytest.raises(StoreUnavailable):
        store.list_runs("a")
    with pytest.raises(StoreUnavailable):
        store.list_runs("a", limit=0)
    with pytest.raises(StoreUnavailable):
        store.prune_runs(T0)


def test_ping_answers_while_open(make_store: MakeStore) -> None:
    store = make_store()
    store.ping()
    store.close()
    with pytest.raises(StoreUnavailable):
        store.ping()


def test_unknown_store_kind_names_the_choices() -> None:
    with pytest.raises(ValueError, match="lmdb, mariadb, memory, mysql, postgres, redis, sqlite"):
        open_store("sqlite3")


def test_one_writer_and_several_readers_at_once(make_store: MakeStore) -> None:
    import threading

    store = make_store(keep_runs=5)
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        try:
            for n in range(40):
                store.apply([Change(put=(job(f"j{n % 4}"),), runs=(run(f"j{n % 4}", n),))])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            done.set()

    def read() -> None:
        try:
            while not done.is_set():
                for n in range(4):
                    runs = store.list_runs(f"j{n}", limit=3)
                    assert len(runs) <= 3
                    assert runs == sorted(runs, key=lambda r: (r.started_at, r.id))
                store.load()
                store.prune_runs(at(-100))  # prunes nothing, but takes the write path
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(j.id for j in store.load().jobs) == ["j0", "j1", "j2", "j3"]
    assert ids(store.list_runs("j3")) == [f"run-{n:03d}" for n in (19, 23, 27, 31, 35, 39)][-5:]
