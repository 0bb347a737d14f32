"""``PUT /api/v1/job/{id}/`` through falcon's TestClient, over a real service and LMDB store."""

from __future__ import annotations

import json
import random

import pytest

from tests.api.conftest import FUTURE, assert_error, create

LATER = "R/2030-01-01T02:00:00Z/PT1H"


def put(client, job_id: str, body, slash: str = "/"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.simulate_put(f"/api/v1/job/{job_id}{slash}", body=data)


@pytest.mark.parametrize("slash", ["", "/"])
def test_put_replaces_and_answers_the_job_in_kala_format(env, slash):
    client, service, launcher, _ = env
    job_id = create(client, owner="ops@example.com")
    client.simulate_post(f"/api/v1/job/start/{job_id}/")
    launcher.finish(0, output="hello\n")
    resp = put(client, job_id, {
        "name": "renamed", "command": "echo new", "schedule": LATER, "owner": "me@example.com",
        "id": "ignored", "metadata": {"success_count": 99},
    }, slash)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json;charset=UTF-8"
    job = resp.json["job"]
    assert job["id"] == job_id
    assert (job["name"], job["command"], job["schedule"], job["owner"]) == (
        "renamed", "echo new", LATER, "me@example.com")
    assert job["next_run_at"] == "2030-01-01T02:00:00Z"
    assert job["metadata"]["success_count"] == 1  # counters are the server's
    assert len(job["stats"]) == 1
    got = client.simulate_get(f"/api/v1/job/{job_id}/").json["job"]
    assert got == job
    runs = client.simulate_get(f"/api/v1/job/{job_id}/runs/").json["runs"]
    assert [r["output"] for r in runs] == ["hello\n"]


def test_put_remote_job_round_trip(env):
    client, *_ = env
    job_id = create(client)
    remote = {"url": "http://127.0.0.1:9/hook", "method": "POST", "body": "{}",
              "headers": {"X-A": ["1", "2"]}, "timeout": 5, "expected_response_codes": [200, 204]}
    resp = put(client, job_id, {"name": "hook", "type": 1, "schedule": LATER,
                                "remote_properties": remote})
    assert resp.status_code == 200, resp.text
    job = resp.json["job"]
    assert job["type"] == 1
    assert job["remote_properties"] == remote


def test_put_unknown_id_is_404_even_with_a_bad_body(env):
    client, *_ = env
    assert_error(put(client, "nope", {"name": "x", "command": "true"}), 404, "nope")
    assert_error(put(client, "nope", "{"), 404, "nope")


@pytest.mark.parametrize("body,words", [
    ("{", ["JSON"]),
    ("[]", ["object"]),
    ('{"command": "true"}', ["name"]),
    ('{"name": "x"}', ["command"]),
    ('{"name": "x", "command": "true", "schedule": "5/x/y"}', ["schedule"]),
    ('{"name": "x", "command": "true", "schedule": "R0/2000-01-01T00:00:00Z/"}', ["schedule", "past"]),
    ('{"name": "x", "command": "true", "retries": "3"}', ["retries"]),
    ('{"name": "x", "command": "true", "epsilon": "soon"}', ["epsilon"]),
    ('{"name": "x", "type": 1}', ["url"]),
    ('{"name": "x", "command": "true", "on_failure_job": "missing"}', ["on_failure_job", "missing"]),
    ('{"name": "x", "command": "true", "parent_jobs": ["other"]}', ["parent_jobs"]),
])
def test_bad_bodies_are_400_naming_the_field_and_change_nothing(env, body, words):
    client, *_ = env
    job_id = create(client)
    before = client.simulate_get(f"/api/v1/job/{job_id}/").json["job"]
    assert_error(put(client, job_id, body), 400, *words)
    assert client.simulate_get(f"/api/v1/job/{job_id}/").json["job"] == before


def test_links_are_kept_and_a_loop_is_refused(env):
    client, *_ = env
    parent = create(client, name="parent")
    child = create(client, name="child", parent_jobs=[parent], schedule="")
    resp = put(client, child, {"name": "child2", "command": "true"})
    assert resp.status_code == 200, resp.text
    assert resp.json["job"]["parent_jobs"] == [parent]
    resp = put(client, parent, {"name": "parent2", "command": "true", "schedule": LATER})
    assert resp.json["job"]["dependent_jobs"] == [child]
    assert_error(put(client, child, {"name": "c", "command": "true", "on_failure_job": parent}),
                 400, "on_failure_job", "leads back")


def test_fuzzed_put_bodies_never_give_5xx(env):
    client, *_ = env
    job_id = create(client)
    rng = random.Random(9)
    valid = {"name": "x", "command": "true", "schedule": FUTURE, "retries": 1}
    for _ in range(200):
        job = dict(valid)
        key = rng.choice(list(job) + ["type", "metadata", "epsilon", "disabled", "parent_jobs",
                                      "on_failure_job", "remote_properties"])
        job[key] = rng.choice([None, 1, -5, 2.5, "x", "", [], {}, [1], {"a": 1}, True, "R/x/y"])
        resp = put(client, job_id, job)
        assert resp.status_code < 500, (job, resp.text)
        assert "Traceback" not in resp.text


def test_put_with_the_masked_secret_as_read_keeps_the_secret(env):
    client, service, *_ = env
    job_id = create(client, env={"MODE": "full"}, secret_env={"PASS": "hunter2"})
    job = client.simulate_get(f"/api/v1/job/{job_id}/").json["job"]
    assert job["secret_env"] == {"PASS": "***"}
    job["env"] = {"MODE": "quick"}
    resp = put(client, job_id, job)
    assert resp.status_code == 200, resp.text
    assert resp.json["job"]["secret_env"] == {"PASS": "***"}
    stored = service.get_job(job_id)
    assert dict(stored.secret_env) == {"PASS": "hunter2"}
    assert dict(stored.env) == {"MODE": "quick"}
