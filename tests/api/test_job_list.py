"""GET /job/: Kala's full list (streamed), pages with ?limit=&offset=, and the JSON cache."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.conftest import create


def test_full_list_is_kalas_shape_in_creation_order(env):
    client, *_ = env
    ids = [create(client, name=f"j{i}") for i in range(5)]
    resp = client.simulate_get("/api/v1/job/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    assert list(resp.json) == ["jobs"]
    assert list(resp.json["jobs"]) == ids
    assert resp.json["jobs"][ids[2]]["name"] == "j2"


def test_empty_list(env):
    client, *_ = env
    assert client.simulate_get("/api/v1/job/").json == {"jobs": {}}
    assert client.simulate_get("/api/v1/job/", params={"limit": 10}).json == \
        {"jobs": {}, "total": 0, "offset": 0, "limit": 10}


def test_pages_cover_every_job_once(env, monkeypatch):
    client, *_ = env
    ids = [create(client, name=f"j{i}") for i in range(7)]
    seen = []
    for offset in range(0, 9, 3):
        page = client.simulate_get("/api/v1/job/", params={"limit": 3, "offset": offset}).json
        assert (page["total"], page["offset"], page["limit"]) == (7, offset, 3)
        seen += list(page["jobs"])
    assert seen == ids


def test_list_streams_past_one_chunk(env, monkeypatch):
    client, *_ = env
    monkeypatch.setattr("kalad.api.jobs.STREAM_CHUNK", 2)
    ids = [create(client, name=f"j{i}") for i in range(5)]
    assert list(client.simulate_get("/api/v1/job/").json["jobs"]) == ids


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "offset=-1", "limit=10001"])
def test_bad_paging_is_a_400_naming_the_parameter(env, query):
    client, *_ = env
    resp = client.simulate_get("/api/v1/job/", query_string=query)
    assert resp.status_code == 400, resp.text
    assert query.split("=")[0] in resp.text


def test_list_and_get_show_a_new_run_and_a_change(env):
    client, service, launcher, _ = env
    job_id = create(client)
    before = client.simulate_get(f"/api/v1/job/{job_id}/").json["job"]
    assert before["stats"] is None and client.simulate_get("/api/v1/job/").json["jobs"][job_id] == before
    client.simulate_post(f"/api/v1/job/start/{job_id}/")
    launcher.finish(0)
    after = client.simulate_get("/api/v1/job/").json["jobs"][job_id]
    assert after["metadata"]["success_count"] == 1 and len(after["stats"]) == 1
    client.simulate_post(f"/api/v1/job/disable/{job_id}/")
    assert client.simulate_get(f"/api/v1/job/{job_id}/").json["job"]["disabled"] is True


def test_retention_pruning_refreshes_cached_stats(env):
    client, service, launcher, _ = env
    job_id = create(client)
    client.simulate_post(f"/api/v1/job/start/{job_id}/")
    launcher.finish(0)
    assert len(client.simulate_get(f"/api/v1/job/{job_id}/").json["job"]["stats"]) == 1
    assert service.prune_runs(service.now() + timedelta(seconds=1)) == 1
    assert client.simulate_get(f"/api/v1/job/{job_id}/").json["job"]["stats"] is None
    assert client.simulate_get("/api/v1/job/").json["jobs"][job_id]["stats"] is None


def test_list_while_the_store_is_down_shows_jobs_without_runs(env, monkeypatch):
    from kalad.core.errors import StoreUnavailable

    client, _, _, store = env
    ids = [create(client, name=f"j{i}") for i in range(3)]

    def down(*args, **kwargs):
        raise StoreUnavailable("store down")

    monkeypatch.setattr(store, "list_runs", down)
    resp = client.simulate_get("/api/v1/job/")
    assert resp.status_code == 200
    assert list(resp.json["jobs"]) == ids and all(
        job["stats"] is None for job in resp.json["jobs"].values())
