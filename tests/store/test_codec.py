"""The storage codec: exact round trips, a pinned v1 layout, and clear errors on bad data."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, replace
from datetime import datetime, timedelta, timezone

import pytest

from kalad.core.errors import StoreError
from kalad.core.job import NO_METADATA, NO_REMOTE, Job, JobType, Metadata, RemoteProperties
from kalad.core.runs import Run, RunStatus, Trigger
from kalad.store.codec import decode_job, decode_run, encode_job, encode_run

T0 = datetime(2024, 2, 29, 12, 30, 15, 123456, tzinfo=timezone.utc)


def full_job() -> Job:
    return Job(
        id="8c1d2f0e-job",
        name="nightly backup ☃",
        created_at=T0,
        command="/usr/bin/backup --all",
        owner="ops@example.com",
        disabled=True,
        dependent_jobs=("child-1", "child-2"),
        parent_jobs=("parent-1",),
        on_failure_job="alert",
        schedule="R5/2024-03-01T00:00:00Z/PT1H",
        retries=3,
        epsilon="PT5M",
        next_run_at=T0 + timedelta(hours=1),
        template_delimiters="{{ }}",
        resume_at_next_scheduled_time=True,
        metadata=Metadata(
            success_count=7,
            last_success=T0 - timedelta(days=1),
            error_count=2,
            last_error=T0 - timedelta(days=2),
            last_attempted_run=T0 - timedelta(minutes=3),
            number_of_finished_runs=9,
        ),
        type=JobType.REMOTE,
        remote_properties=RemoteProperties(
            url="https://example.com/hook",
            method="POST",
            body='{"x": 1}',
            headers={"Accept": ("application/json",), "X-Multi": ("a", "b")},
            timeout=30,
            expected_response_codes=(200, 201),
        ),
        is_done=True,
    )


def full_run() -> Run:
    return Run(
        id="run-1",
        job_id="8c1d2f0e-job",
        trigger=Trigger.FAILURE,
        status=RunStatus.KILLED,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=2),
        scheduled_at=T0 - timedelta(seconds=1),
        attempts=4,
        duration_ns=2_000_000_123,
        exit_status=-9,
        output="line 1\nline 2 ✓\n",
        message="killed after timeout",
        missed=0,
    )


def test_full_job_round_trips_exactly() -> None:
    job = full_job()
    assert decode_job(encode_job(job)) == job


def test_text_json_cannot_carry_as_utf8_round_trips_too() -> None:
    """Records are UTF-8 JSON; text with a lone surrogate (a JSON ``\\ud800`` escape in
    an API body), which UTF-8 cannot carry, is written as escaped ASCII JSON instead."""
    job = full_job().replace(name="half \ud800 pair")
    data = encode_job(job)
    assert data.isascii()
    assert decode_job(data) == job
    utf8 = encode_job(full_job().replace(name="café ✓"))
    assert "café ✓".encode() in utf8 and decode_job(utf8).name == "café ✓"


def test_decoded_jobs_are_as_frozen_as_constructed_ones() -> None:
    """Decoding sets slots directly, past __init__: the result must still be a plain Job."""
    decoded = decode_job(encode_job(full_job()))
    assert type(decoded) is Job
    with pytest.raises(FrozenInstanceError):
        decoded.name = "changed"  # type: ignore[misc]
    assert decoded.replace(name="changed").name == "changed"


def test_minimal_job_is_small_and_pinned() -> None:
    job = Job(id="j1", name="n", created_at=datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc))
    data = encode_job(job)
    assert data == b'{"v":1,"id":"j1","n":"n","c":1000000}'
    decoded = decode_job(data)
    assert decoded == job
    assert decoded.metadata is NO_METADATA
    assert decoded.remote_properties is NO_REMOTE
    # A key this kalad does not know (a later one's optional field) is passed over.
    assert decode_job(b'{"v":1,"id":"j1","n":"n","c":1000000,"zz":[1]}') == job


def test_empty_headers_and_codes_differ_from_none() -> None:
    for remote in (
        RemoteProperties(url="http://x", headers={}, expected_response_codes=()),
        RemoteProperties(url="http://x", headers=None, expected_response_codes=None),
        RemoteProperties(url="http://x", headers={"A": ()}, expected_response_codes=(204,)),
    ):
        job = Job(id="j", name="n", created_at=T0, type=JobType.REMOTE, remote_properties=remote)
        decoded = decode_job(encode_job(job)).remote_properties
        assert decoded == remote
        assert (decoded.headers is None) == (remote.headers is None)
        codes = remote.expected_response_codes
        assert (decoded.expected_response_codes is None) == (codes is None)


def test_datetimes_keep_their_instant() -> None:
    plus_two = timezone(timedelta(hours=2))
    for moment in (
        datetime(2024, 6, 1, 14, 0, tzinfo=plus_two),
        datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=timezone.utc),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
    ):
        job = Job(id="j", name="n", created_at=moment, next_run_at=moment)
        decoded = decode_job(encode_job(job))
        assert decoded.created_at == moment
        assert decoded.next_run_at == moment
        assert decoded.created_at.tzinfo is timezone.utc


def test_full_run_round_trips_exactly() -> None:
    run = full_run()
    assert decode_run(encode_run(run)) == run


def test_minimal_run_keeps_exit_status_zero_apart_from_none() -> None:
    base = Run(
        id="r",
        job_id="j",
        trigger=Trigger.SCHEDULE,
        status=RunStatus.MISSED,
        started_at=T0,
        ended_at=T0,
        missed=3,
    )
    for exit_status in (None, 0):
        run = replace(base, exit_status=exit_status)
        assert decode_run(encode_run(run)) == run


def test_naive_datetime_is_refused() -> None:
    job = Job(id="j", name="n", created_at=datetime(2024, 1, 1))
    with pytest.raises(StoreError, match="naive datetime"):
        encode_job(job)


def test_newer_version_is_refused_with_its_number() -> None:
    record = json.loads(encode_job(full_job()))
    record["v"] = 2
    with pytest.raises(StoreError, match="job record has format version 2, this kalad reads up"):
        decode_job(json.dumps(record).encode())


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"id":"j","n":"n","c":1}', "format version"),
        (b'{"v":true,"id":"j","n":"n","c":1}', "format version"),
        (b'{"v":1,"n":"n","c":1}', "missing field 'id'"),
        (b'{"v":1,"c":1}', "missing field 'id', 'n'"),
        (b'{"v":1,"id":"j","n":"n","c":"yesterday"}', "field 'c': must be an integer, not str"),
        (b'{"v":1,"id":"j","n":"n","c":1,"r":"3"}', "'r'"),
        (b'{"v":1,"id":"j","n":"n","c":1,"dep":["a",2]}', "'dep'"),
        (b'{"v":1,"id":"j","n":"n","c":1,"t":7}', "JobType"),
        (b'{"v":1,"id":"j","n":"n","c":1,"m":{"ls":"x"}}', "'ls'"),
        (b'{"v":1,"id":"j","n":"n","c":1,"rp":{"h":{"A":"b"}}}', "field 'h': must be a list"),
        (b'{"v":1,"id":"j","n":"n","c":1,"rp":{"x":["200"]}}', "'x'"),
        (b'{"v":1,"id":"j","n":"n","c":99999999999999999999}', "malformed job record"),
    ],
)
def test_malformed_job_records_raise_store_error(data: bytes, why: str) -> None:
    with pytest.raises(StoreError, match=why):
        decode_job(data)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"{", "not JSON"),
        (b'{"v":3,"id":"r"}', "run record has format version 3"),
        (b'{"v":1,"id":"r","j":"j","tr":"cron","st":"failed","s":1,"e":2}', "Trigger"),
        (b'{"v":1,"id":"r","j":"j","tr":"manual","st":"failed","s":1}', "missing field 'e'"),
        (b'{"v":1,"id":"r","j":"j","tr":"manual","st":"failed","s":1,"e":2,"x":1.5}', "'x'"),
    ],
)
def test_malformed_run_records_raise_store_error(data: bytes, why: str) -> None:
    with pytest.raises(StoreError, match=why):
        decode_run(data)
