"""The API server keeps answering when kalad holds more than 1024 descriptors."""

from __future__ import annotations

import os
import resource
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
