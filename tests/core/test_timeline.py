"""Timeline: the timer's heap of due jobs, with replacement and lazy cancellation."""

import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from kalad.core.timeline import Timeline

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_empty() -> None:
    timeline = Timeline()
    assert len(timeline) == 0
    assert timeline.next_due() is None
    assert timeline.pop_due(at(10**6)) == []
    assert "a" not in timeline
    assert timeline.due_at("a") is None
    timeline.cancel("a")


@pytest.mark.parametrize(
    "ops, now, popped, left",
    [
        # ops: (job, seconds) adds, (job, None) cancels
        ([("a", 1), ("b", 2), ("c", 3)], 2, ["a", "b"], ["c"]),
        ([("c", 3), ("b", 2), ("a", 1)], 3, ["a", "b", "c"], []),
        ([("a", 1), ("b", 1), ("c", 1)], 1, ["a", "b", "c"], []),  # ties: added order
        ([("a", 1), ("a", 5)], 2, [], ["a"]),  # re-add replaces
        ([("a", 5), ("a", 1)], 2, ["a"], []),
        ([("a", 1), ("b", 2), ("a", None)], 3, ["b"], []),
        ([("a", 1), ("a", None), ("a", 2)], 3, ["a"], []),
        ([("a", 1), ("a", None), ("a", None)], 3, [], []),
        ([("a", 1), ("b", 0.5), ("a", 0.5)], 1, ["b", "a"], []),
        ([("a", 1)], 0.999999, [], ["a"]),
    ],
)
def test_add_cancel_pop(
    ops: list[tuple[str, float | None]], now: float, popped: list[str], left: list[str]
) -> None:
    timeline = Timeline()
    for job_id, seconds in ops:
        if seconds is None:
            timeline.cancel(job_id)
        else:
            timeline.add(job_id, at(seconds))
    expected_due = {job_id: at(s) for job_id, s in ops if s is not None}
    due = timeline.pop_due(at(now))
    assert [job_id for job_id, _ in due] == popped
    assert all(when == expected_due[job_id] for job_id, when in due)
    assert len(timeline) == len(left)
    assert sorted(job_id for job_id in left if job_id in timeline) == sorted(left)
    assert all(job_id not in timeline for job_id in popped)
    assert timeline.pop_due(at(now)) == []


def test_next_due_and_due_at_skip_stale_entries() -> None:
    timeline = Timeline()
    timeline.add("a", at(1))
    timeline.add("b", at(2))
    timeline.add("a", at(3))
    assert timeline.next_due() == at(2)
    assert timeline.due_at("a") == at(3)
    timeline.cancel("b")
    assert timeline.next_due() == at(3)
    assert timeline.due_at("b") is None


def test_times_come_back_exact_in_utc() -> None:
    timeline = Timeline()
    local = datetime(2024, 7, 3, 1, 30, 0, 123457, tzinfo=ZoneInfo("America/Los_Angeles"))
    timeline.add("a", local)
    due_at = timeline.due_at("a")
    assert due_at is not None and due_at.tzinfo is timezone.utc
    assert due_at == local == datetime(2024, 7, 3, 8, 30, 0, 123457, tzinfo=timezone.utc)
    assert timeline.pop_due(local) == [("a", due_at)]


def test_many_cancels_keep_the_heap_compact() -> None:
    timeline = Timeline()
    for i in range(1000):
        timeline.add("a", at(i))
    assert len(timeline) == 1
    assert len(timeline._heap) <= 2
    assert timeline.pop_due(at(10**6)) == [("a", at(999))]


def test_smoke_100_000_entries() -> None:
    rng = random.Random(7)
    timeline = Timeline()
    due = {f"job-{i}": at(rng.randrange(86_400)) for i in range(100_000)}
    for job_id, when in due.items():
        timeline.add(job_id, when)
    for i in range(0, 100_000, 3):
        timeline.cancel(f"job-{i}")
        del due[f"job-{i}"]
    for i in range(1, 100_000, 3):
        due[f"job-{i}"] = at(rng.randrange(86_400))
        timeline.add(f"job-{i}", due[f"job-{i}"])
    assert len(timeline) == len(due)
    assert timeline.next_due() == min(due.values())
    half = timeline.pop_due(at(43_200))
    rest = timeline.pop_due(at(86_400))
    popped = half + rest
    assert [when for _, when in popped] == sorted(due.values())
    assert dict(popped) == due
    assert all(when <= at(43_200) for _, when in half)
    assert len(timeline) == 0 and timeline.next_due() is None


def test_add_many_is_the_same_as_adding_one_by_one() -> None:
    rng = random.Random(7)
    paris = ZoneInfo("Europe/Paris")  # the same instant in another zone is the same due time
    entries = [(f"j{rng.randrange(500)}", at(rng.randrange(100))) for _ in range(2000)]
    entries = [(job_id, when.astimezone(paris) if rng.random() < 0.5 else when)
               for job_id, when in entries]
    one, many = Timeline(), Timeline()
    one.add("early", at(3))
    many.add("early", at(3))
    for job_id, when in entries:
        one.add(job_id, when)
    many.add_many(entries)
    assert len(one) == len(many)
    assert one.pop_due(at(10**6)) == many.pop_due(at(10**6))


def test_pop_due_takes_at_most_limit_earliest_first_and_leaves_the_rest():
    timeline = Timeline()
    for job_id, seconds in [("c", 3), ("a", 1), ("d", 9), ("b", 2)]:
        timeline.add(job_id, at(seconds))
    assert timeline.pop_due(at(5), limit=2) == [("a", at(1)), ("b", at(2))]
    assert timeline.pop_due(at(5), limit=2) == [("c", at(3))]
    assert timeline.pop_due(at(5), limit=2) == []
    assert len(timeline) == 1 and "d" in timeline
