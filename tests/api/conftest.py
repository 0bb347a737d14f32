"""The API over a real service and LMDB store, through falcon's TestClient."""

from __future__ import annotations

import json

import pytest
from falcon import testing

from kalad.api.app import create_app
from kalad.store.lmdb import LmdbStore
from tests.conftest import FakeClock, ManualLauncher, build_service

FUTURE = "R/2030-01-01T00:10:00Z/PT10S"


@pytest.fixture
def env(tmp_path):
    """(client, service, launcher, store) on a fake clock."""
    clock = FakeClock()
    launcher = ManualLauncher(clock)
    store = LmdbStore(tmp_path / "lmdb")
    service = build_service(store, launcher, clock)
    service.load()
    client = testing.TestClient(create_app(service))
    yield client, service, launcher, store
    store.close()


def create(client, **fields) -> str:
    """POST a job (a far-future schedule unless given); its id."""
    body = {"name": "j", "command": "true", "schedule": FUTURE, **fields}
    resp = client.simulate_post("/api/v1/job/", body=json.dumps(body))
    assert resp.status_code == 201, resp.text
    return resp.json["id"]


def assert_error(resp, status: int, *words: str) -> None:
    """A JSON error with this status whose message holds every one of ``words``."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    message = resp.json["error"]
    for word in words:
        assert word in message, message
