"""The real ``kalad serve`` over real HTTP: tokens on every route, refusals, limits, secrets.

Tokens are made with ``kalad token new --install``, as an admin would.
"""

from __future__ import annotations

import http.client
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kalad.store.sqlite import SqliteStore
from tests.conftest import wait_until
from tests.e2e.daemon import Daemon, free_port

FUTURE = "R/2099-01-01T00:00:00Z/PT1H"
SCOPES = {"reader": "read", "writer": "write", "runner": "run", "boss": "admin",
          "operator": "read,run"}


def call(daemon: Daemon, method: str, path: str, *, token: str | None = None,
         body: object = None, headers: dict[str, str] | None = None):
    """One request; returns (status, headers, parsed JSON body or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    try:
        conn.request(method, "/api/v1" + path, body=data, headers=sent)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, \
            (json.loads(raw) if raw else None)
    finally:
        conn.close()


def new_token(tokens_dir: Path, name: str, scopes: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "kalad.cli.kalad", "token", "new", name, "--scopes", scopes,
         "--tokens-dir", str(tokens_dir), "--install"],
        capture_output=True, text=True, timeout=30, check=True)
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A daemon listening on every interface, which tokens make allowed."""
    state = tmp_path_factory.mktemp("guarded")
    tokens = {name: new_token(state / "tokens.d", name, scopes) for name, scopes in SCOPES.items()}
    daemon = Daemon(state, "--interface", "0.0.0.0", "--tokens-dir", str(state / "tokens.d"),
                    "--rate-limit", "0", "--config", "/dev/null").start()
    yield daemon, tokens
    daemon.stop()


def admin_job(daemon, tokens) -> str:
    status, _, body = call(daemon, "POST", "/job/", token=tokens["boss"],
                           body={"name": "m", "command": "true", "schedule": FUTURE})
    assert status == 201, body
    return body["id"]


JOB = {"name": "m", "command": "true", "schedule": FUTURE}
# (method, path with {id}, body, scope needed, status when allowed)
ROUTES = [
    ("GET", "/job/", None, "read", 200),
    ("POST", "/job/", JOB, "write", 201),
    ("GET", "/job/{id}/", None, "read", 200),
    ("PUT", "/job/{id}/", JOB, "write", 200),
    ("DELETE", "/job/{id}/", None, "write", 204),
    ("GET", "/job/stats/{id}/", None, "read", 200),
    ("GET", "/job/{id}/runs/", None, "read", 200),
    ("GET", "/job/{id}/next/", None, "read", 200),
    ("GET", "/schedule/next/?schedule=R/2099-01-01T00:00:00Z/PT1H", None, "read", 200),
    ("POST", "/job/start/{id}/", None, "run", 204),
    ("POST", "/job/enable/{id}/", None, "write", 204),
    ("POST", "/job/disable/{id}/", None, "write", 204),
    ("GET", "/stats/", None, "read", 200),
    ("DELETE", "/job/all/", None, "admin", 204),
]
WRONG = {"read": "runner", "write": "operator", "run": "writer", "admin": "writer"}
RIGHT = {"read": "reader", "write": "writer", "run": "runner", "admin": "boss"}


@pytest.mark.parametrize("who", ["none", "bad", "wrong", "right", "admin"])
@pytest.mark.parametrize("method,path,body,scope,ok", ROUTES,
                         ids=[f"{r[0]} {r[1].split('?')[0]}" for r in ROUTES])
def test_auth_matrix(guarded, who, method, path, body, scope, ok):
    daemon, tokens = guarded
    job_id = admin_job(daemon, tokens)
    token = {"none": None, "bad": "kalad_not-a-token", "wrong": tokens[WRONG[scope]],
             "right": tokens[RIGHT[scope]], "admin": tokens["boss"]}[who]
    status, headers, answer = call(daemon, method, path.format(id=job_id), token=token, body=body)
    if who in ("none", "bad"):
        assert status == 401, answer
        assert headers["www-authenticate"].startswith('Bearer realm="kalad"')
        assert headers["content-type"].startswith("application/json") and answer["error"]
    elif who == "wrong":
        assert status == 403, answer
        assert 'error="insufficient_scope"' in headers["www-authenticate"]
        assert f"'{scope}' scope" in answer["error"]
    else:
        assert status == ok, answer
    # a refused request changed nothing
    if who in ("none", "bad", "wrong") and method != "GET":
        status, _, answer = call(daemon, "GET", f"/job/{job_id}/", token=tokens["reader"])
        assert status == 200 and answer["job"]["disabled"] is False


def test_health_needs_no_token_and_says_nothing_else(guarded):
    daemon, _ = guarded
    status, headers, body = call(daemon, "GET", "/health/")
    assert status == 200 and body == {"status": "ok"}
    assert call(daemon, "GET", "/health")[0] == 200
    assert call(daemon, "GET", "/nowhere/")[0] == 401  # unknown routes leak nothing either


def test_mutations_are_audited_with_the_token_name(guarded):
    daemon, tokens = guarded
    job_id = admin_job(daemon, tokens)
    call(daemon, "POST", f"/job/start/{job_id}/", token=tokens["reader"])
    # refused before routing: the route is the path as sent
    wait_until(lambda: f"audit token=reader addr=127.0.0.1 method=POST "
                       f"route=/api/v1/job/start/{job_id} job=- status=403" in daemon.log())
    assert f"INFO kalad.audit: audit token=boss addr=127.0.0.1 method=POST route=/api/v1/job " \
           f"job={job_id} status=201" in daemon.log()


def kalad_serve(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kalad.cli.kalad", "serve", "--port", str(free_port()),
         "--lmdb-path", str(tmp_path / "lmdb"), "--config", "/dev/null", *args],
        capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("where", [["--interface", "0.0.0.0"], ["--interface", "::"],
                                   ["--port", "0.0.0.0:0"]])
def test_non_loopback_without_tokens_refuses_to_start(tmp_path, where):
    proc = kalad_serve(tmp_path, "--tokens-dir", str(tmp_path / "none"), *where)
    assert proc.returncode == 78, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kalad: error: refusing to listen on ")
    assert "without API tokens" in lines[0]
    assert not (tmp_path / "lmdb").exists()  # refused before the store was touched


@pytest.mark.parametrize("command", [["check-config"], ["serve", "--daemon"]])
def test_check_config_and_daemon_mode_refuse_too(tmp_path, command):
    proc = subprocess.run(
        [sys.executable, "-m", "kalad.cli.kalad", *command, "--config", "/dev/null",
         "--interface", "0.0.0.0", "--tokens-dir", str(tmp_path), "--lmdb-path",
         str(tmp_path / "lmdb"), "--pidfile", str(tmp_path / "pid")],
        capture_output=True, text=True, timeout=30)
    assert proc.returncode == 78 and "without API tokens" in proc.stderr
    assert not (tmp_path / "pid").exists()


def test_a_malformed_token_file_refuses_to_start(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "x.token").write_text("name=x scopes=read\n")
    proc = kalad_serve(tmp_path, "--tokens-dir", str(tmp_path / "t"))
    assert proc.returncode == 78 and "missing sha256" in proc.stderr


@pytest.fixture(scope="module")
def open_daemon(tmp_path_factory):
    """A loopback daemon without tokens: today's setup."""
    state = tmp_path_factory.mktemp("open")
    daemon = Daemon(state, "--tokens-dir", str(state / "none"), "--config", "/dev/null",
                    "--allowed-hosts", "kalad.example", "-v").start()
    yield daemon
    daemon.stop()


def test_a_foreign_host_is_refused(open_daemon, guarded):
    for daemon, token in ((open_daemon, None), (guarded[0], guarded[1]["boss"])):
        status, _, body = call(daemon, "GET", "/job/", token=token,
                               headers={"Host": "evil.example"})
        assert status == 403 and "evil.example" in body["error"]
        status, _, body = call(daemon, "POST", "/job/", token=token, body=JOB,
                               headers={"Host": f"evil.example:{daemon.port}"})
        assert status == 403
    for host in (f"localhost:{open_daemon.port}", f"127.0.0.1:{open_daemon.port}", "kalad.example"):
        assert call(open_daemon, "GET", "/job/", headers={"Host": host})[0] == 200, host


def test_cross_site_posts_are_refused_but_curl_and_go_clients_work(open_daemon):
    daemon = open_daemon
    before = call(daemon, "GET", "/stats/")[2]["Stats"]["jobs"]
    for headers in ({"Origin": "http://evil.example", "Content-Type": "text/plain"},
                    {"Origin": "null"},
                    {"Origin": f"http://127.0.0.1:{daemon.port + 1}"},
                    {"Sec-Fetch-Site": "cross-site"}):
        status, _, body = call(daemon, "POST", "/job/", body=JOB, headers=headers)
        assert status == 403, headers
        status, _, _ = call(daemon, "POST", "/job/start/x/", headers=headers)
        assert status == 403
    assert call(daemon, "GET", "/stats/")[2]["Stats"]["jobs"] == before
    # curl -d: form content type, no Origin; Go's client: no Content-Type at all
    curl = call(daemon, "POST", "/job/", body=JOB,
                headers={"Content-Type": "application/x-www-form-urlencoded",
                         "User-Agent": "curl/8.5.0", "Accept": "*/*"})
    go = call(daemon, "POST", "/job/", body=JOB, headers={"User-Agent": "Go-http-client/1.1"})
    same_site = call(daemon, "POST", "/job/", body=JOB,
                     headers={"Origin": f"http://127.0.0.1:{daemon.port}"})
    assert [curl[0], go[0], same_site[0]] == [201, 201, 201]
    status, headers, _ = call(daemon, "OPTIONS", "/job/", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert not any(name.startswith("access-control-") for name in headers)


def test_a_secret_never_leaves_the_daemon_but_reaches_the_child(open_daemon, tmp_path):
    daemon = open_daemon
    secret = "s3cr3t-Value-9d1f"
    out = tmp_path / "seen"
    status, _, body = call(daemon, "POST", "/job/", body={
        "name": "uses-secret", "schedule": FUTURE,
        "command": f"sh -c 'printf %s \"$API_KEY:$REGION\" > {out}'",
        "env": {"REGION": "eu"}, "secret_env": {"API_KEY": secret}})
    assert status == 201, body
    job_id = body["id"]
    assert call(daemon, "POST", f"/job/start/{job_id}/")[0] == 204
    wait_until(lambda: out.exists() and out.read_text())
    assert out.read_text() == f"{secret}:eu"
    wait_until(lambda: daemon.runs(job_id) and daemon.runs(job_id)[0]["status"] == "succeeded")
    status, _, job = call(daemon, "GET", f"/job/{job_id}/")
    assert job["job"]["secret_env"] == {"API_KEY": "***"} and job["job"]["env"] == {"REGION": "eu"}
    answers = [call(daemon, "GET", path) for path in
               ("/job/", f"/job/{job_id}/", f"/job/{job_id}/runs/", f"/job/stats/{job_id}/",
                "/stats/", f"/job/{job_id}/next/")]
    answers.append(call(daemon, "PUT", f"/job/{job_id}/", body={
        "name": "uses-secret", "schedule": FUTURE, "command": "true",
        "secret_env": {"API_KEY": secret}}))
    for status, headers, answer in answers:
        assert status == 200, answer
        assert secret not in json.dumps(answer) and secret not in json.dumps(headers)
    assert secret not in daemon.log()
    assert "DEBUG" in daemon.log()  # the log above was written at the most verbose level


def test_the_store_is_private(open_daemon):
    lmdb = open_daemon.state_dir / "lmdb"
    assert stat.S_IMODE(lmdb.stat().st_mode) == 0o700
    for entry in lmdb.iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600, entry


def test_the_sqlite_store_file_is_private(tmp_path):
    old = os.umask(0o022)
    try:
        store = SqliteStore(str(tmp_path / "jobs.db"))
        store.close()
    finally:
        os.umask(old)
    for entry in tmp_path.iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600, entry


def test_rate_limit_answers_429_then_recovers(tmp_path):
    tokens_dir = tmp_path / "tokens.d"
    token = new_token(tokens_dir, "ci", "read")
    daemon = Daemon(tmp_path, "--tokens-dir", str(tokens_dir), "--rate-limit", "4",
                    "--rate-burst", "4", "--config", "/dev/null").start()
    try:
        statuses = []
        for _ in range(40):
            status, headers, body = call(daemon, "GET", "/job/", token=token)
            statuses.append(status)
            if status == 429:
                break
        assert statuses[-1] == 429 and set(statuses[:-1]) == {200}, statuses
        assert int(headers["retry-after"]) >= 1 and "too many requests" in body["error"]
        assert call(daemon, "GET", "/health/")[0] == 200
        wait_until(lambda: call(daemon, "GET", "/job/", token=token)[0] == 200,
                   timeout=10, interval=0.3)
    finally:
        daemon.stop()


def test_limits_are_settings(tmp_path):
    daemon = Daemon(tmp_path, "--tokens-dir", str(tmp_path / "none"), "--config", "/dev/null",
                    "--max-jobs", "1", "--max-body", "2048").start()
    try:
        fast = call(daemon, "POST", "/job/",
                    body={**JOB, "schedule": "R/2099-01-01T00:00:00Z/PT0.5S"})
        assert fast[0] == 400 and "min_interval" in fast[2]["error"]
        big = call(daemon, "POST", "/job/", body={**JOB, "command": "echo " + "x" * 3000})
        assert big[0] == 413 and "2048" in big[2]["error"]
        assert call(daemon, "POST", "/job/", body=JOB)[0] == 201
        full = call(daemon, "POST", "/job/", body=JOB)
        assert full[0] == 400 and "max_jobs" in full[2]["error"]
    finally:
        daemon.stop()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        import socket

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


def test_a_unix_socket_needs_no_token_and_audits_the_peer_uid(tmp_path):
    path = tmp_path / "api.sock"
    daemon = Daemon(tmp_path, "--interface", f"unix:{path}", "--tokens-dir",
                    str(tmp_path / "none"), "--config", "/dev/null").start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        conn = _UnixConnection(str(path))
        conn.request("POST", "/api/v1/job/", body=json.dumps(JOB).encode())
        resp = conn.getresponse()
        job_id = json.loads(resp.read())["id"]
        assert resp.status == 201
        conn.close()
        wait_until(lambda: f"audit uid={os.getuid()} method=POST route=/api/v1/job "
                           f"job={job_id} status=201" in daemon.log())
    finally:
        daemon.stop()
