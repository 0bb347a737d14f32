"""The API's HTTP server: waitress, bound at start-up, stopped from the main thread.

Binding happens in the constructor, so a taken port is a start-up error reported
before the daemon says it is ready. Stopping runs ``close`` inside waitress's own
loop thread (through its trigger), never under its feet.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from typing import Callable

import waitress.server
from waitress.channel import HTTPChannel

log = logging.getLogger(__name__)

# waitress warns once per queued request under load ("Task queue depth is N"):
# that costs throughput exactly when it matters, and says nothing actionable.
logging.getLogger("waitress.queue").setLevel(logging.ERROR)


MAX_HEADER = 64 * 1024  # request line and headers; larger is a 431 from waitress
UNIX_PREFIX = "unix:"
UNIX_MODE = "660"  # owner and group may connect: put API clients in kalad's group
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (Linux SO_PEERCRED)."""
    try:
        _pid, uid, _gid = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    except (OSError, AttributeError, struct.error):
        return None
    return uid


class _DeadlineChannel(HTTPChannel):
    """A connection whose request must arrive whole within ``channel_timeout`` of its start,
    and which waitress's loop does not spin on while a task is writing its response.

    waitress's own timeout counts from the last byte received, so a client sending
    a byte a second would hold its connection (and a slot of the cap) for ever.
    """

    request_started: float | None = None  # time.time() of a partial request's first byte

    def writable(self) -> bool:
        """Only when the loop could send something now (or must close).

        While a task runs, it sends its own output under ``outbuf_lock``. waitress
        asks to write whenever output is buffered, so while the task held the lock
        (waiting for the GIL) the loop's poll returned at once, over and over, 20 to
        40 times per request, and kept taking the GIL from the very task it waited
        for. A task that cannot send everything pulls the loop's trigger, and so
        does every task that ends, so the loop asks again in time.
        """
        if self.will_close or self.close_when_flushed:
            return True
        if not self.total_outbufs_len:
            return False
        if not self.requests or self.total_outbufs_len > self.adj.outbuf_high_watermark:
            return True  # nothing runs, or a task waits for the loop to drain its output
        if self.outbuf_lock.acquire(False):
            self.outbuf_lock.release()
            return True
        return False

    def received(self, data) -> bool:
        if self.request is None and data:
            self.request_started = time.time()
        taken = super().received(data)
        if self.request is None:
            self.request_started = None
        return taken


class _UnixPeerChannel(_DeadlineChannel):
    """A connection on the Unix socket; its REMOTE_ADDR names the peer's uid (``uid=1000``)."""

    def __init__(self, server, sock, addr, adj, map=None) -> None:
        uid = peer_uid(sock)
        super().__init__(server, sock, (f"uid={uid if uid is not None else '?'}", 0), adj,
                         map=map)


def _close_slow_requests(server) -> Callable[[float], None]:
    """``server.maintenance`` that also closes connections whose request is overdue."""
    idle_only = server.maintenance

    def maintenance(now: float) -> None:
        idle_only(now)
        cutoff = now - server.adj.channel_timeout
        for channel in list(server.active_channels.values()):
            started = getattr(channel, "request_started", None)
            if started is not None and started < cutoff:
                channel.will_close = True

    return maintenance


class ApiServer:
    """waitress, bounded: threads, open connections, idle time, header and body sizes.

    ``idle_timeout`` closes a connection silent that long between requests, and one
    whose request has not arrived whole that long after its first byte (so a client
    trickling headers cannot hold a slot for long).
    A host ``unix:/path`` listens on that Unix socket (mode 0660) instead of TCP.
    """

    def __init__(self, app, host: str, port: int, *, threads: int = 8, max_body: int,
                 connection_limit: int = 512, idle_timeout: float = 60.0,
                 on_failure: Callable[[], None] = lambda: None) -> None:
        timeout = max(1, round(idle_timeout))
        where: dict[str, object] = {"host": host, "port": port}
        if host.startswith(UNIX_PREFIX):
            where = {"unix_socket": host[len(UNIX_PREFIX):], "unix_socket_perms": UNIX_MODE}
        self._server = waitress.server.create_server(
            app,
            **where,
            threads=threads,
            ident="kalad",
            connection_limit=connection_limit + 2,  # waitress counts its listener and waker
            channel_timeout=timeout,
            cleanup_interval=max(1, min(30, timeout // 2)),  # how often idle ones are found
            max_request_header_size=MAX_HEADER,
            max_request_body_size=max_body,
            clear_untrusted_proxy_headers=True,
            # poll, not select: select() fails on any descriptor above 1023, and
            # kalad holds two per running job (its pipe and pidfd).
            asyncore_use_poll=True,
        )
        self._server.channel_class = (
            _UnixPeerChannel if host.startswith(UNIX_PREFIX) else _DeadlineChannel)
        self._server.maintenance = _close_slow_requests(self._server)
        self._on_failure = on_failure
        self._thread = threading.Thread(target=self._run, name="api", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self._server.effective_host, self._server.effective_port

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._server.run()
        except Exception:
            log.exception("API server stopped unexpectedly")
            self._on_failure()

    def stop_listening(self) -> None:
        """Refuse new connections; requests already being handled finish."""
        trigger = self._server.trigger
        why = "closed"  # then its descriptor numbers may be someone else's by now
        if not trigger._closed:
            try:
                trigger.pull_trigger(self._server.close)
                return
            except OSError as exc:
                why = str(exc)
        # waitress closes its trigger when poll finds a descriptor of it invalid; with no
        # way left to reach the loop thread, close the listener from here.
        log.warning("the API server's wake-up pipe is gone (%s); closing it directly", why)
        self._server.close()

    def close(self, timeout: float = 5.0) -> None:
        self._server.task_dispatcher.shutdown(timeout=timeout)
