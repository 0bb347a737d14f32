"""The API's HTTP server: waitress, bound at start-up, stopped from the main thread.

Binding happens in the constructor, so a taken port is a start-up error reported
before the daemon says it is ready. Stopping runs ``close`` inside waitress's own
loop thread (through its trigger), never under its feet.
"""

from __future__ import annotations

import logging
import threading

import waitress.server

log = logging.getLogger(__name__)

# waitress warns once per queued request under load ("Task queue depth is N"):
# that costs throughput exactly when it matters, and says nothing actionable.
logging.getLogger("waitress.queue").setLevel(logging.ERROR)


class ApiServer:
    def __init__(self, app, host: str, port: int, *, threads: int = 8, max_body: int) -> None:
        self._server = waitress.server.create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="kalad",
            connection_limit=512,
            channel_timeout=60,
            max_request_body_size=max_body,
            clear_untrusted_proxy_headers=True,
        )
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

    def stop_listening(self) -> None:
        """Refuse new connections; requests already being handled finish."""
        self._server.trigger.pull_trigger(self._server.close)

    def close(self, timeout: float = 5.0) -> None:
        self._server.task_dispatcher.shutdown(timeout=timeout)
