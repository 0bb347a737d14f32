"""Limits on new jobs, each a setting: count, interval, chain depth, name and command length."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kalad.core.errors import InvalidJob
from kalad.core.limits import Limits, chain_depth
from tests.conftest import build_service, make_job


def limited(store, launcher, clock, **limits):
    service = build_service(store, launcher, clock, limits=Limits(**limits))
    service.load()
    return service


def test_max_jobs(store, launcher, clock):
    service = limited(store, launcher, clock, max_jobs=2)
    service.create_job(make_job("a"))
    service.create_job(make_job("b"))
    with pytest.raises(InvalidJob, match=r"holds 2 jobs.*max_jobs = 2"):
        service.create_job(make_job("c"))
    service.delete_job("id-a")
    service.create_job(make_job("c"))


def test_min_interval(store, launcher, clock):
    service = limited(store, launcher, clock, min_interval=timedelta(seconds=1))
    with pytest.raises(InvalidJob, match=r"schedule: interval PT0.5S is shorter than the "
                                         r"minimum of 1 s \(\[jobs\] min_interval\)"):
        service.create_job(make_job("fast", schedule="R/2030-01-01T00:00:10Z/PT0.5S"))
    service.create_job(make_job("ok", schedule="R/2030-01-01T00:00:10Z/PT1S"))
    service.create_job(make_job("once", schedule="R0/2030-01-01T00:00:10Z/"))
    service.create_job(make_job("now"))  # no schedule: once, now


def test_no_minimum_by_default_in_the_service(store, launcher, clock):
    service = limited(store, launcher, clock)
    service.create_job(make_job("fast", schedule="R/2030-01-01T00:00:10Z/PT0.1S"))


def test_max_depth(store, launcher, clock):
    service = limited(store, launcher, clock, max_depth=2)
    service.create_job(make_job("top", schedule="R/2030-01-01T00:00:10Z/PT10S"))
    service.create_job(make_job("c1", parent_jobs=("id-top",)))
    service.create_job(make_job("c2", parent_jobs=("id-c1",)))
    with pytest.raises(InvalidJob, match=r"3 levels below.*\[jobs\] max_depth"):
        service.create_job(make_job("c3", parent_jobs=("id-c2",)))
    service.create_job(make_job("side", parent_jobs=("id-c1", "id-top")))


def test_chain_depth_takes_the_longest_path():
    jobs = {j.id: j for j in (make_job("a"), make_job("b", parent_jobs=("id-a",)),
                              make_job("c", parent_jobs=("id-b", "id-a")))}
    assert chain_depth(jobs, ()) == 0
    assert chain_depth(jobs, ("id-a",)) == 1
    assert chain_depth(jobs, ("id-a", "id-c")) == 3


def test_name_and_command_lengths(store, launcher, clock):
    service = limited(store, launcher, clock, max_name=5, max_command=10)
    with pytest.raises(InvalidJob, match=r"name: longer than 5 characters \(\[jobs\] max_name\)"):
        service.create_job(make_job("toolong"))
    with pytest.raises(InvalidJob, match=r"command: longer than 10 .*max_command"):
        service.create_job(make_job("x", command="echo 12345678"))
    service.create_job(make_job("short", command="echo 1"))


def test_a_replacement_is_not_counted_again():
    from kalad.core.limits import check_new_job
    from kalad.core.schedule import parse_schedule

    jobs = {"id-a": make_job("a")}
    schedule = parse_schedule("R/2030-01-01T00:00:10Z/PT10S")
    check_new_job(Limits(max_jobs=1), jobs, make_job("a"), schedule, new=False)
    with pytest.raises(InvalidJob, match="max_jobs"):
        check_new_job(Limits(max_jobs=1), jobs, make_job("b"), schedule)
