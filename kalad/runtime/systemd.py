"""sd_notify without libsystemd: datagrams to ``$NOTIFY_SOCKET``, nothing when it is unset."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(*states: str) -> bool:
    """Send ``READY=1``-style lines; return whether a notify socket took them."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(states).encode(), address)
    except OSError as exc:
        log.warning("cannot notify %s: %s", path, exc)
        return False
    return True


class Watchdog:
    """``WATCHDOG=1`` pings for ``WatchdogSec=``, sent from the timer loop's beat.

    ``$WATCHDOG_USEC`` (for this process, if ``$WATCHDOG_PID`` says so) sets the
    deadline; pings go at most every half of it. The timer must beat at least that
    often (``max_wait``), so a timer thread that hangs stops the pings and systemd
    restarts the daemon.
    """

    def __init__(self, usec: int | None, monotonic) -> None:
        self.interval = usec / 2e6 if usec else None
        self._monotonic = monotonic
        self._last: float | None = None

    @classmethod
    def from_environ(cls, monotonic, environ=os.environ) -> "Watchdog":
        pid = environ.get("WATCHDOG_PID")
        try:
            usec = int(environ.get("WATCHDOG_USEC", "0"))
            if pid and int(pid) != os.getpid():
                usec = 0
        except ValueError:
            log.warning("ignoring a malformed $WATCHDOG_USEC/$WATCHDOG_PID")
            usec = 0
        return cls(usec if usec > 0 else None, monotonic)

    @property
    def enabled(self) -> bool:
        return self.interval is not None

    def max_wait(self, default: float) -> float:
        """The longest the timer may sleep between beats."""
        return default if self.interval is None else min(default, self.interval / 2)

    def beat(self) -> None:
        if self.interval is None:
            return
        now = self._monotonic()
        if self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        notify("WATCHDOG=1")
