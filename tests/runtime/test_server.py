"""The API server: descriptors above 1023, slow and trickling clients, connection caps,
and a loop that does not spin while a task sends its own output."""

from __future__ import annotations

import os
import resource
import socket
import threading
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


def test_the_loop_polls_to_write_only_when_it_could_send():
    """While a task sends its output under the lock, the loop must not poll for writing:
    the socket is writable, so poll returned at once, again and again, and the loop kept
    the GIL from the task it waited for (POST /job/ ran at about half its rate)."""
    server = ApiServer(hello, "127.0.0.1", free_port(), max_body=1024)
    ours, theirs = socket.socketpair()
    waitress = server._server
    # A connection outside the loop's map: only this test touches its state.
    channel = waitress.channel_class(waitress, ours, ("127.0.0.1", 0), waitress.adj, map={})
    held, release = threading.Event(), threading.Event()

    def task_sending() -> None:
        with channel.outbuf_lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=task_sending)
    try:
        assert not channel.writable()
        channel.outbufs[-1].append(b"HTTP/1.1 200 OK\r\n")
        channel.total_outbufs_len = 17
        assert channel.writable(), "output left by a finished task waits for the loop"
        channel.requests.append(object())  # a task is running
        assert channel.writable(), "the task could not send it all and left the lock"
        holder.start()
        assert held.wait(10)
        assert not channel.writable(), "the task is sending: polling would spin"
        channel.total_outbufs_len = waitress.adj.outbuf_high_watermark + 1
        assert channel.writable(), "the task waits for the loop to drain its output"
        channel.total_outbufs_len = 17
        channel.will_close = True
        assert channel.writable()
    finally:
        release.set()
        if holder.ident is not None:
            holder.join(10)
        channel.del_channel()
        ours.close()
        theirs.close()
        server.stop_listening()
        server.close()


def test_a_response_larger_than_the_output_buffer_reaches_a_slow_client_whole():
    chunk, chunks = b"x" * (256 * 1024), 96  # 24 MiB: above waitress's 16 MiB high watermark

    def big(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(chunk) * chunks))])
        return (chunk for _ in range(chunks))

    server = ApiServer(big, "127.0.0.1", free_port(), max_body=1024)
    server.start()
    try:
        sock = socket.create_connection(server.address, timeout=30)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        time.sleep(1)  # read nothing yet: the task fills the buffer and waits for the loop
        total, reply = len(chunk) * chunks, b""
        deadline = time.monotonic() + 60
        while b"\r\n\r\n" not in reply and time.monotonic() < deadline:
            reply += sock.recv(65536)
        head, _, body = reply.partition(b"\r\n\r\n")
        received = len(body)
        while received < total and time.monotonic() < deadline:
            data = sock.recv(1 << 20)
            if not data:
                break
            received += len(data)
        sock.close()
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert received == total
    finally:
        server.stop_listening()
        server.close()
