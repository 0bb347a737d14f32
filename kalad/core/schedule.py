"""Kala's repeating-interval schedules ``R[n]/<start>/<interval>`` and their occurrences.

A schedule is a fixed grid: occurrence ``k`` is ``start + k·interval`` computed from the
start every time, so runs never drift and a manual run never moves the grid (Kala adds
the interval to the last actual run instead). Calendar parts (years, months, days) move
the wall-clock date in the schedule's zone with month ends clamped; exact parts (hours,
minutes, seconds) are elapsed time. Pure: the current time is always a parameter.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import MAXYEAR, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from functools import lru_cache

import isodate

from kalad.core.errors import InvalidSchedule

_UTC = timezone.utc
_NEVER = datetime.max.replace(tzinfo=_UTC)
_MONTH_SECONDS = 2_629_746  # 30.436875 days: the Gregorian average
_YEAR_SECONDS = 31_556_952  # 365.2425 days
_MAX_REPEAT_DIGITS = 18  # keeps n inside Go's int64, as Kala parses it

_REPEAT = re.compile(r"R(?:([+-]?)0*([0-9]+))?")
_START = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})?"
)


@dataclass(frozen=True, slots=True)
class Interval:
    """An ISO 8601 duration split into calendar parts and an exact (elapsed) part.

    Weeks are folded into ``days`` (7 each); a fraction of a day goes to ``exact``.
    """

    years: int
    months: int
    days: int
    exact: timedelta

    def __post_init__(self) -> None:
        if min(self.years, self.months, self.days) < 0 or self.exact < timedelta(0):
            raise ValueError("parts must not be negative")

    def is_zero(self) -> bool:
        return not (self.years or self.months or self.days or self.exact)

    def approx(self) -> timedelta:
        """Average length, for estimates only (a month is 30.436875 days, a year 365.2425)."""
        seconds = self.years * _YEAR_SECONDS + self.months * _MONTH_SECONDS
        return timedelta(days=self.days, seconds=seconds) + self.exact


_ZERO = Interval(0, 0, 0, timedelta(0))


@lru_cache(maxsize=1024)
def parse_duration(text: str, field: str = "interval") -> Interval:
    """Parse an ISO 8601 duration such as ``P1DT10M10S``, ``PT36H``, ``P1W`` or ``P1Y1D``.

    Cached: every created job checks its epsilon, and jobs share a few texts.

    The date part (before ``T``) and the time part are parsed separately so that
    ``PT24H`` stays 24 exact hours while ``P1D`` is one calendar day.
    """
    head, sep, tail = text.partition("T")
    empty_part = head == "P" and not sep or sep and not tail  # "P", "P1DT": Kala rejects both
    if not text.startswith("P") or text != text.strip() or empty_part:
        raise InvalidSchedule(
            f"{field}: {_quote(text)} is not an ISO 8601 duration like P1D or PT1H"
        )
    try:
        years, months, dated = _isodate(head) if head != "P" else (0, 0, timedelta(0))
        timed = _isodate("PT" + tail)[2] if sep else timedelta(0)
        exact = dated - timedelta(days=dated.days) + timed
        interval = Interval(years, months, dated.days, exact)
        interval.approx()  # an interval too long for timedelta overflows here
    except OverflowError:
        raise InvalidSchedule(f"{field}: {_quote(text)} is too long") from None
    except ValueError as exc:
        raise InvalidSchedule(f"{field}: {_quote(text)} is not a valid duration: {exc}") from None
    return interval


def _isodate(text: str) -> tuple[int, int, timedelta]:
    """Years, months and the rest of a duration via isodate (``ValueError`` if malformed)."""
    value = isodate.parse_duration(text)
    if isinstance(value, isodate.Duration):
        return _whole(value.years, "years"), _whole(value.months, "months"), value.tdelta
    return 0, 0, value


def _whole(value: int | float | Decimal, unit: str) -> int:
    if value != int(value):
        raise ValueError(f"{unit} must be a whole number")
    return int(value)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule: ``repeat`` is None (forever) or n for n+1 occurrences, k = 0..n."""

    text: str
    repeat: int | None
    start: datetime  # aware, in the schedule's zone (UTC, the local zone or a fixed offset)
    interval: Interval

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("schedule: start must be an aware datetime")
        if self.repeat is not None and self.repeat < 0:
            raise ValueError("schedule: repeat must be None or 0 or more")
        if self.repeat != 0 and self.interval.is_zero():
            raise ValueError("schedule: a repeating schedule needs a non-zero interval")

    def occurrence(self, k: int) -> datetime:
        """The k-th grid point (UTC), ignoring the repeat limit; ``OverflowError`` past 9999."""
        if k < 0:
            raise ValueError(f"schedule: occurrence index must be 0 or more, got {k}")
        return self._compute(k)

    def first_at_or_after(self, t: datetime) -> datetime | None:
        """Earliest occurrence >= t, None when the schedule ends before t."""
        return self._at(self._index(_utc(t), strict=False))

    def first_after(self, t: datetime) -> datetime | None:
        """Earliest occurrence > t, None when the schedule ends at or before t."""
        return self._at(self._index(_utc(t), strict=True))

    def occurrences_between(self, a: datetime, b: datetime) -> tuple[int, datetime | None]:
        """How many occurrences fall in [a, b), and the latest of them (None if none)."""
        first = self._index(_utc(a), strict=False)
        end = self._index(_utc(b), strict=False)
        if end <= first:
            return 0, None
        return end - first, self._at(end - 1)

    @property
    def last(self) -> datetime | None:
        """The final occurrence (the last one before year 10000), None if forever."""
        if self.repeat is None:
            return None
        return self._at(self._index(_NEVER, strict=True) - 1)

    def _compute(self, k: int) -> datetime:
        iv = self.interval
        base = self.start
        # Without a calendar shift the start itself is the base, so its fold is kept.
        if k and (iv.years or iv.months or iv.days):
            day = _add_months(base.date(), k * (12 * iv.years + iv.months))
            day += timedelta(days=k * iv.days)
            base = datetime.combine(day, base.time().replace(fold=0), base.tzinfo)
        return base.astimezone(_UTC) + k * iv.exact

    def _at(self, k: int) -> datetime | None:
        """Occurrence k if the schedule has it (within repeat and year 9999), else None."""
        if self.repeat is not None and k > self.repeat:
            return None
        try:
            return self._compute(k)
        except OverflowError:
            return None

    def _reaches(self, k: int, t: datetime, strict: bool) -> bool:
        """Whether occurrence k is >= t (> t if strict); a missing one is infinitely late."""
        at = self._at(k)
        return at is None or (at > t if strict else at >= t)

    def _index(self, t: datetime, strict: bool) -> int:
        """Smallest k whose occurrence reaches t: estimated, then stepped to exact.

        Occurrences never decrease as k grows, and the estimate is off by a few steps at
        most (month lengths, clamping, DST), so this never walks the grid from 0. A step
        with no calendar part is the common case and needs no steps: occurrence k is then
        exactly start + k * step, so k is computed (the timer does this for every run).
        """
        iv = self.interval
        if self.repeat != 0 and not (iv.years or iv.months or iv.days):
            elapsed = t - self.start
            k = max(elapsed // iv.exact + 1 if strict else -(-elapsed // iv.exact), 0)
            return k if self.repeat is None else min(k, self.repeat + 1)
        k = self._estimate(t)
        if self._reaches(k, t, strict):
            while k > 0 and self._reaches(k - 1, t, strict):
                k -= 1
        else:
            k += 1
            while not self._reaches(k, t, strict):
                k += 1
        return k

    def _estimate(self, t: datetime) -> int:
        if self.repeat == 0 or self.interval.is_zero():
            return 0
        k = max((t - self.start) // self.interval.approx(), 0)
        return k if self.repeat is None else min(k, self.repeat + 1)


def _quote(text: str) -> str:
    """``text`` quoted for an error message, cut short so a huge input stays readable."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"schedule: time {t.isoformat()} must be an aware datetime")
    return t.astimezone(_UTC)


def _add_months(day: date, months: int) -> date:
    """``day`` moved by ``months``, the day of month clamped to the target month's end."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    if year > MAXYEAR:
        raise OverflowError("date past year 9999")
    return date(year, month0 + 1, min(day.day, calendar.monthrange(year, month0 + 1)[1]))


def once(at: datetime) -> Schedule:
    """A single occurrence at ``at``: how a job with no schedule runs ("run once now").

    Its text is empty, like the schedule of such a job.
    """
    return Schedule(text="", repeat=0, start=_utc(at), interval=_ZERO)


@lru_cache(maxsize=4096)
def parse_schedule(text: str, local_zone: tzinfo = _UTC) -> Schedule:
    """Parse ``R[n]/<start>/<interval>``; cached, since many jobs share a schedule text.

    ``local_zone`` is the server's zone: a start whose offset matches it at that instant
    follows its DST changes.
    """
    parts = text.split("/")
    if len(parts) != 3:
        raise InvalidSchedule(
            f"schedule: {_quote(text)} must have three parts R[n]/<start>/<interval>, "
            f"got {len(parts)}"
        )
    repeat = _parse_repeat(parts[0])
    start = _parse_start(parts[1], local_zone)
    interval = _ZERO if repeat == 0 else _parse_interval(parts[2])
    return Schedule(text=text, repeat=repeat, start=start, interval=interval)


def _parse_repeat(part: str) -> int | None:
    """``R`` or ``R-1``: forever (None); ``R<n>``: n (n+1 runs); ``R-k``, k > 1: 0 (one run)."""
    match = _REPEAT.fullmatch(part)
    if match is None:
        raise InvalidSchedule(f"schedule: repeat part {_quote(part)} is not R or R<n>")
    sign, digits = match.groups()
    if digits is None:
        return None
    if len(digits) > _MAX_REPEAT_DIGITS:
        raise InvalidSchedule(f"schedule: repeat count in {_quote(part)} is too large")
    n = -int(digits) if sign == "-" else int(digits)
    if n >= 0:
        return n
    return None if n == -1 else 0


def _parse_start(part: str, local_zone: tzinfo) -> datetime:
    """RFC 3339 (or the same without a zone, meaning UTC), in the schedule's zone."""
    match = _START.fullmatch(part)
    if match is None:
        raise InvalidSchedule(
            f"schedule: start {_quote(part)} is not RFC 3339 like 2030-01-02T15:04:05Z"
        )
    *fields, fraction, zone = match.groups()
    micro = int((fraction or "")[:6].ljust(6, "0"))
    try:
        naive = datetime(*map(int, fields), micro)
        return _in_zone(naive, zone, local_zone)
    except (ValueError, OverflowError) as exc:
        raise InvalidSchedule(
            f"schedule: start {_quote(part)} is not a valid time: {exc}"
        ) from None


def _in_zone(naive: datetime, zone: str | None, local_zone: tzinfo) -> datetime:
    """UTC for ``Z`` or no zone; ``local_zone`` if the offset is its offset then; else fixed."""
    if zone is None or zone == "Z":
        return naive.replace(tzinfo=_UTC)
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {zone} is out of range")
    offset = timedelta(hours=hours, minutes=minutes) * (-1 if zone[0] == "-" else 1)
    instant = naive.replace(tzinfo=timezone(offset))
    local = instant.astimezone(local_zone)
    return local if local.utcoffset() == offset else instant


def _parse_interval(part: str) -> Interval:
    interval = parse_duration(part, "schedule: interval") if part else _ZERO
    if interval.is_zero():
        raise InvalidSchedule("schedule: interval must be greater than zero")
    return interval


def check_new_schedule(schedule: Schedule, now: datetime) -> None:
    """Creation-time rule: a schedule must still have an occurrence at or after ``now``.

    For ``R0`` that means its start is not in the past. A repeating schedule with a
    past start is fine: it runs from the next grid point.
    """
    last = schedule.last
    if last is None or last >= _utc(now):
        return
    if schedule.repeat == 0:
        raise InvalidSchedule(f"schedule: start {schedule.start.isoformat()} is in the past")
    raise InvalidSchedule(
        f"schedule: every occurrence is in the past (the last was {last.isoformat()})"
    )
