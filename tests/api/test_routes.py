"""Every route of the API through falcon's TestClient, over a real service and LMDB store."""

from __future__ import annotations

import json
import random

import pytest

from tests.api.conftest import FUTURE, assert_error, create


@pytest.mark.parametrize("slash", ["", "/"])
def test_create_get_list_delete_both_slash_forms(env, slash):
    client, *_ = env
    resp = client.simulate_post("/api/v1/job" + slash, body=json.dumps(
        {"name": "backup", "command": "echo hi", "schedule": FUTURE}))
    assert resp.status_code == 201
    assert resp.headers["content-type"] == "application/json;charset=UTF-8"
    job_id = resp.json["id"]
    got = client.simulate_get(f"/api/v1/job/{job_id}{slash}")
    assert got.status_code == 200
    job = got.json["job"]
    assert list(job) == [
        "name", "id", "command", "owner", "disabled", "dependent_jobs", "parent_jobs",
        "on_failure_job", "schedule", "retries", "epsilon", "next_run_at",
        "TemplateDelimiters", "resume_at_next_scheduled_time", "metadata", "type",
        "remote_properties", "stats", "is_done",
    ]
    assert job["next_run_at"] == "2030-01-01T00:10:00Z" and job["stats"] is None
    listing = client.simulate_get("/api/v1/job" + slash).json["jobs"]
    assert list(listing) == [job_id]
    assert client.simulate_delete(f"/api/v1/job/{job_id}{slash}").status_code == 204
    assert_error(client.simulate_get(f"/api/v1/job/{job_id}{slash}"), 404, job_id)


def test_go_client_and_curl_bodies_are_accepted(env):
    client, *_ = env
    body = json.dumps({"name": "x", "command": "true", "schedule": FUTURE})
    for headers in ({}, {"Content-Type": "application/x-www-form-urlencoded"}):
        resp = client.simulate_post("/api/v1/job/", body=body, headers=headers)
        assert resp.status_code == 201


def test_delete_all_always_204(env):
    client, service, *_ = env
    assert client.simulate_delete("/api/v1/job/all/").status_code == 204
    parent = create(client)
    create(client, parent_jobs=[parent])
    create(client)
    assert client.simulate_delete("/api/v1/job/all").status_code == 204
    assert client.simulate_get("/api/v1/job/").json == {"jobs": {}}


def test_start_enable_disable_and_stats(env):
    client, service, launcher, store = env
    job_id = create(client)
    assert client.simulate_post(f"/api/v1/job/start/{job_id}/").status_code == 204
    launcher.finish(0, output="hi\n")
    stats = client.simulate_get(f"/api/v1/job/stats/{job_id}/").json["job_stats"]
    assert len(stats) == 1 and stats[0]["success"] is True and stats[0]["Success"] is True
    assert stats[0]["job_id"] == stats[0]["JobId"] == job_id
    runs = client.simulate_get(f"/api/v1/job/{job_id}/runs/").json["runs"]
    assert runs[0]["output"] == "hi\n" and runs[0]["trigger"] == "manual"
    assert client.simulate_post(f"/api/v1/job/disable/{job_id}").status_code == 204
    assert client.simulate_get(f"/api/v1/job/{job_id}").json["job"]["disabled"] is True
    app = client.simulate_get("/api/v1/stats/").json["Stats"]
    assert app["disabled_jobs"] == app["DisabledJobs"] == 1
    assert app["success_count"] == app["SuccessCount"] == 1
    assert client.simulate_post(f"/api/v1/job/enable/{job_id}/").status_code == 204
    assert client.simulate_get("/api/v1/stats").json["Stats"]["active_jobs"] == 1


def test_job_stats_null_for_a_job_that_never_ran(env):
    client, *_ = env
    job_id = create(client)
    assert client.simulate_get(f"/api/v1/job/stats/{job_id}/").json == {"job_stats": None}


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/v1/job/stats/nope/"),
    ("POST", "/api/v1/job/start/nope/"),
    ("POST", "/api/v1/job/enable/nope/"),
    ("POST", "/api/v1/job/disable/nope/"),
    ("DELETE", "/api/v1/job/nope/"),
    ("GET", "/api/v1/job/nope/runs/"),
])
def test_unknown_id_is_404_naming_it(env, method, path):
    client, *_ = env
    assert_error(client.simulate_request(method, path), 404, "nope")


@pytest.mark.parametrize("method,path", [
    ("PUT", "/api/v1/job/"),
    ("GET", "/api/v1/job/all/"),
    ("GET", "/api/v1/job/start/x/"),
    ("POST", "/api/v1/stats/"),
])
def test_wrong_method_is_405_with_allow(env, method, path):
    client, *_ = env
    resp = client.simulate_request(method, path)
    assert resp.status_code == 405
    assert resp.headers.get("allow")
    assert "error" in resp.json


def test_unknown_path_is_json_404(env):
    client, *_ = env
    assert_error(client.simulate_get("/api/v1/nothing/here"), 404)


def test_body_over_one_mib_is_413(env):
    client, *_ = env
    body = json.dumps({"name": "x", "command": "true", "pad": "a" * (1024 * 1024)})
    assert_error(client.simulate_post("/api/v1/job/", body=body), 413)


@pytest.mark.parametrize("body,words", [
    ("{", ["JSON"]),
    ("null", ["object"]),
    ("[]", ["object"]),
    ("{}", ["name"]),
    ('{"name": "x"}', ["command"]),
    ('{"name": "x", "command": "true", "schedule": "5/x/y"}', ["schedule"]),
    ('{"name": "x", "command": "true", "schedule": "/x/y"}', ["schedule"]),
    ('{"name": "x", "command": "true", "schedule": "R5/2030-01-01T00:00:00Z/PT0S"}', ["interval"]),
    ('{"name": "x", "command": "true", "retries": "3"}', ["retries"]),
    ('{"name": "x", "command": "true", "retries": -1}', ["retries"]),
    ('{"name": "x", "command": "true", "type": 2}', ["type"]),
    ('{"name": "x", "type": 1}', ["url"]),
    ('{"name": "x", "type": 1, "remote_properties": {"url": "file:///etc/passwd"}}', ["url"]),
    ('{"name": "x", "command": "echo \'unbalanced"}', ["command"]),
    ('{"name": "x", "command": "true", "parent_jobs": ["missing"]}', ["missing"]),
    ('{"name": "x", "command": "true", "on_failure_job": "missing"}', ["missing"]),
    ('{"name": "x", "command": "true", "schedule": "R0/2000-01-01T00:00:00Z/"}', ["past"]),
])
def test_bad_jobs_are_400_naming_the_problem(env, body, words):
    client, service, *_ = env
    assert_error(client.simulate_post("/api/v1/job/", body=body), 400, *words)
    assert service.list_jobs() == []


def test_fuzzed_bodies_never_give_5xx(env):
    client, *_ = env
    rng = random.Random(20261127)
    pieces = ['{', '}', '[', ']', '"', ':', ',', 'null', 'true', '1e999', '-1', '"name"',
              '"command"', '"schedule"', '"R/"', '"\\u0000"', '"retries"', '"type"', '"\\ud800"',
              '"remote_properties"', '"headers"', '{"a":', '"P1D"', '2.5', '"x"', '\xff', ' ']
    valid = {"name": "x", "command": "true", "schedule": FUTURE, "retries": 1,
             "remote_properties": {"headers": {"a": ["b"]}}}
    for i in range(400):
        if i % 2:
            body = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        else:
            job = dict(valid)
            key = rng.choice(list(job) + ["type", "metadata", "epsilon", "disabled", "parent_jobs"])
            job[key] = rng.choice([None, 1, -5, 2.5, "x", "", [], {}, [1], {"a": 1}, True, "R/x/y"])
            body = json.dumps(job)
        resp = client.simulate_post("/api/v1/job/", body=body.encode("utf-8", "surrogatepass"))
        assert resp.status_code < 500, (body, resp.text)
        assert "Traceback" not in resp.text


def test_kala_crash_cases_are_handled(env):
    """kala-reference §11.2: inputs that crash Kala must be clean 4xx/2xx here."""
    client, service, launcher, store = env
    for schedule in ("5/2030-01-01T00:00:00Z/PT1S", "/2030-01-01T00:00:00Z/PT1S", "r5/x/y"):
        assert_error(client.simulate_post("/api/v1/job/", body=json.dumps(
            {"name": "x", "command": "true", "schedule": schedule})), 400, "schedule")
    # A child with schedule + epsilon + retries that fails (a nil dereference in Kala).
    parent = create(client)
    child = create(client, parent_jobs=[parent], epsilon="PT5S", retries=2, schedule=FUTURE)
    client.simulate_post(f"/api/v1/job/start/{child}/")
    for _ in range(3):
        launcher.finish(1)
    assert not launcher.pending
    # dependent_jobs posted by a client is not trusted: deleting never follows it.
    other = create(client, dependent_jobs=[parent, "ghost"])
    assert client.simulate_get(f"/api/v1/job/{other}/").json["job"]["dependent_jobs"] is None
    assert client.simulate_delete(f"/api/v1/job/{other}/").status_code == 204
    assert client.simulate_delete(f"/api/v1/job/{child}/").status_code == 204
    assert client.simulate_get(f"/api/v1/job/{parent}/").json["job"]["dependent_jobs"] is None
    # Zero interval with a repeat is refused instead of re-running back-to-back.
    assert_error(client.simulate_post("/api/v1/job/", body=json.dumps(
        {"name": "x", "command": "true", "schedule": "R/2030-01-01T00:00:00Z/PT0S"})), 400)
    assert client.simulate_delete("/api/v1/job/all/").status_code == 204


def test_next_fire_times_of_a_job_and_of_a_schedule(env):
    client, *_ = env
    job_id = create(client, schedule="R2/2030-01-31T00:00:00Z/P1M")
    got = client.simulate_get(f"/api/v1/job/{job_id}/next", params={"n": "5"}).json
    assert got == {"next": ["2030-01-31T00:00:00Z", "2030-02-28T00:00:00Z", "2030-03-31T00:00:00Z"]}
    got = client.simulate_get("/api/v1/schedule/next/",
                              params={"schedule": "R/2030-01-01T00:00:00Z/PT1H", "n": "2"}).json
    assert got == {"next": ["2030-01-01T00:00:00Z", "2030-01-01T01:00:00Z"]}
    assert_error(client.simulate_get("/api/v1/schedule/next", params={"schedule": "5/x/y"}),
                 400, "schedule")
    assert_error(client.simulate_get(f"/api/v1/job/{job_id}/next", params={"n": "0"}), 400)
