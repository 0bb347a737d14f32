"""``Service.replace_job`` (PUT): re-arming, what is kept, what is refused, undo on store failure."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from kalad.core.errors import InvalidJob, JobNotFound, StoreError
from kalad.core.runs import RunStatus
from kalad.store.memory import MemoryStore
from tests.conftest import T0, build_service, make_job


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def iso(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def fire(service, clock, seconds: float) -> None:
    clock.set(at(seconds))
    service.tick()


def edit(job, **fields):
    """A PUT body as ``parse_job`` yields it: a definition with blank state."""
    base = make_job(job.name, id=job.id, command=job.command, schedule=job.schedule)
    return replace(base, **fields)


def test_new_schedule_is_armed_and_the_old_one_cancelled(service, launcher, clock):
    job = service.create_job(make_job("j", schedule=f"R/{iso(10)}/PT10S"))
    fire(service, clock, 5)
    updated = service.replace_job(edit(job, schedule=f"R/{iso(100)}/PT1H"))
    assert updated.next_run_at == at(100)
    fire(service, clock, 10)
    fire(service, clock, 20)
    assert launcher.count(job.id) == 0  # the old grid no longer fires
    fire(service, clock, 100)
    assert launcher.count(job.id) == 1


def test_past_start_resumes_at_next_grid_point_without_catch_up(service, launcher, clock, store):
    job = service.create_job(make_job("j", schedule=f"R/{iso(3600)}/PT1H"))
    clock.set(at(125))
    updated = service.replace_job(edit(job, schedule=f"R/{iso(0)}/PT1M"))
    assert updated.next_run_at == at(180)
    service.tick()
    assert launcher.count(job.id) == 0
    assert store.list_runs(job.id) == []  # nothing recorded as missed either
    fire(service, clock, 180)
    assert launcher.count(job.id) == 1


def test_disabled_in_body_is_respected_and_enable_arms_it(service, launcher, clock):
    job = service.create_job(make_job("j", schedule=f"R/{iso(10)}/PT10S"))
    updated = service.replace_job(edit(job, disabled=True))
    assert updated.disabled
    assert service.app_stats().disabled_jobs == 1
    fire(service, clock, 10)
    assert launcher.count(job.id) == 0
    service.replace_job(edit(job, schedule=f"R/{iso(30)}/PT10S"))
    assert service.app_stats().disabled_jobs == 0
    fire(service, clock, 30)
    assert launcher.count(job.id) == 1


def test_id_created_at_counters_runs_and_links_are_kept(service, launcher, clock, store):
    parent = service.create_job(make_job("parent", schedule=f"R/{iso(10)}/PT1H"))
    job = service.create_job(make_job("j", schedule=f"R/{iso(10)}/PT1H", parent_jobs=()))
    child = service.create_job(make_job("child", parent_jobs=(job.id,)))
    kid = service.create_job(make_job("kid", parent_jobs=(parent.id,)))
    service.start_job(job.id)
    launcher.finish(0, job_id=job.id)
    launcher.finish(0, job_id=child.id)
    before = service.get_job(job.id)
    assert before.metadata.success_count == 1
    clock.advance(60)

    updated = service.replace_job(edit(job, name="renamed", command="echo new"))
    assert updated.id == job.id and updated.name == "renamed" and updated.command == "echo new"
    assert updated.created_at == before.created_at
    assert updated.metadata == before.metadata
    assert updated.dependent_jobs == (child.id,)
    assert [r.status for r in store.list_runs(job.id)] == [RunStatus.SUCCEEDED]
    assert store.load().jobs and {j.id: j for j in store.load().jobs}[job.id] == updated

    # A child: no parents in the body keeps them; the same parents are fine too.
    same = service.replace_job(edit(kid, command="echo kid"))
    assert same.parent_jobs == (parent.id,) and same.next_run_at is None and not same.is_done
    same = service.replace_job(edit(kid, parent_jobs=(parent.id,)))
    assert same.parent_jobs == (parent.id,)
    assert service.get_job(parent.id).dependent_jobs == (kid.id,)


def test_other_parents_are_refused_naming_the_field(service):
    a = service.create_job(make_job("a", schedule=f"R/{iso(10)}/PT1H"))
    b = service.create_job(make_job("b", schedule=f"R/{iso(10)}/PT1H"))
    kid = service.create_job(make_job("kid", parent_jobs=(a.id,)))
    with pytest.raises(InvalidJob, match="^parent_jobs: "):
        service.replace_job(edit(kid, parent_jobs=(b.id,)))
    assert service.get_job(kid.id).parent_jobs == (a.id,)


def test_on_failure_job_may_change_but_must_exist_and_not_loop(service):
    job = service.create_job(make_job("j", schedule=f"R/{iso(10)}/PT1H"))
    alarm = service.create_job(make_job("alarm", schedule=f"R/{iso(10)}/PT1H"))
    assert service.replace_job(edit(job, on_failure_job=alarm.id)).on_failure_job == alarm.id
    with pytest.raises(InvalidJob, match="^on_failure_job: job 'nope' does not exist"):
        service.replace_job(edit(job, on_failure_job="nope"))
    with pytest.raises(InvalidJob, match="^on_failure_job: .*leads back to this job"):
        service.replace_job(edit(job, on_failure_job=job.id))
    # j fails -> alarm fails -> j ...
    with pytest.raises(InvalidJob, match="leads back"):
        service.replace_job(edit(alarm, on_failure_job=job.id))
    # child fails -> j succeeds -> child ...
    child = service.create_job(make_job("child", parent_jobs=(job.id,)))
    with pytest.raises(InvalidJob, match="leads back"):
        service.replace_job(edit(child, on_failure_job=job.id))
    # j fails -> child: no way back to j.
    assert service.replace_job(edit(job, on_failure_job=child.id)).on_failure_job == child.id
    assert service.get_job(alarm.id).on_failure_job == ""


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"name": " "}, "name:"),
        ({"command": ""}, "command:"),
        ({"schedule": "every day"}, "schedule:"),
        ({"schedule": f"R0/{iso(-60)}/PT1M"}, "schedule:"),
        ({"epsilon": "soon"}, "epsilon:"),
    ],
)
def test_invalid_definitions_are_refused_as_at_create(service, fields, field):
    job = service.create_job(make_job("j", schedule=f"R/{iso(10)}/PT1H"))
    with pytest.raises(InvalidJob) as caught:
        service.replace_job(edit(job, **fields))
    assert str(caught.value).startswith(field)
    assert service.get_job(job.id) == job


def test_unknown_id_is_not_found(service):
    with pytest.raises(JobNotFound):
        service.replace_job(make_job("ghost", id="no-such-id"))


def test_replacing_a_finished_one_shot_with_a_new_schedule_revives_it(service, launcher, clock):
    job = service.create_job(make_job("once", schedule=f"R0/{iso(10)}/PT0S"))
    fire(service, clock, 10)
    launcher.finish()
    assert service.get_job(job.id).is_done
    updated = service.replace_job(edit(job, schedule=f"R0/{iso(60)}/PT0S"))
    assert not updated.is_done and updated.next_run_at == at(60)
    fire(service, clock, 60)
    assert launcher.count(job.id) == 2


class FlakyStore(MemoryStore):
    """A memory store whose next ``apply`` fails when told to."""

    fail_next = False

    def apply(self, changes) -> None:
        if self.fail_next:
            self.fail_next = False
            raise StoreError("disk on fire")
        super().apply(changes)


def test_store_failure_undoes_the_change_in_memory(launcher, clock):
    store = FlakyStore(keep_runs=100)
    service = build_service(store, launcher, clock)
    service.load()
    job = service.create_job(make_job("j", schedule=f"R/{iso(10)}/PT10S"))
    store.fail_next = True
    with pytest.raises(StoreError):
        service.replace_job(edit(job, name="new", schedule=f"R/{iso(1000)}/PT1H", disabled=True))
    assert service.get_job(job.id) == job
    assert service.app_stats().disabled_jobs == 0
    fire(service, clock, 10)
    assert launcher.count(job.id) == 1  # the old schedule is armed again


def test_a_secret_sent_back_masked_keeps_its_stored_value(service):
    job = service.create_job(make_job("j", schedule=f"R/{iso(10)}/PT1H",
                                      env=(("MODE", "full"),), secret_env=(("PASS", "hunter2"),)))
    updated = service.replace_job(edit(job, env=(("MODE", "quick"),),
                                       secret_env=(("PASS", "***"), ("NEW", "s3"))))
    assert updated.env == (("MODE", "quick"),)
    assert dict(updated.secret_env) == {"PASS": "hunter2", "NEW": "s3"}
    # Left out, it is gone: PUT replaces the whole definition.
    assert service.replace_job(edit(job)).secret_env == ()
