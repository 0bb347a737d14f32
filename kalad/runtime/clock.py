"""The system clock: the one place in kalad that reads the time.

Everything else receives a ``Clock`` (see ``kalad.core.ports``), so tests can hand
the service a fake one and step it by hand.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class SystemClock:
    """Wall-clock time in UTC, and the monotonic clock for measuring durations."""

    __slots__ = ()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()


def sleep_until(when: datetime | None) -> None:
    """Return at the wall-clock instant ``when`` (at once if it is past, or None).

    For runs the timer fired a moment ahead of their instant, everything prepared:
    ``time.sleep`` wakes within tens of microseconds of the instant.
    """
    if when is not None:
        delay = when.timestamp() - time.time()
        if delay > 0:
            time.sleep(delay)


def local_zone() -> tzinfo:
    """The host's zone with its DST rules: ``$TZ``, else ``/etc/localtime``, else UTC.

    Schedules whose start carries the host's current offset follow this zone, so a
    daily job keeps its wall-clock time across DST changes.
    """
    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return ZoneInfo(name)
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (ZoneInfoNotFoundError, OSError, ValueError):
        return timezone.utc
