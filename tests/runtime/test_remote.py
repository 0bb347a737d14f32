"""The remote runner against a real local HTTP server: no mocks, no sleeping to synchronise."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kalad.core.ports import Attempt, HttpRequest
from kalad.core.runs import AttemptOutcome
from kalad.runtime.clock import SystemClock
from kalad.runtime.remote import RemoteRunner

pytestmark = pytest.mark.timeout(120)

WAIT = 10.0
BIG = 2 * 1024 * 1024


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.release = threading.Event()  # lets held requests go at teardown
        self.arrived = threading.Event()  # a request reached /hang
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # requests the runner cut (timeouts, shutdown) leave broken pipes behind

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        path = self.path
        if path == "/ok":
            self._send(200, b"hello")
        elif path == "/clock":
            self._send(200, repr(time.time()).encode())
        elif path == "/unavailable":
            self._send(503, b"busy")
        elif path == "/empty":
            self.send_response(204)
            self.end_headers()
        elif path == "/redirect":
            self._send(302, Location="/ok")
        elif path.startswith("/redirect?to="):
            self._send(302, Location=path.split("=", 1)[1])
        elif path == "/echo":
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._send(200, json.dumps({
                "method": self.command,
                "headers": [[k.lower(), v] for k, v in self.headers.items()],
                "body": body.decode(),
            }).encode())
        elif path == "/big":
            self.send_response(200)
            self.end_headers()  # no length: the body ends when the connection closes
            for _ in range(BIG // 65536):
                self.wfile.write(b"x" * 65536)
            self.wfile.write("tail é END".encode())
        elif path == "/drip":
            self.send_response(200)
            self.end_headers()
            while not self.server.release.wait(0.05):
                self.wfile.write(b".")
                self.wfile.flush()
        elif path == "/hang":
            self.server.arrived.set()
            self.server.release.wait(30)
            self._send(200, b"too late")
        elif path == "/count":
            with self.server.lock:
                self.server.active += 1
                self.server.peak = max(self.server.peak, self.server.active)
            time.sleep(0.02)  # hold the slot a moment, so overlaps can show
            with self.server.lock:
                self.server.active -= 1
            self._send(200, b"counted")
        else:
            self._send(404, b"no such path")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class Waiter:
    """A ``done`` callback that records outcomes and the thread each came on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.outcomes: list[AttemptOutcome] = []
        self.threads: list[str] = []

    def __call__(self, outcome: AttemptOutcome) -> None:
        self.outcomes.append(outcome)
        self.threads.append(threading.current_thread().name)
        self.event.set()

    def wait(self) -> AttemptOutcome:
        assert self.event.wait(WAIT), "done was not called in time"
        assert len(self.outcomes) == 1
        return self.outcomes[0]


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def attempt(url: str, run_id: str = "run-1", **request: object) -> Attempt:
    return Attempt(run_id=run_id, job_id="job-1", job_name="hook", number=1, argv=(), env={},
                   request=HttpRequest(url=url, **request))  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def make_runner() -> Iterator[Callable[..., RemoteRunner]]:
    made: list[RemoteRunner] = []

    def make(**kwargs: int) -> RemoteRunner:
        runner = RemoteRunner(SystemClock(), **kwargs)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.stop()


@pytest.fixture
def runner(make_runner) -> RemoteRunner:
    return make_runner()


def run(runner: RemoteRunner, url: str, **request: object) -> AttemptOutcome:
    waiter = Waiter()
    runner.launch(attempt(url, **request), waiter)
    outcome = waiter.wait()
    assert waiter.threads[0].startswith("remote")
    return outcome


# -- responses -----------------------------------------------------------------------------


def test_success_and_output(runner, server):
    outcome = run(runner, server.base + "/ok")
    assert (outcome.exit_status, outcome.output, outcome.message) == (200, "hello", "")
    assert outcome.success
    assert outcome.started_at <= outcome.ended_at


def test_a_request_with_a_start_instant_is_sent_on_it(runner, server):
    start_at = datetime.now(timezone.utc) + timedelta(seconds=0.3)
    waiter = Waiter()
    runner.launch(dataclasses.replace(attempt(server.base + "/clock"), start_at=start_at), waiter)
    outcome = waiter.wait()
    assert outcome.exit_status == 200
    assert float(outcome.output) >= start_at.timestamp()  # the server's clock on arrival
    assert outcome.started_at >= start_at


def test_unexpected_status_is_a_failure_with_its_body(runner, server):
    outcome = run(runner, server.base + "/unavailable")
    assert outcome.exit_status == 503
    assert outcome.output == "busy"
    assert outcome.message == "HTTP status 503, expected one of 200"
    assert not outcome.success and not outcome.killed


@pytest.mark.parametrize(
    "path, expected, message",
    [
        ("/empty", (200, 204), ""),
        ("/empty", (200,), "HTTP status 204, expected one of 200"),
        ("/unavailable", (503,), ""),
        ("/ok", (201, 204), "HTTP status 200, expected one of 201, 204"),
        ("/missing", (200,), "HTTP status 404, expected one of 200"),
    ],
)
def test_expected_codes(runner, server, path, expected, message):
    outcome = run(runner, server.base + path, expected_codes=expected)
    assert outcome.message == message


def test_redirect_is_followed(runner, server):
    outcome = run(runner, server.base + "/redirect")
    assert (outcome.exit_status, outcome.output, outcome.message) == (200, "hello", "")


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x"])
def test_redirect_leaves_http_only_for_nothing(runner, server, target):
    outcome = run(runner, server.base + "/redirect?to=" + target)
    assert outcome.message != ""
    assert "root:" not in outcome.output


def test_big_body_keeps_only_the_tail(runner, server):
    outcome = run(runner, server.base + "/big")
    assert outcome.message == ""
    assert len(outcome.output.encode()) == 64 * 1024
    assert outcome.output.endswith("tail é END")


@pytest.mark.parametrize("limit, tail", [(7, " é END"), (5, " END")])  # 5: cut inside "é"
def test_tail_cut_inside_a_character_is_not_garbled(make_runner, server, limit, tail):
    assert run(make_runner(body_limit=limit), server.base + "/big").output == tail


# -- the request as sent -----------------------------------------------------------------------


def echoed(outcome: AttemptOutcome) -> dict:
    assert outcome.message == "", outcome.message
    return json.loads(outcome.output)


def test_method_body_and_headers_arrive_as_sent(runner, server):
    headers = (("X-Token", "abc"), ("X-Multi", "1"), ("x-multi", "2"),
               ("Content-Type", "application/json"))
    got = echoed(run(runner, server.base + "/echo", method="patch", body='{"a": 1}',
                     headers=headers))
    assert got["method"] == "PATCH"
    assert got["body"] == '{"a": 1}'
    sent = dict(got["headers"])
    assert sent["x-token"] == "abc"
    assert sent["x-multi"] == "1, 2"
    assert sent["content-type"] == "application/json"
    assert sent["user-agent"] == "kalad/0.1"
    assert sent["content-length"] == "8"


def test_empty_body_is_not_sent_and_user_agent_can_be_set(runner, server):
    got = echoed(run(runner, server.base + "/echo", method="", headers=(("user-agent", "me"),)))
    assert got["method"] == "GET"
    sent = dict(got["headers"])
    assert sent["user-agent"] == "me"
    assert "content-length" not in sent


# -- failures before or without a response ------------------------------------------------------


def test_timeout(runner, server):
    outcome = run(runner, server.base + "/hang", timeout=0.5)
    assert outcome.exit_status is None
    assert outcome.message == "timed out after 0.5 s"
    assert not outcome.killed


def test_timeout_covers_the_whole_request(runner, server):
    """A body that keeps trickling in never trips a socket timeout; the deadline still ends it."""
    outcome = run(runner, server.base + "/drip", timeout=0.5)
    assert outcome.exit_status == 200
    assert outcome.message == "timed out after 0.5 s"
    assert outcome.output.startswith(".")


def test_https_is_spoken_and_verified(runner, server):
    url = server.base.replace("http:", "https:") + "/ok"  # the server speaks plain HTTP
    outcome = run(runner, url)
    assert outcome.exit_status is None
    assert outcome.message.startswith(f"cannot reach {url}: ")
    assert "SSL" in outcome.message


def test_connection_refused(runner):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    outcome = run(runner, url)
    assert outcome.exit_status is None
    assert outcome.message == f"connection refused: {url}"


@pytest.mark.parametrize(
    "url, method, message",
    [
        ("ftp://127.0.0.1/x", "GET", "invalid URL 'ftp://127.0.0.1/x'"),
        ("file:///etc/passwd", "GET", "invalid URL 'file:///etc/passwd'"),
        ("127.0.0.1/ok", "GET", "invalid URL '127.0.0.1/ok'"),
        ("http:///ok", "GET", "invalid URL 'http:///ok'"),
        ("http://[::1/", "GET", "invalid URL 'http://[::1/'"),
        ("http://127.0.0.1:99999999/", "GET", "invalid URL"),
        ("http://127.0.0.1/a b", "GET", "invalid URL"),
        ("http://127.0.0.1/", "GE T", "invalid method 'GE T'"),
        ("http://127.0.0.1/", "GET\r\nX: y", "invalid method"),
    ],
)
def test_invalid_requests(runner, url, method, message):
    outcome = run(runner, url, method=method)
    assert outcome.exit_status is None
    assert outcome.message.startswith(message)


def test_bad_header_value(runner, server):
    outcome = run(runner, server.base + "/ok", headers=(("X-Bad", "a\r\nInjected: 1"),))
    assert outcome.message.startswith("invalid request: ")


def test_error_inside_a_worker_becomes_a_failed_outcome(runner, caplog):
    waiter = Waiter()
    bare = Attempt(run_id="r", job_id="j", job_name="hook", number=1, argv=(), env={})
    with caplog.at_level(logging.WARNING, logger="kalad.runtime.remote"):
        runner.launch(bare, waiter)
        outcome = waiter.wait()
    assert outcome.message.startswith("internal error: ")
    assert "request failed inside kalad" in caplog.text


# -- concurrency and shutdown --------------------------------------------------------------------


def test_concurrent_launches_complete_on_a_bounded_pool(make_runner, server):
    runner = make_runner(workers=4)
    waiters = [Waiter() for _ in range(20)]
    for i, waiter in enumerate(waiters):
        runner.launch(attempt(server.base + "/count", run_id=f"run-{i}"), waiter)
    for waiter in waiters:
        assert waiter.wait().output == "counted"
    assert 1 <= server.peak <= 4
    assert {name.rsplit("_", 1)[0] for w in waiters for name in w.threads} == {"remote"}


def test_terminate_all_kills_a_hanging_request_and_frees_its_worker(runner, server):
    waiter = Waiter()
    runner.launch(attempt(server.base + "/hang", timeout=None), waiter)
    assert server.arrived.wait(WAIT)
    runner.terminate_all(0.2)
    assert waiter.event.is_set()  # every done has run when terminate_all returns
    outcome = waiter.outcomes[0]
    assert outcome.killed
    assert outcome.message == "killed by kalad at shutdown"
    assert outcome.exit_status is None
    runner.stop()
    # The server never answers, yet the worker ends: its socket was shut down.
    wait_until(lambda: not any(t.name.startswith("remote") for t in threading.enumerate()))
    assert len(waiter.outcomes) == 1  # the late result was dropped


def test_terminate_all_waits_for_requests_that_finish_in_the_grace(runner, server):
    waiter = Waiter()
    runner.launch(attempt(server.base + "/ok"), waiter)
    runner.terminate_all(WAIT)
    assert waiter.event.is_set()
    assert waiter.outcomes[0].message == ""


def test_terminate_all_refuses_queued_requests(make_runner, server):
    runner = make_runner(workers=1)
    hanging, queued = Waiter(), Waiter()
    runner.launch(attempt(server.base + "/hang", timeout=None), hanging)
    runner.launch(attempt(server.base + "/ok", run_id="run-2"), queued)
    assert server.arrived.wait(WAIT)
    runner.terminate_all(0.0)
    assert hanging.outcomes[0].message == "killed by kalad at shutdown"
    assert queued.outcomes[0].message == "not started: kalad is stopping"
    assert queued.outcomes[0].killed


@pytest.mark.parametrize("how", ["terminate_all", "stop"])
def test_launch_after_shutdown_is_refused_at_once(runner, server, how):
    if how == "stop":
        runner.stop()
    else:
        runner.terminate_all(1.0)
    waiter = Waiter()
    runner.launch(attempt(server.base + "/ok"), waiter)
    assert waiter.event.is_set()
    outcome = waiter.outcomes[0]
    assert outcome.killed
    assert outcome.message == "not started: kalad is stopping"
    assert waiter.threads == [threading.current_thread().name]
