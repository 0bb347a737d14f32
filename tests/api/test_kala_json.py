"""Kala's JSON shapes: decoding a create body, encoding jobs, stats and times."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from kalad.api.kala_json import (
    ZERO_TIME,
    dumps,
    format_time,
    job_to_wire,
    parse_job,
    parse_time,
    run_to_stat,
    run_to_wire,
    stats_to_wire,
)
from kalad.core.errors import InvalidJob
from kalad.core.job import NO_METADATA, NO_REMOTE, Job, JobType, Metadata, RemoteProperties
from kalad.core.runs import Run, RunStatus, Trigger
from kalad.core.stats import AppStats

UTC = timezone.utc
NOW = datetime(2029, 12, 31, 23, 0, tzinfo=UTC)
JOB_ID = "11111111-2222-4333-5444-555555555555"

KALA_KEYS = [
    "name", "id", "command", "owner", "disabled", "dependent_jobs", "parent_jobs",
    "on_failure_job", "schedule", "retries", "epsilon", "next_run_at", "TemplateDelimiters",
    "resume_at_next_scheduled_time", "metadata", "type", "remote_properties", "stats", "is_done",
]
METADATA_KEYS = [
    "success_count", "last_success", "error_count", "last_error", "last_attempted_run",
    "number_of_finished_runs",
]
REMOTE_KEYS = ["url", "method", "body", "headers", "timeout", "expected_response_codes"]
STAT_KEYS = [
    "job_id", "ran_at", "number_of_retries", "success", "execution_duration",
    "JobId", "RanAt", "NumberOfRetries", "Success", "ExecutionDuration",
]

# Reference §2.1's example of a freshly created job, as Kala emits it (one line).
KALA_EXAMPLE = (
    '{"name":"backup","id":"0b6f2c1e-7d3a-4e55-6a10-3c9d2e8f4b71","command":"bash -c \'date\'",'
    '"owner":"","disabled":false,"dependent_jobs":null,"parent_jobs":null,"on_failure_job":"",'
    '"schedule":"R2/2030-01-01T00:00:00Z/PT10S","retries":0,"epsilon":"",'
    '"next_run_at":"2030-01-01T00:00:00.000000412Z","TemplateDelimiters":"",'
    '"resume_at_next_scheduled_time":false,'
    '"metadata":{"success_count":0,"last_success":"0001-01-01T00:00:00Z","error_count":0,'
    '"last_error":"0001-01-01T00:00:00Z","last_attempted_run":"0001-01-01T00:00:00Z",'
    '"number_of_finished_runs":0},'
    '"type":0,'
    '"remote_properties":{"url":"","method":"","body":"","headers":null,"timeout":0,'
    '"expected_response_codes":null},'
    '"stats":null,"is_done":false}'
)

FULL = {
    "name": "report",
    "id": "client-id-is-ignored",
    "command": "",
    "owner": "ops@example.com",
    "disabled": True,
    "dependent_jobs": None,
    "parent_jobs": ["p1", "p2"],
    "on_failure_job": "f1",
    "schedule": "R/2030-01-01T00:00:00Z/PT1H",
    "retries": 3,
    "epsilon": "PT5M",
    "next_run_at": "2030-01-01T00:00:00Z",
    "TemplateDelimiters": "{{ }}",
    "resume_at_next_scheduled_time": True,
    "metadata": {
        "success_count": 7,
        "last_success": "2029-12-30T10:00:00.5Z",
        "error_count": 2,
        "last_error": "2029-12-29T10:00:00Z",
        "last_attempted_run": "2029-12-30T09:59:59.123456Z",
        "number_of_finished_runs": 9,
    },
    "type": 1,
    "remote_properties": {
        "url": "https://example.com/hook",
        "method": "POST",
        "body": "{\"a\":1}",
        "headers": {"X-Token": ["abc"], "Accept": ["a", "b"]},
        "timeout": -1,
        "expected_response_codes": [200, 201],
    },
    "stats": None,
    "is_done": False,
}


def parse(body: object, **kw: object) -> Job:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_job(raw, job_id=JOB_ID, now=NOW, **kw)


def run(status: RunStatus = RunStatus.SUCCEEDED, attempts: int = 1, **kw: object) -> Run:
    fields: dict = dict(
        id="r1",
        job_id=JOB_ID,
        trigger=Trigger.SCHEDULE,
        status=status,
        started_at=datetime(2030, 1, 1, 0, 0, 0, 1234, tzinfo=UTC),
        ended_at=datetime(2030, 1, 1, 0, 0, 4, 530367, tzinfo=UTC),
        scheduled_at=datetime(2030, 1, 1, tzinfo=UTC),
        attempts=attempts,
        duration_ns=4529133,
    )
    fields.update(kw)
    return Run(**fields)


# ------------------------------------------------------------------ round trips


def test_kala_example_round_trips_with_server_fields_reset() -> None:
    job = parse_job(KALA_EXAMPLE.encode(), job_id=JOB_ID, now=NOW)
    wire = job_to_wire(job, None)
    expected = json.loads(KALA_EXAMPLE)
    expected["id"] = JOB_ID
    expected["next_run_at"] = ZERO_TIME  # server-owned: the service computes it
    assert list(wire) == KALA_KEYS
    assert wire == expected
    assert job.created_at == NOW


def test_full_job_round_trip_keeps_every_client_field_in_order() -> None:
    job = parse(FULL)
    wire = job_to_wire(job, None)
    assert list(wire) == KALA_KEYS
    assert list(wire["metadata"]) == METADATA_KEYS
    assert list(wire["remote_properties"]) == REMOTE_KEYS
    expected = json.loads(json.dumps(FULL))
    expected["id"] = JOB_ID
    expected["next_run_at"] = ZERO_TIME
    # headers: Go sorts map keys
    expected["remote_properties"]["headers"] = {"Accept": ["a", "b"], "X-Token": ["abc"]}
    assert wire == expected
    assert list(wire["remote_properties"]["headers"]) == ["Accept", "X-Token"]
    # and the wire form re-parses to the same job
    assert parse(wire) == job


def test_parsed_types() -> None:
    job = parse(FULL)
    assert job.id == JOB_ID
    assert job.type is JobType.REMOTE
    assert job.parent_jobs == ("p1", "p2")
    assert job.remote_properties.headers["Accept"] == ("a", "b")
    with pytest.raises(TypeError):
        job.remote_properties.headers["New"] = ("x",)  # type: ignore[index]
    assert job.remote_properties.expected_response_codes == (200, 201)
    assert job.remote_properties.timeout == -1
    assert job.metadata == Metadata(
        success_count=7,
        last_success=datetime(2029, 12, 30, 10, 0, 0, 500000, tzinfo=UTC),
        error_count=2,
        last_error=datetime(2029, 12, 29, 10, tzinfo=UTC),
        last_attempted_run=datetime(2029, 12, 30, 9, 59, 59, 123456, tzinfo=UTC),
        number_of_finished_runs=9,
    )


def test_server_owned_fields_are_ignored() -> None:
    job = parse(
        {
            "name": "x",
            "id": "mine",
            "dependent_jobs": ["c1"],
            "next_run_at": "2031-01-01T00:00:00Z",
            "is_done": True,
            "stats": [{"job_id": "mine", "success": True}],
        }
    )
    assert job.id == JOB_ID
    assert job.dependent_jobs == ()
    assert job.next_run_at is None
    assert job.is_done is False


def test_empty_object_gives_defaults() -> None:
    job = parse({})
    assert job == Job(id=JOB_ID, name="", created_at=NOW)
    assert job.metadata is NO_METADATA
    assert job.remote_properties is NO_REMOTE


def test_default_owner() -> None:
    assert parse({"name": "x"}, default_owner="me@x").owner == "me@x"
    assert parse({"name": "x", "owner": ""}, default_owner="me@x").owner == "me@x"
    assert parse({"name": "x", "owner": "you@x"}, default_owner="me@x").owner == "you@x"
    assert parse({"name": "x"}).owner == ""


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize(
    "body, attr, value",
    [
        ('{"NAME":"a"}', "name", "a"),
        ('{"Name":"a"}', "name", "a"),
        ('{"Command":"ls"}', "command", "ls"),
        ('{"RETRIES":2}', "retries", 2),
        ('{"Parent_Jobs":["p"]}', "parent_jobs", ("p",)),
        ('{"TemplateDelimiters":"{{ }}"}', "template_delimiters", "{{ }}"),
        ('{"templatedelimiters":"{{ }}"}', "template_delimiters", "{{ }}"),
        ('{"TEMPLATEDELIMITERS":"[[ ]]"}', "template_delimiters", "[[ ]]"),
        ('{"template_delimiters":"{{ }}"}', "template_delimiters", ""),
        ('{"Type":1}', "type", JobType.REMOTE),
        ('{"na\u017fme":"x","name":"a"}', "name", "a"),  # unrelated key, ignored
        ('{"\u017fchedule":"R/x/PT1S"}', "schedule", "R/x/PT1S"),  # Go folds long s to s
    ],
)
def test_keys_match_case_insensitively(body: str, attr: str, value: object) -> None:
    assert getattr(parse(body.encode()), attr) == value


def test_nested_keys_match_case_insensitively() -> None:
    job = parse(
        {
            "Metadata": {"SUCCESS_COUNT": 3, "Last_Error": "2030-01-01T00:00:00Z"},
            "REMOTE_PROPERTIES": {"URL": "http://h/", "Headers": {"x-a": ["1"]}},
        }
    )
    assert job.metadata.success_count == 3
    assert job.metadata.last_error == datetime(2030, 1, 1, tzinfo=UTC)
    assert job.remote_properties.url == "http://h/"
    assert dict(job.remote_properties.headers) == {"x-a": ("1",)}  # header names kept as given


def test_unknown_keys_ignored() -> None:
    job = parse({"name": "a", "frobnicate": {"x": [1, 2]}, "tags": ["t"], "Environment": 5})
    assert job == Job(id=JOB_ID, name="a", created_at=NOW)


def test_duplicate_keys_last_wins_whatever_the_case() -> None:
    assert parse(b'{"name":"a","NAME":"b"}').name == "b"
    assert parse(b'{"NAME":"a","name":"b","Name":"c"}').name == "c"


def test_duplicate_objects_merge_like_go() -> None:
    job = parse(
        b'{"metadata":{"success_count":1},"metadata":{"error_count":2},'
        b'"remote_properties":{"url":"http://a/","headers":{"A":["1"]}},'
        b'"remote_properties":{"headers":{"B":["2"]}}}'
    )
    assert (job.metadata.success_count, job.metadata.error_count) == (1, 2)
    assert job.remote_properties.url == "http://a/"
    assert dict(job.remote_properties.headers) == {"A": ("1",), "B": ("2",)}


@pytest.mark.parametrize(
    "key",
    [
        "name", "id", "command", "owner", "disabled", "dependent_jobs", "parent_jobs",
        "on_failure_job", "schedule", "retries", "epsilon", "next_run_at",
        "TemplateDelimiters", "resume_at_next_scheduled_time", "metadata", "type",
        "remote_properties", "stats", "is_done",
    ],
)
def test_null_leaves_default(key: str) -> None:
    assert parse({key: None}) == Job(id=JOB_ID, name="", created_at=NOW)


def test_nested_nulls() -> None:
    job = parse(
        {
            "metadata": dict.fromkeys(METADATA_KEYS),
            "remote_properties": dict.fromkeys(REMOTE_KEYS),
        }
    )
    assert job.metadata == NO_METADATA
    assert job.remote_properties == NO_REMOTE


def test_null_after_a_value() -> None:
    # Go: null is a no-op for strings and structs, and clears slices and maps.
    job = parse(
        b'{"name":"a","name":null,"parent_jobs":["p"],"parent_jobs":null,'
        b'"remote_properties":{"headers":{"A":["1"]},"headers":null,'
        b'"expected_response_codes":[200],"expected_response_codes":null}}'
    )
    assert job.name == "a"
    assert job.parent_jobs == ()
    assert job.remote_properties.headers is None
    assert job.remote_properties.expected_response_codes is None


def test_empty_arrays_and_maps_are_kept_distinct_from_null() -> None:
    job = parse({"remote_properties": {"headers": {}, "expected_response_codes": []}})
    wire = job_to_wire(job, None)["remote_properties"]
    assert wire["headers"] == {}
    assert wire["expected_response_codes"] == []


def test_zero_times_and_null_header_values() -> None:
    job = parse(
        {
            "metadata": {"last_success": ZERO_TIME, "last_error": "0001-01-01T00:00:00.000Z"},
            "remote_properties": {"headers": {"X": None}},
        }
    )
    assert job.metadata.last_success is None and job.metadata.last_error is None
    assert dict(job.remote_properties.headers) == {"X": ()}


# ------------------------------------------------------------------ wrong types


@pytest.mark.parametrize(
    "body, field",
    [
        ({"retries": "3"}, "retries"),
        ({"retries": -1}, "retries"),
        ({"retries": 2.5}, "retries"),
        ({"retries": 2.0}, "retries"),
        ({"retries": True}, "retries"),
        ({"retries": 2**63}, "retries"),
        ({"disabled": "true"}, "disabled"),
        ({"disabled": 1}, "disabled"),
        ({"resume_at_next_scheduled_time": "yes"}, "resume_at_next_scheduled_time"),
        ({"is_done": 0}, "is_done"),
        ({"name": 5}, "name"),
        ({"name": ["a"]}, "name"),
        ({"command": {"a": 1}}, "command"),
        ({"id": 7}, "id"),
        ({"owner": False}, "owner"),
        ({"schedule": 1}, "schedule"),
        ({"epsilon": 60}, "epsilon"),
        ({"on_failure_job": ["x"]}, "on_failure_job"),
        ({"TemplateDelimiters": 1}, "TemplateDelimiters"),
        ({"parent_jobs": "p1"}, "parent_jobs"),
        ({"parent_jobs": ["p1", 2]}, "parent_jobs[1]"),
        ({"parent_jobs": ["p1", None]}, "parent_jobs[1]"),
        ({"dependent_jobs": {"a": 1}}, "dependent_jobs"),
        ({"type": 2}, "type"),
        ({"type": -1}, "type"),
        ({"type": "1"}, "type"),
        ({"type": True}, "type"),
        ({"type": 1.0}, "type"),
        ({"metadata": []}, "metadata"),
        ({"metadata": "x"}, "metadata"),
        ({"metadata": {"last_success": ""}}, "metadata.last_success"),
        ({"metadata": {"last_error": "yesterday"}}, "metadata.last_error"),
        ({"metadata": {"last_attempted_run": 0}}, "metadata.last_attempted_run"),
        ({"metadata": {"success_count": -1}}, "metadata.success_count"),
        ({"metadata": {"error_count": "1"}}, "metadata.error_count"),
        ({"metadata": {"number_of_finished_runs": 1.5}}, "metadata.number_of_finished_runs"),
        ({"next_run_at": ""}, "next_run_at"),
        ({"next_run_at": 5}, "next_run_at"),
        ({"remote_properties": "http://x"}, "remote_properties"),
        ({"remote_properties": {"url": 5}}, "remote_properties.url"),
        ({"remote_properties": {"method": None, "body": {}}}, "remote_properties.body"),
        ({"remote_properties": {"headers": {"X": "a"}}}, "remote_properties.headers"),
        ({"remote_properties": {"headers": {"X": [1]}}}, "remote_properties.headers"),
        ({"remote_properties": {"headers": {"X": ["a", None]}}}, "remote_properties.headers"),
        ({"remote_properties": {"headers": [["X", "a"]]}}, "remote_properties.headers"),
        ({"remote_properties": {"timeout": "30"}}, "remote_properties.timeout"),
        ({"remote_properties": {"timeout": 1.5}}, "remote_properties.timeout"),
        ({"remote_properties": {"timeout": 2**63}}, "remote_properties.timeout"),
        (
            {"remote_properties": {"expected_response_codes": 200}},
            "remote_properties.expected_response_codes",
        ),
        (
            {"remote_properties": {"expected_response_codes": ["200"]}},
            "remote_properties.expected_response_codes[0]",
        ),
        ({"stats": {}}, "stats"),
    ],
)
def test_wrong_types_name_the_field(body: dict, field: str) -> None:
    with pytest.raises(InvalidJob) as info:
        parse(body)
    assert str(info.value).startswith(field + ":"), str(info.value)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"retries": "3"}, 'retries: expected a non-negative integer, got "3"'),
        ({"retries": -1}, "retries: expected a non-negative integer, got -1"),
        ({"retries": 2.5}, "retries: expected a non-negative integer, got 2.5"),
        ({"retries": True}, "retries: expected a non-negative integer, got true"),
        ({"disabled": "true"}, 'disabled: expected true or false, got "true"'),
        ({"type": 2}, "type: must be 0 (local) or 1 (remote), got 2"),
        (
            {"remote_properties": {"headers": {"X": "a"}}},
            'remote_properties.headers: values must be arrays of strings, got "a" for "X"',
        ),
    ],
)
def test_wrong_type_messages(body: dict, message: str) -> None:
    with pytest.raises(InvalidJob, match="^" + __import__("re").escape(message) + "$"):
        parse(body)


def test_large_values_within_range_are_accepted() -> None:
    job = parse({"retries": 2**63 - 1, "remote_properties": {"timeout": -(2**63)}})
    assert job.retries == 2**63 - 1
    assert job.remote_properties.timeout == -(2**63)


# ------------------------------------------------------------------ bad bodies


@pytest.mark.parametrize(
    "body, got",
    [(b"null", "null"), (b"[]", "an array"), (b"[{}]", "an array"), (b"5", "5"),
     (b'"x"', '"x"'), (b"true", "true")],
)
def test_non_object_bodies(body: bytes, got: str) -> None:
    with pytest.raises(InvalidJob, match=f"^body: expected a JSON object, got {got}$"):
        parse(body)


@pytest.mark.parametrize(
    "body, where",
    [
        (b"", "line 1 column 1"),
        (b"{", "line 1 column 2"),
        (b'{"name": }', "line 1 column 10"),
        (b'{"name":"a"} x', "line 1 column 14"),
        (b'{\n  "name": "a",\n}', "line 3 column 1"),
        (b"{'name':'a'}", "line 1 column 2"),
        (b'\xef\xbb\xbf{"name":"a"}', "line 1 column 1"),  # BOM: Go refuses it too
        (b'{"name":"a\tb"}', "line 1 column 11"),  # raw control character
    ],
)
def test_invalid_json(body: bytes, where: str) -> None:
    with pytest.raises(InvalidJob, match=f"^body: invalid JSON at {where}: "):
        parse(body)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_standard_constants_refused(constant: bytes) -> None:
    with pytest.raises(InvalidJob, match="^body: invalid JSON"):
        parse(b'{"retries":' + constant + b"}")


def test_deep_nesting_refused() -> None:
    with pytest.raises(InvalidJob, match="^body: invalid JSON"):
        parse(b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}")


def test_huge_integer_refused() -> None:
    with pytest.raises(InvalidJob, match="^(body|retries)"):
        parse(b'{"retries":' + b"9" * 5000 + b"}")


@pytest.mark.parametrize(
    "body",
    [b'{"name":"\xff"}', b'{"name":"caf\xe9"}', b"\xff\xfe{\x00}\x00", b'{"name":"\xed\xa0\x80"}'],
)
def test_non_utf8_refused(body: bytes) -> None:
    with pytest.raises(InvalidJob, match="^body: not valid UTF-8"):
        parse(body)


def test_unicode_and_escapes() -> None:
    job = parse('{"name":"café ☕ \\u00e9 \\ud83d\\ude00","command":"echo \\"hi\\""}'.encode())
    assert job.name == "café ☕ é 😀"
    assert job.command == 'echo "hi"'


def test_lone_surrogates_become_replacement_characters() -> None:
    job = parse(b'{"name":"a\\ud800b","remote_properties":{"headers":{"\\udc00":["\\ud800"]}}}')
    assert job.name == "a\ufffdb"
    assert dict(job.remote_properties.headers) == {"\ufffd": ("\ufffd",)}
    dumps(job_to_wire(job, None))  # encodable


# ------------------------------------------------------------------ encoding jobs


def test_fresh_job_wire_form_matches_kala_byte_for_byte() -> None:
    job = Job(
        id="0b6f2c1e-7d3a-4e55-6a10-3c9d2e8f4b71",
        name="backup",
        created_at=NOW,
        command="bash -c 'date'",
        schedule="R2/2030-01-01T00:00:00Z/PT10S",
        next_run_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    expected = KALA_EXAMPLE.replace("00:00:00.000000412Z", "00:00:00Z")
    assert dumps(job_to_wire(job, None)) == expected.encode() + b"\n"
    assert dumps(job_to_wire(job, [])) == expected.encode() + b"\n"


def test_empty_lists_are_null_and_values_lists() -> None:
    job = Job(
        id="j", name="n", created_at=NOW, dependent_jobs=("c1", "c2"),
        remote_properties=RemoteProperties(headers={"B": ("2",), "A": ("1", "x")}),
    )
    wire = job_to_wire(job, None)
    assert wire["dependent_jobs"] == ["c1", "c2"]
    assert wire["parent_jobs"] is None
    assert wire["remote_properties"]["headers"] == {"A": ["1", "x"], "B": ["2"]}
    assert list(wire["remote_properties"]["headers"]) == ["A", "B"]
    assert wire["remote_properties"]["expected_response_codes"] is None


def test_stats_list_executed_runs_only() -> None:
    job = Job(id=JOB_ID, name="n", created_at=NOW)
    runs = [
        run(RunStatus.SUCCEEDED),
        run(RunStatus.MISSED, attempts=0),
        run(RunStatus.FAILED, attempts=3),
        run(RunStatus.SKIPPED, attempts=0),
        run(RunStatus.KILLED, attempts=1),
    ]
    stats = job_to_wire(job, runs)["stats"]
    assert [s["success"] for s in stats] == [True, False, False]
    assert [s["number_of_retries"] for s in stats] == [0, 2, 0]
    assert job_to_wire(job, [run(RunStatus.MISSED), run(RunStatus.SKIPPED)])["stats"] is None
    assert job_to_wire(job, None)["stats"] is None
    assert job_to_wire(job, [])["stats"] is None


def test_run_to_stat_both_spellings_equal() -> None:
    stat = run_to_stat(run(RunStatus.FAILED, attempts=3))
    assert list(stat) == STAT_KEYS
    assert stat["job_id"] == JOB_ID
    assert stat["ran_at"] == "2030-01-01T00:00:00.001234Z"
    assert stat["number_of_retries"] == 2
    assert stat["success"] is False
    assert stat["execution_duration"] == 4529133
    for snake, camel in zip(STAT_KEYS[:5], STAT_KEYS[5:]):
        assert stat[snake] == stat[camel]
    assert run_to_stat(run())["Success"] is True


def test_run_to_wire() -> None:
    wire = run_to_wire(
        run(RunStatus.FAILED, attempts=2, exit_status=3, message="exit status 3", output="oops\n")
    )
    assert wire == {
        "id": "r1",
        "job_id": JOB_ID,
        "trigger": "schedule",
        "status": "failed",
        "success": False,
        "scheduled_at": "2030-01-01T00:00:00Z",
        "started_at": "2030-01-01T00:00:00.001234Z",
        "ended_at": "2030-01-01T00:00:04.530367Z",
        "attempts": 2,
        "duration_ns": 4529133,
        "exit_status": 3,
        "message": "exit status 3",
        "missed": 0,
        "output": "oops\n",
    }
    manual = run_to_wire(run(trigger=Trigger.MANUAL, scheduled_at=None))
    assert manual["scheduled_at"] is None and manual["trigger"] == "manual"
    assert manual["success"] is True and manual["exit_status"] is None


def test_stats_to_wire_keys_and_values() -> None:
    wire = stats_to_wire(
        AppStats(
            active_jobs=2, disabled_jobs=1, jobs=3, error_count=4, success_count=10,
            next_run_at=datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC),
            last_attempted_run=datetime(2029, 12, 31, 23, 59, 50, 200000, tzinfo=UTC),
            created=datetime(2029, 12, 31, 23, 59, 59, 900000, tzinfo=UTC),
        )
    )
    assert list(wire) == ["Stats"]
    inner = wire["Stats"]
    assert list(inner) == [
        "active_jobs", "disabled_jobs", "jobs", "error_count", "success_count", "next_run_at",
        "last_attempted_run", "created", "ActiveJobs", "DisabledJobs", "Jobs", "ErrorCount",
        "SuccessCount", "NextRunAt", "LastAttemptedRun", "CreatedAt",
    ]
    # reference §6's example, snake_case part
    assert dumps({"Stats": dict(list(inner.items())[:8])}) == (
        b'{"Stats":{"active_jobs":2,"disabled_jobs":1,"jobs":3,"error_count":4,'
        b'"success_count":10,"next_run_at":"2030-01-01T00:00:10Z",'
        b'"last_attempted_run":"2029-12-31T23:59:50.2Z","created":"2029-12-31T23:59:59.9Z"}}\n'
    )
    pairs = [
        ("active_jobs", "ActiveJobs"), ("disabled_jobs", "DisabledJobs"), ("jobs", "Jobs"),
        ("error_count", "ErrorCount"), ("success_count", "SuccessCount"),
        ("next_run_at", "NextRunAt"), ("last_attempted_run", "LastAttemptedRun"),
        ("created", "CreatedAt"),
    ]
    for snake, camel in pairs:
        assert inner[snake] == inner[camel]


def test_stats_to_wire_never() -> None:
    inner = stats_to_wire(
        AppStats(0, 0, 0, 0, 0, next_run_at=None, last_attempted_run=None, created=NOW)
    )["Stats"]
    assert inner["next_run_at"] == inner["NextRunAt"] == ZERO_TIME
    assert inner["last_attempted_run"] == ZERO_TIME


# ------------------------------------------------------------------ times


@pytest.mark.parametrize(
    "dt, text",
    [
        (None, "0001-01-01T00:00:00Z"),
        (datetime(2024, 5, 1, 12, tzinfo=UTC), "2024-05-01T12:00:00Z"),
        (datetime(2024, 5, 1, 12, 0, 0, 123450, tzinfo=UTC), "2024-05-01T12:00:00.12345Z"),
        (datetime(2024, 5, 1, 12, 0, 0, 100000, tzinfo=UTC), "2024-05-01T12:00:00.1Z"),
        (datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC), "2024-05-01T12:00:00.000001Z"),
        (datetime(2024, 5, 1, 12, 0, 0, 10, tzinfo=UTC), "2024-05-01T12:00:00.00001Z"),
        (datetime(2024, 5, 1, 12, 0, 0, 123456), "2024-05-01T12:00:00.123456Z"),  # naive = UTC
        (
            datetime(2024, 5, 1, 14, 30, 0, 500000, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-01T12:30:00.5Z",
        ),
        (
            datetime(2024, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            "2024-01-01T05:30:00Z",
        ),
        (datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(seconds=30))), "2024-05-01T11:59:30Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
        (datetime(999, 2, 3, 4, 5, 6, tzinfo=UTC), "0999-02-03T04:05:06Z"),
    ],
)
def test_format_time(dt: datetime | None, text: str) -> None:
    assert format_time(dt) == text


def test_format_time_zoneinfo() -> None:
    from zoneinfo import ZoneInfo

    dt = datetime(2024, 7, 1, 14, 0, 0, 250000, tzinfo=ZoneInfo("Europe/Paris"))
    assert format_time(dt) == "2024-07-01T12:00:00.25Z"


@pytest.mark.parametrize(
    "text, dt",
    [
        ("0001-01-01T00:00:00Z", None),
        ("0001-01-01T00:00:00.000000000Z", None),
        ("0001-01-01T00:00:00+00:00", None),
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01t12:00:00z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.5Z", datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T12:00:00.12345Z", datetime(2024, 5, 1, 12, 0, 0, 123450, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123456789Z", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2030-01-01T00:00:00.000000412Z", datetime(2030, 1, 1, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T06:30:00-05:30", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-12-31T23:30:00-01:00", datetime(2025, 1, 1, 0, 30, tzinfo=UTC)),
        ("2024-05-01T12:00:00.25+00:00", datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, dt: datetime | None) -> None:
    got = parse_time(text, "f")
    assert got == dt
    if got is not None:
        assert got.tzinfo is UTC
        assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "", "yesterday", "2024-05-01", "2024-05-01T12:00:00", "2024-05-01 12:00:00Z",
        "2024-05-01T12:00Z", "2024-05-01T12:00:00.Z", "2024-05-01T12:00:00+0200",
        "2024-05-01T12:00:00+02", "2024-13-01T12:00:00Z", "2024-02-30T12:00:00Z",
        "2024-05-01T24:00:00Z", "2024-05-01T12:60:00Z", "2024-05-01T12:00:60Z",
        "2024-05-01T12:00:00+24:00", "2024-05-01T12:00:00+02:60", "0000-01-01T00:00:00Z",
        "0001-01-01T00:30:00+01:00", "9999-12-31T23:00:00-05:00", " 2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00Z ", "２０２４-05-01T12:00:00Z",
    ],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(InvalidJob, match="^metadata.last_error: "):
        parse_time(text, "metadata.last_error")


def test_time_round_trip() -> None:
    for text in ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.12345Z", "2024-05-01T12:00:00.000001Z"]:
        assert format_time(parse_time(text, "f")) == text


# ------------------------------------------------------------------ dumps


def test_dumps_is_compact_utf8_with_newline() -> None:
    assert dumps({"a": [1, None, True], "b": "café ☕"}) == (
        '{"a":[1,null,true],"b":"café ☕"}\n'.encode()
    )
    assert dumps({"job_stats": None}) == b'{"job_stats":null}\n'
    assert dumps({"jobs": {}}) == b'{"jobs":{}}\n'


def test_dumps_escapes_like_go() -> None:
    out = dumps({"c": "a<b>&c\u2028\u2029\n\"\\"})
    assert out == b'{"c":"a\\u003cb\\u003e\\u0026c\\u2028\\u2029\\n\\"\\\\"}\n'
    assert json.loads(out) == {"c": "a<b>&c\u2028\u2029\n\"\\"}


def test_dumps_survives_lone_surrogates() -> None:
    assert dumps({"o": "x\udcffy"}) == '{"o":"x\ufffdy"}\n'.encode()
