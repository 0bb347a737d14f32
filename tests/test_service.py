"""Scheduling rules of the service, on a fake clock with runs ended by the test."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest

from kalad.core.errors import InvalidJob, JobNotFound
from kalad.core.runs import RunStatus, Trigger
from kalad.service import _run_id
from tests.conftest import T0, build_service, make_job


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def iso(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def fire(service, clock, seconds: float) -> None:
    clock.set(at(seconds))
    service.tick()


def test_one_off_job_runs_once_now_and_is_done(service, launcher, clock):
    job = service.create_job(make_job("once"))
    service.tick()
    assert launcher.count(job.id) == 1
    launcher.finish()
    clock.advance(3600)
    service.tick()
    assert launcher.count(job.id) == 1
    stored = service.get_job(job.id)
    assert stored.is_done and stored.metadata.success_count == 1
    assert stored.metadata.number_of_finished_runs == 1


def test_r1_runs_twice_on_the_grid_without_drift(service, launcher, clock):
    job = service.create_job(make_job("r1", schedule=f"R1/{iso(10)}/PT10S"))
    assert service.get_job(job.id).next_run_at == at(10)
    fire(service, clock, 9.999)
    assert launcher.count(job.id) == 0
    fire(service, clock, 10.3)  # late by 300 ms
    assert launcher.count(job.id) == 1
    assert launcher.started[-1].env["KALAD_SCHEDULED_AT"] == iso(10)
    clock.advance(0.5)
    launcher.finish()
    assert service.get_job(job.id).next_run_at == at(20)  # the grid, not 10.3 + 10
    fire(service, clock, 20)
    launcher.finish()
    fire(service, clock, 30)
    assert launcher.count(job.id) == 2
    assert service.get_job(job.id).is_done
    assert service.get_job(job.id).next_run_at is None


def test_scheduled_runs_never_overlap_and_late_ones_coalesce(service, launcher, clock, store):
    job = service.create_job(make_job("slow", schedule=f"R/{iso(10)}/PT10S"))
    fire(service, clock, 10)
    for t in (20, 30, 40):
        fire(service, clock, t)
    assert launcher.count(job.id) == 1  # still running: nothing new started
    clock.set(at(45))
    launcher.finish()
    service.tick()
    assert launcher.count(job.id) == 2  # one catch-up run for the latest missed occurrence
    assert launcher.started[-1].env["KALAD_SCHEDULED_AT"] == iso(40)
    runs = store.list_runs(job.id)
    missed = [r for r in runs if r.status is RunStatus.MISSED]
    assert len(missed) == 1 and missed[0].missed == 2  # 20 and 30 coalesced into 40


def test_restart_runs_one_catch_up_and_records_the_missed(store, launcher, clock):
    first = build_service(store, launcher, clock)
    first.load()
    job = first.create_job(make_job("daily", schedule=f"R/{iso(10)}/PT10S"))
    # The daemon "dies" here; it comes back 35 s later.
    clock.set(at(45))
    second = build_service(store, launcher, clock)
    assert second.load() == 1
    second.tick()
    assert launcher.count(job.id) == 1
    assert launcher.started[-1].env["KALAD_SCHEDULED_AT"] == iso(40)
    runs = store.list_runs(job.id)
    assert [(r.status, r.missed) for r in runs] == [(RunStatus.MISSED, 3)]
    launcher.finish()
    assert second.get_job(job.id).next_run_at == at(50)


def test_resume_at_next_scheduled_time_skips_missed(store, launcher, clock):
    first = build_service(store, launcher, clock)
    job = first.create_job(make_job("resume", schedule=f"R/{iso(10)}/PT10S",
                                    resume_at_next_scheduled_time=True))
    clock.set(at(45))
    second = build_service(store, launcher, clock)
    second.load()
    second.tick()
    assert launcher.count(job.id) == 0
    assert second.get_job(job.id).next_run_at == at(50)
    assert store.list_runs(job.id)[0].missed == 4


def test_epsilon_skips_a_run_that_would_start_too_late(store, launcher, clock):
    first = build_service(store, launcher, clock)
    job = first.create_job(make_job("eps", schedule=f"R/{iso(10)}/PT1M", epsilon="PT5S"))
    clock.set(at(10 + 6))  # 6 s late > epsilon
    second = build_service(store, launcher, clock)
    second.load()
    second.tick()
    assert launcher.count(job.id) == 0
    assert second.get_job(job.id).next_run_at == at(70)
    clock.set(at(70 + 4))  # 4 s late, inside epsilon
    second.tick()
    assert launcher.count(job.id) == 1


def test_a_lead_fires_ahead_and_the_attempt_starts_on_the_instant(service, launcher, clock, store):
    job = service.create_job(make_job("lead", schedule=f"R/{iso(10)}/PT10S", retries=1))
    lead = timedelta(milliseconds=2)
    clock.set(at(9.997))
    service.tick(lead)  # due in 3 ms: beyond the lead
    assert launcher.count(job.id) == 0
    clock.set(at(9.999))
    service.tick(lead)  # due in 1 ms: fired now, to start on the instant
    [attempt] = launcher.started
    assert attempt.start_at == at(10)
    assert service.get_job(job.id).metadata.last_attempted_run == at(10)
    assert service.get_job(job.id).next_run_at == at(20)
    clock.set(at(10.5))
    launcher.finish(1)
    retry = launcher.started[-1]
    assert retry.number == 2 and retry.start_at is None  # a retry starts at once
    launcher.finish(0)
    [run] = store.list_runs(job.id)
    assert run.started_at == at(10) and run.scheduled_at == at(10)
    assert run.duration_ns == 500_000_000  # from the instant, not from the early tick
    clock.set(at(20.5))
    service.tick(lead)  # late: no lead needed, no wait
    assert launcher.started[-1].start_at is None


def test_a_run_fired_ahead_starts_alone_only_with_no_other_run_due_soon(service, launcher, clock):
    service.create_job(make_job("lone", schedule=f"R/{iso(10)}/PT10S", retries=1))
    service.create_job(make_job("near", schedule=f"R/{iso(30)}/PT60S"))
    pair = service.create_job(make_job("pair", schedule=f"R/{iso(29.997)}/PT60S"))
    lead = timedelta(milliseconds=2)
    clock.set(at(9.999))
    service.tick(lead)
    [attempt] = launcher.started
    assert attempt.start_at == at(10) and attempt.alone  # nothing else due within 5 ms
    launcher.finish(1)
    assert not launcher.started[-1].alone  # the retry starts at once, not ahead
    launcher.finish(0)
    clock.set(at(20.5))
    service.tick(lead)
    assert not launcher.started[-1].alone  # late: started at once
    launcher.finish(0)
    clock.set(at(29.996))
    service.tick(lead)
    assert launcher.started[-1].job_id == pair.id
    assert not launcher.started[-1].alone  # "near" is due 3 ms after it


def test_a_tick_takes_at_most_its_limit_and_hands_off_before_starting(service, launcher, clock):
    jobs = [service.create_job(make_job(f"j{i}", id=f"j{i}", schedule=f"R/{iso(at_s)}/PT60S"))
            for i, at_s in enumerate((10, 10, 10, 20))]
    events = []

    def handoff(late):
        events.append((late, len(launcher.started)))

    clock.set(at(10.25))
    service.tick(limit=2, handoff=handoff)
    # once, after the jobs were taken and before any started, with how late they are
    assert events == [(timedelta(seconds=0.25), 0)]
    assert [a.job_id for a in launcher.started] == [jobs[0].id, jobs[1].id]
    service.tick(limit=2, handoff=handoff)
    assert events[1:] == [(timedelta(seconds=0.25), 2)]
    assert launcher.started[-1].job_id == jobs[2].id
    service.tick(limit=2, handoff=handoff)
    assert len(events) == 2  # nothing due: no handoff
    clock.set(at(19.999))
    service.tick(timedelta(seconds=0.002), limit=2, handoff=handoff)
    assert events[2:] == [(timedelta(seconds=-0.001), 3)]  # fired ahead: negative
    assert launcher.started[-1].job_id == jobs[3].id


def test_retries_count_attempts_and_runs(service, launcher, clock, store):
    job = service.create_job(make_job("flaky", retries=2))
    service.tick()
    launcher.finish(1)
    launcher.finish(1)
    launcher.finish(0)
    meta = service.get_job(job.id).metadata
    assert (meta.error_count, meta.success_count, meta.number_of_finished_runs) == (2, 1, 1)
    [run] = store.list_runs(job.id)
    assert run.attempts == 3 and run.success and run.number_of_retries == 2


def test_retries_exhausted_is_one_failed_run(service, launcher, store):
    job = service.create_job(make_job("bad", retries=1))
    service.tick()
    launcher.finish(3)
    launcher.finish(3)
    assert not launcher.pending
    meta = service.get_job(job.id).metadata
    assert (meta.error_count, meta.success_count, meta.number_of_finished_runs) == (2, 0, 1)
    [run] = store.list_runs(job.id)
    assert run.status is RunStatus.FAILED and run.exit_status == 3


def test_manual_start_does_not_move_the_grid(service, launcher, clock):
    job = service.create_job(make_job("m", schedule=f"R/{iso(60)}/PT1M"))
    clock.set(at(15))
    service.start_job(job.id)
    launcher.finish()
    assert service.get_job(job.id).next_run_at == at(60)
    assert launcher.started[-1].env["KALAD_SCHEDULED_AT"] == ""


def test_disable_then_enable_catches_up_once(service, launcher, clock, store):
    job = service.create_job(make_job("d", schedule=f"R/{iso(10)}/PT10S"))
    service.disable_job(job.id)
    fire(service, clock, 35)
    assert launcher.count(job.id) == 0
    service.enable_job(job.id)
    service.tick()
    assert launcher.count(job.id) == 1
    assert launcher.started[-1].env["KALAD_SCHEDULED_AT"] == iso(30)


def test_start_of_a_disabled_job_is_recorded_as_skipped(service, launcher, store):
    job = service.create_job(make_job("off", schedule=f"R/{iso(10)}/PT10S", disabled=True))
    service.start_job(job.id)
    assert launcher.count(job.id) == 0
    [run] = store.list_runs(job.id)
    assert run.status is RunStatus.SKIPPED and run.trigger is Trigger.MANUAL


def test_past_start_of_repeating_schedule_runs_from_next_grid_point(service, clock):
    clock.set(at(125))
    job = service.create_job(make_job("past", schedule=f"R/{iso(0)}/PT1M"))
    assert service.get_job(job.id).next_run_at == at(180)


def test_past_start_of_one_shot_is_refused(service, clock):
    clock.set(at(125))
    with pytest.raises(InvalidJob, match="schedule"):
        service.create_job(make_job("past", schedule=f"R0/{iso(0)}/"))


def test_unknown_parent_stores_nothing(service, store):
    with pytest.raises(InvalidJob, match="parent_jobs"):
        service.create_job(make_job("child", parent_jobs=("nope",)))
    assert store.load().jobs == []


def test_links_and_cascading_delete_in_one_change(service, store):
    a = service.create_job(make_job("a", schedule=f"R/{iso(10)}/PT10S"))
    b = service.create_job(make_job("b", schedule=f"R/{iso(10)}/PT10S"))
    only = service.create_job(make_job("only", parent_jobs=(a.id,)))
    shared = service.create_job(make_job("shared", parent_jobs=(a.id, b.id)))
    assert service.get_job(a.id).dependent_jobs == (only.id, shared.id)
    assert service.get_job(only.id).next_run_at is None  # children are not armed
    service.delete_job(a.id)
    ids = {j.id for j in store.load().jobs}
    assert ids == {b.id, shared.id}
    assert service.get_job(shared.id).parent_jobs == (b.id,)
    assert {j.id: j.parent_jobs for j in store.load().jobs}[shared.id] == (b.id,)
    with pytest.raises(JobNotFound):
        service.get_job(only.id)


def test_deleted_while_running_is_not_resurrected(service, launcher, store):
    job = service.create_job(make_job("gone"))
    service.tick()
    service.delete_job(job.id)
    launcher.finish()
    assert store.load().jobs == []
    assert store.list_runs(job.id) == []


def test_deleted_job_never_fires_again(service, launcher, clock):
    job = service.create_job(make_job("x", schedule=f"R/{iso(10)}/PT10S"))
    service.delete_job(job.id)
    fire(service, clock, 100)
    assert launcher.count(job.id) == 0


def test_the_timer_is_woken_only_for_a_job_due_before_it_would_wake(service, launcher, clock):
    """Waking the timer costs a tick; a job due after what it sleeps until needs none."""
    wakes = []
    service.set_waker(lambda: wakes.append(1))
    service.create_job(make_job("hourly", schedule=f"R/{iso(3600)}/PT1H"))
    assert len(wakes) == 1  # the timer had been told of nothing
    assert service.next_due() == at(3600)  # the timer now sleeps until then
    service.create_job(make_job("later", schedule=f"R/{iso(7200)}/PT1H"))
    assert len(wakes) == 1
    sooner = service.create_job(make_job("sooner", schedule=f"R/{iso(60)}/PT1H"))
    assert len(wakes) == 2
    assert service.next_due() == at(60)
    service.disable_job(sooner.id)
    service.delete_job(sooner.id)
    assert len(wakes) == 2  # removing a job never needs a wake
    soon = service.create_job(make_job("soon", schedule=f"R/{iso(30)}/PT1H", disabled=True))
    assert len(wakes) == 2
    service.enable_job(soon.id)
    assert len(wakes) == 3


def test_app_stats_are_exact(service, launcher, clock):
    a = service.create_job(make_job("a", schedule=f"R/{iso(10)}/PT10S", retries=1))
    service.create_job(make_job("b", schedule=f"R/{iso(5)}/PT10S", disabled=True))
    stats = service.app_stats()
    assert (stats.jobs, stats.active_jobs, stats.disabled_jobs) == (2, 1, 1)
    assert stats.next_run_at == at(10)
    fire(service, clock, 10)
    launcher.finish(1)
    launcher.finish(0)
    stats = service.app_stats()
    assert (stats.error_count, stats.success_count) == (1, 1)
    assert stats.last_attempted_run == at(10)
    assert stats.next_run_at == at(20)
    service.delete_job(a.id)
    stats = service.app_stats()
    assert (stats.jobs, stats.error_count, stats.success_count) == (1, 0, 0)
    assert stats.last_attempted_run is None and stats.next_run_at is None


def test_bad_stored_schedule_is_kept_disabled(store, launcher, clock):
    from kalad.core.ports import Change

    store.apply([Change(put=(make_job("broken", schedule="5/x/y"),))])
    svc = build_service(store, launcher, clock)
    assert svc.load() == 1
    assert svc.get_job("id-broken").disabled


# ---- dependent and on-failure jobs ---------------------------------------------------


def finish_next(launcher, exit_status: int = 0) -> str:
    """End the oldest pending attempt; return its job's name."""
    return launcher.finish(exit_status).job_name


def test_children_run_depth_first_in_creation_order_after_success(service, launcher):
    parent = service.create_job(make_job("parent", schedule=f"R/{iso(10)}/PT1H"))
    c1 = service.create_job(make_job("c1", parent_jobs=(parent.id,)))
    service.create_job(make_job("c2", parent_jobs=(parent.id,)))
    service.create_job(make_job("g1", parent_jobs=(c1.id,)))
    service.start_job(parent.id)
    order = [finish_next(launcher) for _ in range(4)]
    assert order == ["parent", "c1", "g1", "c2"]
    assert not launcher.pending


def test_failed_parent_runs_its_on_failure_job_not_its_children(service, launcher, store):
    alarm = service.create_job(make_job("alarm", schedule=f"R/{iso(10)}/PT1H"))
    parent = service.create_job(make_job("parent", schedule=f"R/{iso(10)}/PT1H",
                                         retries=1, on_failure_job=alarm.id))
    service.create_job(make_job("child", parent_jobs=(parent.id,)))
    service.start_job(parent.id)
    assert finish_next(launcher, 1) == "parent"
    assert finish_next(launcher, 1) == "parent"  # the retry
    assert finish_next(launcher) == "alarm"
    assert not launcher.pending
    [run] = store.list_runs(alarm.id)
    assert run.trigger is Trigger.FAILURE


def test_on_failure_job_does_not_run_after_success(service, launcher):
    alarm = service.create_job(make_job("alarm", schedule=f"R/{iso(10)}/PT1H"))
    ok = service.create_job(make_job("ok", schedule=f"R/{iso(10)}/PT1H", on_failure_job=alarm.id))
    service.start_job(ok.id)
    finish_next(launcher)
    assert not launcher.pending


def test_disabled_child_is_skipped_and_recorded_siblings_go_on(service, launcher, store):
    parent = service.create_job(make_job("parent", schedule=f"R/{iso(10)}/PT1H"))
    off = service.create_job(make_job("off", parent_jobs=(parent.id,), disabled=True))
    service.create_job(make_job("on", parent_jobs=(parent.id,)))
    service.start_job(parent.id)
    assert [finish_next(launcher) for _ in range(2)] == ["parent", "on"]
    [run] = store.list_runs(off.id)
    assert run.status is RunStatus.SKIPPED and run.trigger is Trigger.PARENT


def test_failing_child_does_not_stop_its_siblings(service, launcher):
    parent = service.create_job(make_job("parent", schedule=f"R/{iso(10)}/PT1H"))
    service.create_job(make_job("bad", parent_jobs=(parent.id,)))
    service.create_job(make_job("good", parent_jobs=(parent.id,)))
    service.start_job(parent.id)
    assert finish_next(launcher) == "parent"
    assert finish_next(launcher, 1) == "bad"
    assert finish_next(launcher) == "good"


def test_child_of_two_parents_running_at_once_keeps_exact_counters(service, launcher):
    a = service.create_job(make_job("a", schedule=f"R/{iso(10)}/PT1H"))
    b = service.create_job(make_job("b", schedule=f"R/{iso(10)}/PT1H"))
    child = service.create_job(make_job("child", parent_jobs=(a.id, b.id)))
    service.start_job(a.id)
    service.start_job(b.id)
    launcher.finish(job_id=a.id)
    launcher.finish(job_id=b.id)
    assert launcher.count(child.id) == 2  # both runs in flight together
    launcher.finish(job_id=child.id)
    launcher.finish(job_id=child.id)
    meta = service.get_job(child.id).metadata
    assert (meta.success_count, meta.number_of_finished_runs) == (2, 2)


def test_manual_start_overlapping_a_scheduled_run_keeps_exact_counters(service, launcher, clock):
    job = service.create_job(make_job("j", schedule=f"R/{iso(10)}/PT1H"))
    fire(service, clock, 10)
    service.start_job(job.id)
    launcher.finish(1)
    launcher.finish(0)
    meta = service.get_job(job.id).metadata
    assert (meta.error_count, meta.success_count, meta.number_of_finished_runs) == (1, 1, 2)


def test_bad_template_fails_the_attempt_with_its_message(service, launcher, store):
    job = service.create_job(make_job("t", command="echo {{.Nope}}", template_delimiters="{{ }}"))
    service.tick()
    assert not launcher.pending
    [run] = store.list_runs(job.id)
    assert run.status is RunStatus.FAILED and "Nope" in run.message


def test_template_renders_job_fields_before_each_attempt(service, launcher):
    service.create_job(make_job("named", command="echo {{.Name}} {{.Metadata.ErrorCount}}",
                                template_delimiters="{{ }}", retries=1))
    service.tick()
    assert launcher.started[-1].argv == ("echo", "named", "0")
    launcher.finish(1)
    assert launcher.started[-1].argv == ("echo", "named", "1")


def test_on_failure_job_leading_back_to_a_parent_is_refused(service, store):
    a = service.create_job(make_job("a", schedule=f"R/{iso(10)}/PT1H"))
    b = service.create_job(make_job("b", parent_jobs=(a.id,)))
    with pytest.raises(InvalidJob, match="leads back"):
        service.create_job(make_job("loop", parent_jobs=(a.id,), on_failure_job=a.id))
    with pytest.raises(InvalidJob, match="leads back"):
        service.create_job(make_job("loop2", parent_jobs=(b.id,), on_failure_job=a.id))
    assert len(store.load().jobs) == 2


def test_bad_epsilon_is_refused_naming_the_field(service, store):
    with pytest.raises(InvalidJob, match="epsilon"):
        service.create_job(make_job("e", schedule=f"R/{iso(10)}/PT1H", epsilon="5 seconds"))
    assert store.load().jobs == []


def test_missed_occurrences_of_many_jobs_log_one_line_then_a_count(store, launcher, clock, caplog):
    first = build_service(store, launcher, clock)
    first.load()
    ids = [first.create_job(make_job(f"j{i}", schedule=f"R/{iso(10)}/PT10S")).id for i in range(50)]
    clock.set(at(45))  # down for 35 s: every job missed 3 occurrences
    caplog.set_level("WARNING", logger="kalad.service")
    second = build_service(store, launcher, clock)
    second.load()
    second.tick()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith(f"job={ids[0]} missed 3 occurrence(s)")
    clock.advance(11)
    second.tick()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings[1:] == ["49 more job(s) missed 147 occurrence(s) in the last 10 s; "
                            "each is a 'missed' run record"]
    assert all(store.list_runs(i)[0].missed == 3 for i in ids)  # every one recorded


def test_run_ids_are_unique_hex_and_differ_in_a_forked_child() -> None:
    """Run ids come from a seeded generator (no system call per run): 128 bits like a
    uuid4's hex, and a child forked from the daemon must not repeat the parent's."""
    ids = {_run_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", run_id) for run_id in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, _run_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert re.fullmatch(r"[0-9a-f]{32}", child) and child != _run_id()
