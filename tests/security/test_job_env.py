"""A job's own environment, with write-only secret values: wire, store, child, checks."""

from __future__ import annotations

import json

import pytest

from kalad.api.kala_json import dumps, job_to_wire, parse_job
from kalad.core.attempt import build_attempt
from kalad.core.errors import InvalidJob
from kalad.core.job import check_definition, keep_secrets
from kalad.store.codec import decode_job, encode_job
from tests.conftest import T0, make_job

BODY = {"name": "db", "command": "backup", "env": {"B": "2", "A": "1"},
        "secret_env": {"PGPASSWORD": "hunter2"}}


def parsed(body=BODY):
    return parse_job(json.dumps(body).encode(), job_id="j", now=T0)


def test_env_is_read_stored_and_shown_secrets_masked():
    job = parsed()
    assert job.env == (("A", "1"), ("B", "2")) and job.secret_env == (("PGPASSWORD", "hunter2"),)
    check_definition(job)
    wire = job_to_wire(job, None)
    assert wire["env"] == {"A": "1", "B": "2"} and wire["secret_env"] == {"PGPASSWORD": "***"}
    assert b"hunter2" not in dumps(wire)
    assert list(wire)[-2:] == ["env", "secret_env"]  # after all of Kala's fields
    assert decode_job(encode_job(job)) == job


def test_jobs_without_env_look_and_store_as_before():
    job = parsed({"name": "x", "command": "true"})
    assert job.env == () and "env" not in job_to_wire(job, None)
    assert b"env" not in encode_job(job)
    old = b'{"v":1,"id":"j1","n":"n","c":1000000}'  # a record from before env existed
    assert decode_job(old).env == () and decode_job(old).secret_env == ()


def test_the_child_gets_both_but_not_over_kalads_own():
    attempt = build_attempt(parsed(), "run-1", 1, None, {"PATH": "/bin", "A": "base"})
    assert attempt.env["A"] == "1" and attempt.env["PGPASSWORD"] == "hunter2"
    assert attempt.env["KALAD_JOB_ID"] == "j" and attempt.env["PATH"] == "/bin"


@pytest.mark.parametrize("body,why", [
    ({"env": {"1X": "v"}}, "is not a variable name"),
    ({"env": {"A=B": "v"}}, "is not a variable name"),
    ({"secret_env": {"KALAD_JOB_ID": "v"}}, "KALAD_"),
    ({"env": {"A": "x\u0000y"}}, "NUL"),
    ({"env": {"A": "1"}, "secret_env": {"A": "2"}}, "also in env"),
])
def test_bad_environments_are_refused(body, why):
    job = parsed({"name": "x", "command": "true", **body})
    with pytest.raises(InvalidJob, match=why):
        check_definition(job)


def test_wrong_types_are_refused_without_echoing_secrets():
    with pytest.raises(InvalidJob, match=r"secret_env: values must be strings, got a "
                                         r"non-string value") as info:
        parsed({"name": "x", "command": "true", "secret_env": {"K": 12345}})
    assert "12345" not in str(info.value)
    with pytest.raises(InvalidJob, match="env: expected an object"):
        parsed({"name": "x", "command": "true", "env": ["A=1"]})


def test_an_update_sending_the_mask_keeps_the_stored_secret():
    old = parsed()
    new = parsed({**BODY, "secret_env": {"PGPASSWORD": "***"}})
    assert keep_secrets(new, old).secret_env == (("PGPASSWORD", "hunter2"),)
    changed = parsed({**BODY, "secret_env": {"PGPASSWORD": "new"}})
    assert keep_secrets(changed, old).secret_env == (("PGPASSWORD", "new"),)
    assert make_job("x").secret_env == ()
