"""``kalad.client`` against a real kalad process over real HTTP."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import pytest

from kalad.client import Client, JobNotFound, KaladError, Refused, Unreachable
from tests.conftest import wait_until
from tests.e2e.daemon import Daemon, free_port

FUTURE = "R/2030-01-01T00:00:00Z/PT1H"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("kalad")).start()
    yield d
    d.stop()


@pytest.fixture
def client(daemon):
    c = Client(f"http://127.0.0.1:{daemon.port}", timeout=10)
    c.delete_all()
    return c


def test_base_url_gets_the_api_prefix_once():
    assert Client("http://h:8000/").base_url == "http://h:8000/api/v1"
    assert Client("http://h:8000/api/v1/").base_url == "http://h:8000/api/v1"
    assert Client("h:8000").base_url == "http://h:8000/api/v1"


def test_create_get_get_all_delete(client):
    job_id = client.create({"name": "a", "command": "true", "schedule": FUTURE})
    job = client.get(job_id)
    assert (job["id"], job["name"], job["schedule"]) == (job_id, "a", FUTURE)
    assert list(client.get_all()) == [job_id]
    client.delete(job_id)
    assert client.get_all() == {}
    with pytest.raises(JobNotFound) as caught:
        client.get(job_id)
    assert caught.value.status == 404 and job_id in caught.value.message


def test_delete_all(client):
    for name in ("a", "b"):
        client.create({"name": name, "command": "true", "schedule": FUTURE})
    client.delete_all()
    assert client.get_all() == {}


def test_a_bad_job_is_refused_with_the_servers_message(client):
    with pytest.raises(Refused) as caught:
        client.create({"name": "x", "command": "true", "schedule": "nope"})
    assert caught.value.status == 400
    assert caught.value.message.startswith("schedule:")
    assert not isinstance(caught.value, JobNotFound)
    assert isinstance(caught.value, KaladError)


def test_start_runs_and_runs_and_stats_show_it(client):
    job_id = client.create({"name": "s", "command": "echo hello", "schedule": FUTURE})
    client.start(job_id)
    runs = wait_until(lambda: [r for r in client.runs(job_id) if r["status"] == "succeeded"])
    assert runs[0]["trigger"] == "manual" and runs[0]["output"] == "hello\n"
    stats = client.job_stats(job_id)
    assert len(stats) == 1 and stats[0]["success"] is True
    assert client.app_stats()["jobs"] == 1


def test_runs_limit(client):
    job_id = client.create({"name": "l", "command": "true", "schedule": FUTURE})
    for _ in range(3):
        client.start(job_id)
    wait_until(lambda: sum(r["status"] == "succeeded" for r in client.runs(job_id)) == 3)
    assert len(client.runs(job_id, limit=2)) == 2


def test_enable_disable(client):
    job_id = client.create({"name": "d", "command": "true", "schedule": FUTURE})
    client.disable(job_id)
    assert client.get(job_id)["disabled"] is True
    client.enable(job_id)
    assert client.get(job_id)["disabled"] is False


def test_unknown_ids_raise_job_not_found(client):
    for call in (client.get, client.delete, client.start, client.enable, client.disable,
                 client.runs, client.job_stats, client.next):
        with pytest.raises(JobNotFound):
            call("no-such-job")


def test_next_and_preview(client):
    job_id = client.create({"name": "n", "command": "true", "schedule": FUTURE})
    assert client.next(job_id, 2) == ["2030-01-01T00:00:00Z", "2030-01-01T01:00:00Z"]
    assert client.preview("R/2030-01-01T00:00:00Z/P1D", 2) == [
        "2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z"]
    with pytest.raises(Refused) as caught:
        client.preview("nope")
    assert caught.value.status == 400


def test_an_id_cannot_change_the_route(client):
    with pytest.raises(JobNotFound):
        client.get("../stats")


def test_connection_refused_is_unreachable():
    with pytest.raises(Unreachable) as caught:
        Client(f"http://127.0.0.1:{free_port()}", timeout=2).app_stats()
    assert "cannot reach kalad" in str(caught.value)


def test_a_silent_server_times_out_as_unreachable():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts connections but never answers
        port = listener.getsockname()[1]
        with pytest.raises(Unreachable) as caught:
            Client(f"http://127.0.0.1:{port}", timeout=0.2).app_stats()
    assert "no answer within 0.2s" in str(caught.value)


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):
        self.seen.append(self.headers.get("Authorization"))
        body = json.dumps({"Stats": {"jobs": 0}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_token_is_sent_as_a_bearer_header():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        Client(url, token="s3cret").app_stats()
        Client(url).app_stats()
    finally:
        server.shutdown()
        server.server_close()
    assert _Recorder.seen == ["Bearer s3cret", None]
