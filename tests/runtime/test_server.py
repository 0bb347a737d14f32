"""The API server keeps answering when kalad holds more than 1024 descriptors."""

from __future__ import annotations

import os
import resource
import socket
import time
import urllib.request

import pytest

from kalad.runtime.daemon import raise_open_files_limit
from kalad.runtime.server import ApiServer
from tests.e2e.daemon import free_port


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def test_serves_on_descriptors_above_1023():
    raise_open_files_limit()
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 1200:
        pytest.fail("this test needs a hard limit of at least 1200 open files")
    # As with ~600 running jobs (a pipe and a pidfd each): the server's fds land above 1023.
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    failed = []
    server = ApiServer(hello, "127.0.0.1", free_port(), max_body=1024,
                       on_failure=lambda: failed.append(True))
    try:
        server.start()
        port = server.address[1]
        for _ in range(3):  # each request opens another descriptor on the server side
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
                assert resp.read() == b"hello"
        assert not failed
    finally:
        server.stop_listening()
        server.close()
        for fd in filler:
            os.close(fd)


def test_a_request_trickling_in_is_cut_off_after_the_timeout():
    server = ApiServer(hello, "127.0.0.1", free_port(), max_body=1024, idle_timeout=1)
    server.start()
    try:
        sock = socket.create_connection(server.address, timeout=10)
        sock.settimeout(0.2)
        start = time.monotonic()
        closed = False
        for byte in b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200:
            try:
                sock.send(bytes([byte]))
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue  # nothing from the server yet: keep trickling
            except OSError:
                closed = True
                break
            if time.monotonic() - start > 8:
                break
        assert closed, "the server kept a trickling request open"
        assert time.monotonic() - start < 5
    finally:
        server.stop_listening()
        server.close()


def test_a_cap_of_one_connection_still_serves_one():
    server = ApiServer(hello, "127.0.0.1", free_port(), max_body=1024, connection_limit=1)
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.address[1]}/", timeout=5) as resp:
            assert resp.read() == b"hello"
    finally:
        server.stop_listening()
        server.close()


def test_stop_listening_without_the_wake_up_pipe_still_closes_the_listener(caplog):
    server = ApiServer(hello, "127.0.0.1", free_port(), max_body=1024)
    server.start()
    port = server.address[1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            assert resp.read() == b"hello"
        server._server.trigger.close()  # as waitress does when poll says it is invalid
        server.stop_listening()
        assert any("wake-up pipe is gone" in r.getMessage() for r in caplog.records)

        def refused() -> bool:
            # The loop thread's poll holds the socket open until it returns (1 s at most).
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            except OSError:
                return True
            time.sleep(0.05)
            return False

        deadline = time.monotonic() + 5
        while not refused():
            assert time.monotonic() < deadline, "still accepting connections"
    finally:
        server.close()
