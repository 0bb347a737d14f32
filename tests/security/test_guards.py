"""The guards middleware through falcon's TestClient: Host, Origin, scopes, limits, audit."""

from __future__ import annotations

import json
import logging

import pytest
from falcon import testing

from kalad.api.app import create_app
from kalad.api.guards import Guards, Policy, RateLimiter, host_of, required_scope
from kalad.tokens import Token, TokenRegistry, digest
from tests.conftest import FakeClock, ManualLauncher, build_service
from kalad.store.memory import MemoryStore

FUTURE = "R/2030-01-01T00:10:00Z/PT10S"
TOKENS = {"reader": {"read"}, "writer": {"write"}, "runner": {"run"}, "boss": {"admin"}}


def registry() -> TokenRegistry:
    return TokenRegistry(Token(name, frozenset(scopes), digest(f"tok-{name}"))
                         for name, scopes in TOKENS.items())


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer tok-{name}"}


def make_client(**policy) -> testing.TestClient:
    clock = FakeClock()
    service = build_service(MemoryStore(), ManualLauncher(clock), clock)
    service.load()
    policy.setdefault("allowed_hosts", frozenset({"*"}))
    return testing.TestClient(create_app(service, Policy(**policy)))


def create(client, headers=None, **fields):
    body = json.dumps({"name": "j", "command": "true", "schedule": FUTURE, **fields})
    return client.simulate_post("/api/v1/job/", body=body, headers=headers or {})


@pytest.mark.parametrize("method,path,scope", [
    ("GET", "/api/v1/job/", "read"),
    ("GET", "/api/v1/health/", None),
    ("GET", "/api/v1/health", None),
    ("HEAD", "/api/v1/stats", "read"),
    ("POST", "/api/v1/health/", "write"),
    ("POST", "/api/v1/job/", "write"),
    ("PUT", "/api/v1/job/abc/", "write"),
    ("DELETE", "/api/v1/job/abc", "write"),
    ("DELETE", "/api/v1/job/all/", "admin"),
    ("POST", "/api/v1/job/start/abc/", "run"),
    ("POST", "/api/v1/job/enable/abc/", "write"),
    ("POST", "/api/v1/job/disable/abc", "write"),
    ("GET", "/nowhere", "read"),
    ("GET", "/webui/", None),
    ("GET", "/webui/js/app.js", None),
    ("GET", "/", None),
    ("POST", "/webui/", "write"),
    ("GET", "/webuix", "read"),
])
def test_required_scopes(method, path, scope):
    assert required_scope(method, path) == scope


@pytest.mark.parametrize("header,host", [
    ("localhost:8000", "localhost"), ("[::1]:8000", "::1"), ("[::1]", "::1"),
    ("Kalad.Example.", "kalad.example"), ("10.0.0.1:80", "10.0.0.1"),
])
def test_host_of(header, host):
    assert host_of(header) == host


def test_without_tokens_nothing_needs_one():
    client = make_client()
    assert create(client).status_code == 201
    assert client.simulate_get("/api/v1/job/").status_code == 200


def test_tokens_scopes_and_challenges():
    client = make_client(tokens=registry())
    resp = client.simulate_get("/api/v1/job/")
    assert resp.status_code == 401 and resp.json["error"].startswith("this API needs a token")
    assert resp.headers["www-authenticate"] == 'Bearer realm="kalad"'
    resp = client.simulate_get("/api/v1/job/", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401 and "not valid" in resp.json["error"]
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    resp = client.simulate_get("/api/v1/job/", headers={"Authorization": "Basic dG9rLWJvc3M="})
    assert resp.status_code == 401
    resp = create(client, auth("reader"))
    assert resp.status_code == 403 and "'write' scope" in resp.json["error"]
    assert 'error="insufficient_scope"' in resp.headers["www-authenticate"]
    job_id = create(client, auth("writer")).json["id"]
    assert client.simulate_get(f"/api/v1/job/{job_id}", headers=auth("reader")).status_code == 200
    assert client.simulate_get("/api/v1/job/", headers=auth("writer")).status_code == 403
    assert client.simulate_post(f"/api/v1/job/start/{job_id}",
                                headers=auth("writer")).status_code == 403
    assert client.simulate_post(f"/api/v1/job/start/{job_id}",
                                headers=auth("runner")).status_code == 204
    assert client.simulate_delete("/api/v1/job/all", headers=auth("writer")).status_code == 403
    assert client.simulate_delete("/api/v1/job/all", headers=auth("boss")).status_code == 204
    resp = client.simulate_get("/api/v1/health")
    assert resp.status_code == 200 and resp.json == {"status": "ok"}


def test_the_host_allowlist():
    client = make_client(allowed_hosts=frozenset({"kalad.example"}), listen_host="127.0.0.1")
    for host in ("localhost:8000", "127.0.0.1:1", "[::1]:8000", "kalad.example",
                 "KALAD.example:443", "10.1.2.3:8000", "[2001:db8::1]:8000"):
        resp = client.simulate_get("/api/v1/job/", headers={"Host": host})
        assert resp.status_code == 200, (host, resp.text)
    for host in ("evil.example", "evil.example:8000", "localhost.evil.example",
                 "kalad.example.evil"):
        resp = client.simulate_get("/api/v1/health/", headers={"Host": host})
        assert resp.status_code == 403 and "allowed_hosts" in resp.json["error"], host
    listen_name = make_client(allowed_hosts=frozenset(), listen_host="kalad.lan")
    resp = listen_name.simulate_get("/api/v1/job/", headers={"Host": "kalad.lan:80"})
    assert resp.status_code == 200


def test_the_origin_check():
    client = make_client(allowed_hosts=frozenset({"proxy.example"}))
    host = {"Host": "127.0.0.1:8000"}
    refused = [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:3000"},     # another port is another site
        {"Origin": "https://127.0.0.1:8000"},    # another scheme too
        {"Sec-Fetch-Site": "cross-site"},
    ]
    for extra in refused:
        resp = create(client, {**host, **extra})
        assert resp.status_code == 403, extra
    assert client.simulate_get("/api/v1/job/", headers=host).json == {"jobs": {}}
    allowed = [
        {},
        {"Content-Type": "application/x-www-form-urlencoded"},  # curl -d
        {"Origin": "http://127.0.0.1:8000"},
        {"Origin": "https://proxy.example"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8000"},
    ]
    for extra in allowed:
        assert create(client, {**host, **extra}).status_code == 201, extra
    # reads are never refused for their Origin, and no CORS header is ever granted
    resp = client.simulate_get("/api/v1/job/", headers={**host, "Origin": "http://evil.example"})
    assert resp.status_code == 200 and "access-control-allow-origin" not in resp.headers
    resp = client.simulate_options("/api/v1/job/", headers={
        **host, "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert not any(h.startswith("access-control") for h in resp.headers)


def test_the_body_limit_is_a_setting():
    client = make_client(max_body=2048)
    resp = create(client, command="echo " + "x" * 3000)
    assert resp.status_code == 413 and "2048" in resp.json["error"]
    assert create(client, command="echo " + "x" * 1000).status_code == 201


def test_the_rate_limiter_refills():
    clock = FakeClock()
    limiter = RateLimiter(2.0, 3, clock=clock.monotonic)
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0  # every key has its own bucket
    clock.advance(0.5)
    assert limiter.take("a") == 0 and limiter.take("a") > 0
    clock.advance(10)
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert RateLimiter(0, 1).take("a") == 0  # 0: off


def test_rate_limit_answers_429_with_retry_after():
    client = make_client(tokens=registry(), rate=1.0, burst=2)
    statuses = [client.simulate_get("/api/v1/job/", headers=auth("reader")).status_code
                for _ in range(3)]
    assert statuses == [200, 200, 429]
    resp = client.simulate_get("/api/v1/job/", headers=auth("reader"))
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
    assert client.simulate_get("/api/v1/job/", headers=auth("writer")).status_code == 403
    assert client.simulate_get("/api/v1/health/").status_code == 200  # never limited
    # guessing tokens is limited per address, before the token is checked
    bad = [client.simulate_get("/api/v1/job/", headers={"Authorization": f"Bearer g{i}"})
           .status_code for i in range(3)]
    assert bad == [401, 401, 429]


def test_every_mutating_request_is_audited(caplog):
    caplog.set_level(logging.INFO, logger="kalad.audit")
    client = make_client(tokens=registry())
    job_id = create(client, auth("writer")).json["id"]
    client.simulate_post(f"/api/v1/job/disable/{job_id}/", headers=auth("writer"))
    client.simulate_delete("/api/v1/job/all", headers=auth("reader"))
    client.simulate_post("/api/v1/job/", body="{}")
    client.simulate_get("/api/v1/job/", headers=auth("reader"))
    lines = [r.getMessage() for r in caplog.records if r.name == "kalad.audit"]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "kalad.audit")
    assert lines == [
        f"audit token=writer addr=127.0.0.1 method=POST route=/api/v1/job job={job_id} status=201",
        f"audit token=writer addr=127.0.0.1 method=POST route=/api/v1/job/disable/{{job_id}} "
        f"job={job_id} status=204",
        "audit token=reader addr=127.0.0.1 method=DELETE route=/api/v1/job/all job=- status=403",
        "audit addr=127.0.0.1 method=POST route=/api/v1/job job=- status=401",
    ]


def test_guards_can_be_built_from_an_empty_policy():
    assert Guards(Policy()) is not None


def test_audit_lines_cannot_be_forged_through_the_path(caplog):
    caplog.set_level(logging.INFO, logger="kalad.audit")
    client = make_client()
    client.simulate_post("/api/v1/job/start/x%0Aaudit%20token=admin")
    lines = [r.getMessage() for r in caplog.records if r.name == "kalad.audit"]
    assert lines == ["audit addr=127.0.0.1 method=POST route=/api/v1/job/start/{job_id} "
                     "job=x%0Aaudit%20token=admin status=404"]
