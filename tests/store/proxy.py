"""A TCP relay the tests put between kalad and a database server, to cut it at will.

``down()`` resets every relayed connection and refuses new ones (each accepted and
closed at once), as a server that went away; ``hold()`` keeps the connections but
stops forwarding, as a network that drops packets; ``up()`` restores service.
"""

from __future__ import annotations

import socket
import threading


class Proxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._up = True
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        threading.Thread(target=self._accept, name="proxy", daemon=True).start()

    def address(self, db: str = "") -> str:
        return f"127.0.0.1:{self.port}" + (f"/{db}" if db else "")

    def down(self) -> None:
        """Reset every connection; refuse new ones until ``up()``."""
        with self._lock:
            self._up = False
            doomed = list(self._sockets)
            self._sockets.clear()
        self._flowing.set()  # held pumps wake up and find their sockets gone
        for sock in doomed:
            _shut(sock)

    def hold(self) -> None:
        """Keep every connection open but forward nothing (new ones hang too)."""
        self._flowing.clear()

    def up(self) -> None:
        with self._lock:
            self._up = True
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self.down()
        _shut(self._listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                up = self._up
            if not up:
                _shut(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                _shut(client)
                continue
            with self._lock:
                self._sockets.update((client, server))
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(src)
                self._sockets.discard(dst)
            _shut(src)
            _shut(dst)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
