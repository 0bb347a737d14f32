"""Schedules: parsing, the occurrence grid, calendar clamping, DST and the search helpers."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from kalad.core.errors import InvalidSchedule
from kalad.core.schedule import (
    Interval,
    Schedule,
    check_new_schedule,
    once,
    parse_duration,
    parse_schedule,
)

UTC = timezone.utc
LA = ZoneInfo("America/Los_Angeles")
FAR = datetime(9000, 1, 1, tzinfo=UTC)


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def total(schedule: Schedule) -> int:
    return schedule.occurrences_between(schedule.occurrence(0), FAR)[0]


# --- repeat part -------------------------------------------------------------------


@pytest.mark.parametrize(
    "repeat, expected",
    [
        ("R", None),
        ("R-1", None),
        ("R0", 0),
        ("R1", 1),
        ("R5", 5),
        ("R+5", 5),
        ("R005", 5),
        ("R-0", 0),
        ("R-2", 0),
        ("R-100", 0),
    ],
)
def test_repeat_part(repeat: str, expected: int | None) -> None:
    assert parse_schedule(f"{repeat}/2030-01-01T00:00:00Z/PT1S").repeat == expected


@pytest.mark.parametrize(
    "text, runs",
    [
        ("R0/2030-01-01T00:00:00Z/", 1),
        ("R1/2030-01-01T00:00:00Z/PT1H", 2),
        ("R2/2030-01-01T00:00:00Z/PT1H", 3),
        ("R5/2030-01-01T00:00:00Z/P1D", 6),
        ("R-3/2030-01-01T00:00:00Z/P1D", 1),
    ],
)
def test_finite_schedules_run_n_plus_one_times(text: str, runs: int) -> None:
    schedule = parse_schedule(text)
    assert total(schedule) == runs
    assert schedule.last == schedule.occurrence(runs - 1)
    assert schedule.first_after(schedule.last) is None


def test_forever_has_no_last_and_keeps_going() -> None:
    schedule = parse_schedule("R/2030-01-01T00:00:00Z/P1D")
    assert schedule.last is None
    assert schedule.first_at_or_after(utc(2100, 6, 1, 0, 0, 1)) == utc(2100, 6, 2)


# --- invalid input -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "three parts"),
        ("R/2030-01-01T00:00:00Z", "three parts"),
        ("R/2030-01-01T00:00:00Z/PT1S/x", "three parts"),
        ("5/x/y", "repeat part '5'"),
        ("r5/2030-01-01T00:00:00Z/PT1S", "repeat part 'r5'"),
        ("/2030-01-01T00:00:00Z/PT1S", "repeat part ''"),
        ("RR5/2030-01-01T00:00:00Z/PT1S", "repeat part 'RR5'"),
        ("R5x/2030-01-01T00:00:00Z/PT1S", "repeat part"),
        ("R+/2030-01-01T00:00:00Z/PT1S", "repeat part"),
        ("R" + "9" * 5000 + "/2030-01-01T00:00:00Z/PT1S", "too large"),
        ("R/2030-01-01/PT1S", "start '2030-01-01'"),
        ("R/2030-01-01 00:00:00Z/PT1S", "start"),
        ("R/2030-01-01T00:00:00+0200/PT1S", "start"),
        ("R/2030-01-01T00:00:00z/PT1S", "start"),
        ("R/2030-01-01t00:00:00Z/PT1S", "start"),
        ("R/2030-01-01T00:00Z/PT1S", "start"),
        ("R/2030-01-01T00:00:00.Z/PT1S", "start"),
        ("R/2030-13-01T00:00:00Z/PT1S", "start"),
        ("R/2030-02-30T00:00:00Z/PT1S", "start"),
        ("R/2030-01-01T24:00:00Z/PT1S", "start"),
        ("R/2030-01-01T00:00:00+24:00/PT1S", "start"),
        ("R/2030-01-01T00:00:00+01:60/PT1S", "start"),
        ("R/0001-01-01T00:00:00+01:00/PT1S", "start"),
        ("R5/2030-01-01T00:00:00Z/PT0S", "interval must be greater than zero"),
        ("R5/2030-01-01T00:00:00Z/P0D", "interval must be greater than zero"),
        ("R5/2030-01-01T00:00:00Z/", "interval must be greater than zero"),
        ("R/2030-01-01T00:00:00Z/DTT", "interval"),
        ("R/2030-01-01T00:00:00Z/P1X", "interval"),
        ("R/2030-01-01T00:00:00Z/P1DT", "interval"),
        ("R/2030-01-01T00:00:00Z/P1.5M", "months must be a whole number"),
    ],
)
def test_bad_schedules_raise_invalid_schedule(text: str, words: str) -> None:
    with pytest.raises(InvalidSchedule, match="^schedule: ") as caught:
        parse_schedule(text)
    assert words in str(caught.value)
    assert len(str(caught.value)) < 200


def test_r0_ignores_its_interval_part() -> None:
    for interval in ("", "garbage", "PT0S"):
        schedule = parse_schedule(f"R0/2030-01-01T00:00:00Z/{interval}")
        assert schedule.repeat == 0
        assert schedule.interval.is_zero()
        assert schedule.last == utc(2030, 1, 1)


# --- start and zones ---------------------------------------------------------------


@pytest.mark.parametrize(
    "start, expected",
    [
        ("2030-01-02T03:04:05Z", utc(2030, 1, 2, 3, 4, 5)),
        ("2030-01-02T03:04:05", utc(2030, 1, 2, 3, 4, 5)),
        ("2030-01-02T03:04:05.5Z", utc(2030, 1, 2, 3, 4, 5, 500000)),
        ("2030-01-02T03:04:05.123456789Z", utc(2030, 1, 2, 3, 4, 5, 123456)),
        ("2030-01-02T03:04:05+02:00", utc(2030, 1, 2, 1, 4, 5)),
        ("2030-01-02T03:04:05-05:30", utc(2030, 1, 2, 8, 34, 5)),
    ],
)
def test_start_formats(start: str, expected: datetime) -> None:
    assert parse_schedule(f"R/{start}/PT1H").occurrence(0) == expected


@pytest.mark.parametrize("start", ["2024-03-08T14:09:00Z", "2024-03-08T14:09:00"])
def test_start_without_offset_or_with_z_is_utc_even_with_a_local_zone(start: str) -> None:
    assert parse_schedule(f"R/{start}/P1D", LA).start.tzinfo is UTC


def test_start_with_the_local_offset_follows_the_local_zone() -> None:
    assert parse_schedule("R/2024-03-08T14:09:00-08:00/P1D", LA).start.tzinfo is LA


def test_start_with_another_offset_gets_a_fixed_offset() -> None:
    schedule = parse_schedule("R/2024-03-08T14:09:00+02:00/P1D", LA)
    assert schedule.start.utcoffset() == timedelta(hours=2)
    assert schedule.start.tzinfo is not LA
    # A fixed offset has no DST: the UTC time never moves.
    times = {schedule.occurrence(k).time() for k in range(300)}
    assert times == {datetime(2000, 1, 1, 12, 9).time()}


def test_parse_schedule_is_cached() -> None:
    text = "R/2030-01-01T00:00:00Z/PT7S"
    assert parse_schedule(text) is parse_schedule(text)


# --- calendar arithmetic -----------------------------------------------------------


@pytest.mark.parametrize(
    "text, dates",
    [
        (
            "R/2024-01-31T10:00:00Z/P1M",
            ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31"],
        ),
        (
            "R/2023-01-31T10:00:00Z/P1M",
            ["2023-01-31", "2023-02-28", "2023-03-31", "2023-04-30"],
        ),
        (
            "R/2024-07-31T10:00:00Z/P1M",
            ["2024-07-31", "2024-08-31", "2024-09-30", "2024-10-31", "2024-11-30"],
        ),
        (
            "R/2024-02-29T10:00:00Z/P1Y",
            ["2024-02-29", "2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29"],
        ),
        (
            "R/2024-01-31T10:00:00Z/P1M1D",
            ["2024-01-31", "2024-03-01", "2024-04-02", "2024-05-03"],
        ),
        ("R/2024-01-01T10:00:00Z/P1W", ["2024-01-01", "2024-01-08", "2024-01-15"]),
        ("R/2024-12-31T10:00:00Z/P2M", ["2024-12-31", "2025-02-28", "2025-04-30"]),
    ],
)
def test_month_ends_clamp_per_occurrence(text: str, dates: list[str]) -> None:
    schedule = parse_schedule(text)
    got = [schedule.occurrence(k).date().isoformat() for k in range(len(dates))]
    assert got == dates


@pytest.mark.parametrize(
    "interval, start, second",
    [
        ("P1DT10M10S", utc(2030, 1, 1), utc(2030, 1, 2, 0, 10, 10)),
        ("PT36H", utc(2030, 1, 1), utc(2030, 1, 2, 12)),
        ("P1W", utc(2030, 1, 1), utc(2030, 1, 8)),
        ("P1Y1D", utc(2019, 1, 2), utc(2019, 1, 2) + timedelta(days=366)),
        ("PT1.5S", utc(2030, 1, 1), utc(2030, 1, 1, 0, 0, 1, 500000)),
    ],
)
def test_second_occurrence(interval: str, start: datetime, second: datetime) -> None:
    text = f"R/{start.isoformat()}/{interval}"
    assert parse_schedule(text).occurrence(1) == second


def test_occurrences_are_computed_from_start_without_drift() -> None:
    schedule = parse_schedule("R/2030-01-01T00:00:00Z/PT0.1S")
    assert schedule.occurrence(10**9) == utc(2030, 1, 1) + timedelta(seconds=10**8)


# --- daylight saving time (2024-03-10, America/Los_Angeles) -------------------------


@pytest.mark.parametrize(
    "interval, local_times",
    [
        ("P1D", ["14:09-08:00", "14:09-08:00", "14:09-07:00", "14:09-07:00"]),
        ("PT24H", ["14:09-08:00", "14:09-08:00", "15:09-07:00", "15:09-07:00"]),
    ],
)
def test_across_dst(interval: str, local_times: list[str]) -> None:
    schedule = parse_schedule(f"R/2024-03-08T14:09:00-08:00/{interval}", LA)
    got = [schedule.occurrence(k).astimezone(LA).isoformat()[11:] for k in range(4)]
    assert got == [t[:5] + ":00" + t[5:] for t in local_times]


def test_ambiguous_start_keeps_its_fold() -> None:
    # 01:30 happens twice on 2024-11-03; -08:00 is the second (PST) one.
    schedule = parse_schedule("R/2024-11-03T01:30:00-08:00/PT1H", LA)
    assert schedule.occurrence(0) == utc(2024, 11, 3, 9, 30)
    assert schedule.occurrence(1) == utc(2024, 11, 3, 10, 30)


def test_nonexistent_local_time_uses_fold_zero() -> None:
    # 02:30 does not exist on 2024-03-10; fold=0 reads it with the PST offset.
    schedule = parse_schedule("R/2024-03-09T02:30:00-08:00/P1D", LA)
    assert schedule.occurrence(1) == utc(2024, 3, 10, 10, 30)
    assert schedule.occurrence(2) == utc(2024, 3, 11, 9, 30)


# --- searching the grid ------------------------------------------------------------

DAILY = parse_schedule("R/2030-01-01T09:00:00Z/P1D")
THREE = parse_schedule("R2/2030-01-01T09:00:00Z/P1D")


@pytest.mark.parametrize(
    "schedule, t, at_or_after, after",
    [
        (DAILY, utc(2020, 1, 1), utc(2030, 1, 1, 9), utc(2030, 1, 1, 9)),
        (DAILY, utc(2030, 1, 1, 9), utc(2030, 1, 1, 9), utc(2030, 1, 2, 9)),
        (DAILY, utc(2030, 1, 1, 9, 0, 0, 1), utc(2030, 1, 2, 9), utc(2030, 1, 2, 9)),
        (DAILY, utc(2030, 5, 17, 8, 59), utc(2030, 5, 17, 9), utc(2030, 5, 17, 9)),
        (THREE, utc(2030, 1, 3, 9), utc(2030, 1, 3, 9), None),
        (THREE, utc(2030, 1, 3, 9, 0, 1), None, None),
        (once(utc(2030, 1, 1)), utc(2029, 1, 1), utc(2030, 1, 1), utc(2030, 1, 1)),
        (once(utc(2030, 1, 1)), utc(2030, 1, 1), utc(2030, 1, 1), None),
    ],
)
def test_first_at_or_after_and_first_after(
    schedule: Schedule, t: datetime, at_or_after: datetime | None, after: datetime | None
) -> None:
    assert schedule.first_at_or_after(t) == at_or_after
    assert schedule.first_after(t) == after


def test_search_accepts_any_aware_zone() -> None:
    t = datetime(2030, 5, 17, 1, 59, tzinfo=LA)  # 08:59 UTC
    assert DAILY.first_at_or_after(t) == utc(2030, 5, 17, 9)
    with pytest.raises(ValueError, match="aware"):
        DAILY.first_at_or_after(datetime(2030, 1, 1))


def test_old_start_with_tiny_interval_is_answered_from_an_estimate() -> None:
    now = utc(2034, 5, 6, 7, 8, 9, 250000)
    schedule = parse_schedule("R/2024-05-06T07:08:09.5Z/PT1S")
    assert schedule.first_at_or_after(now) == utc(2034, 5, 6, 7, 8, 9, 500000)
    after = schedule.first_after(utc(2034, 5, 6, 7, 8, 9, 500000))
    assert after == utc(2034, 5, 6, 7, 8, 10, 500000)
    count, latest = schedule.occurrences_between(schedule.start, now)
    assert latest == utc(2034, 5, 6, 7, 8, 8, 500000)
    assert count == (latest - schedule.start) // timedelta(seconds=1) + 1


@pytest.mark.parametrize(
    "schedule, a, b, count, latest",
    [
        (DAILY, utc(2030, 1, 1), utc(2030, 1, 1, 9), 0, None),
        (DAILY, utc(2030, 1, 1), utc(2030, 1, 1, 9, 0, 0, 1), 1, utc(2030, 1, 1, 9)),
        (DAILY, utc(2030, 1, 1, 9), utc(2030, 1, 4, 9), 3, utc(2030, 1, 3, 9)),
        (DAILY, utc(2030, 1, 4), utc(2030, 1, 1), 0, None),
        (DAILY, utc(2020, 1, 1), utc(2031, 1, 1), 365, utc(2030, 12, 31, 9)),
        (THREE, utc(2020, 1, 1), utc(2031, 1, 1), 3, utc(2030, 1, 3, 9)),
        (THREE, utc(2030, 1, 2, 12), utc(2031, 1, 1), 1, utc(2030, 1, 3, 9)),
        (once(utc(2030, 1, 1)), utc(2020, 1, 1), utc(2031, 1, 1), 1, utc(2030, 1, 1)),
    ],
)
def test_occurrences_between(
    schedule: Schedule, a: datetime, b: datetime, count: int, latest: datetime | None
) -> None:
    assert schedule.occurrences_between(a, b) == (count, latest)


def test_grid_ends_before_year_10000() -> None:
    schedule = parse_schedule("R999999/9990-01-01T00:00:00Z/P1Y")
    assert schedule.last == utc(9999, 1, 1)
    assert schedule.first_after(utc(9999, 1, 1)) is None
    with pytest.raises(OverflowError):
        schedule.occurrence(10)


def test_a_fixed_step_grid_ends_before_year_10000_too() -> None:
    schedule = parse_schedule("R5/9999-12-31T23:59:57Z/PT1S")
    assert schedule.last == datetime.max.replace(microsecond=0, tzinfo=UTC)
    assert schedule.first_after(schedule.last) is None
    assert schedule.occurrences_between(utc(9999, 1, 1), datetime.max.replace(tzinfo=UTC)) == (
        3, schedule.last)


# Fixed steps (no years, months or days) are computed, not searched: held against the
# grid itself, occurrence by occurrence, across DST, offsets, repeat limits and fractions.
FIXED_STEPS = [
    "R/2030-01-01T09:00:00Z/PT1S",
    "R/2030-03-10T01:59:59.5-08:00/PT0.25S",
    "R/2030-03-09T12:00:00-08:00/PT7H",
    "R/2030-11-03T01:30:00-07:00/PT20M",
    "R3/2030-01-01T00:00:00.123456Z/PT1.000001S",
    "R1/2030-01-01T00:00:00+05:30/PT36H",
    "R4/2030-01-01T00:00:00Z/PT1M",
]


@pytest.mark.parametrize("text", FIXED_STEPS)
def test_fixed_step_searches_agree_with_the_grid(text: str) -> None:
    schedule = parse_schedule(text, LA)
    n = 40 if schedule.repeat is None else schedule.repeat + 1
    grid = [schedule.occurrence(k) for k in range(n)]
    step = grid[1] - grid[0] if len(grid) > 1 else timedelta(seconds=1)
    probes = [grid[0] - step * 3, grid[0] - timedelta(microseconds=1)]
    for at in grid[: min(n, 30)]:
        probes += [at - timedelta(microseconds=1), at, at + timedelta(microseconds=1), at + step / 2]
    probes = [p for p in probes if p < grid[-1] + step]  # the reference grid covers these
    for t in probes:
        assert schedule.first_at_or_after(t) == next((o for o in grid if o >= t), None), t
        assert schedule.first_after(t) == next((o for o in grid if o > t), None), t
        for b in probes[::5]:
            inside = [o for o in grid if t <= o < b]
            assert schedule.occurrences_between(t, b) == (len(inside), max(inside, default=None))
    if schedule.repeat is not None:
        assert schedule.last == grid[-1]


# --- once and the creation rule ----------------------------------------------------


def test_once() -> None:
    at = datetime(2030, 1, 1, 1, tzinfo=LA)
    schedule = once(at)
    assert (schedule.text, schedule.repeat) == ("", 0)
    assert schedule.start == at and schedule.start.tzinfo is UTC
    assert schedule.last == at
    assert total(schedule) == 1


NOW = utc(2030, 6, 1, 12)


@pytest.mark.parametrize(
    "text",
    [
        "R0/2030-06-01T12:00:00Z/",
        "R0/2031-01-01T00:00:00Z/",
        "R/2020-01-01T00:00:00Z/PT1M",
        "R/2031-01-01T00:00:00Z/PT1M",
        "R5/2030-06-01T11:00:00Z/PT1H",  # the last run is still to come
    ],
)
def test_check_new_schedule_accepts(text: str) -> None:
    check_new_schedule(parse_schedule(text), NOW)
    check_new_schedule(once(NOW), NOW)


@pytest.mark.parametrize(
    "text, words",
    [
        ("R0/2030-06-01T11:59:59Z/", r"^schedule: start 2030-06-01T11:59:59\+00:00 is in the past"),
        ("R-7/2020-01-01T00:00:00Z/PT1M", "is in the past"),
        ("R3/2030-06-01T08:00:00Z/PT1H", "every occurrence is in the past"),
    ],
)
def test_check_new_schedule_rejects(text: str, words: str) -> None:
    with pytest.raises(InvalidSchedule, match=words):
        check_new_schedule(parse_schedule(text), NOW)


# --- durations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, interval",
    [
        ("P1DT10M10S", Interval(0, 0, 1, timedelta(minutes=10, seconds=10))),
        ("PT36H", Interval(0, 0, 0, timedelta(hours=36))),
        ("PT24H", Interval(0, 0, 0, timedelta(hours=24))),
        ("P1D", Interval(0, 0, 1, timedelta(0))),
        ("P1W", Interval(0, 0, 7, timedelta(0))),
        ("P1W2D", Interval(0, 0, 9, timedelta(0))),
        ("P1Y1D", Interval(1, 0, 1, timedelta(0))),
        ("P1Y2M3DT4H5M6S", Interval(1, 2, 3, timedelta(hours=4, minutes=5, seconds=6))),
        ("P1.5D", Interval(0, 0, 1, timedelta(hours=12))),
        ("PT0.25S", Interval(0, 0, 0, timedelta(milliseconds=250))),
        ("PT0S", Interval(0, 0, 0, timedelta(0))),
    ],
)
def test_parse_duration(text: str, interval: Interval) -> None:
    assert parse_duration(text) == interval


@pytest.mark.parametrize(
    "text",
    [
        "", "DTT", "000D", "ASDASD", "P", "P1DT", "-P1D", "p1d", "P1D ", " P1D", "P1D\n",
        "P1H", "PT1W", "P1.5Y", "P99999999999D",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidSchedule, match="^epsilon: "):
        parse_duration(text, "epsilon")


@pytest.mark.parametrize(
    "interval, approx",
    [
        (Interval(0, 1, 0, timedelta(0)), timedelta(days=30.436875)),
        (Interval(1, 0, 0, timedelta(0)), timedelta(days=365.2425)),
        (Interval(0, 0, 2, timedelta(hours=1)), timedelta(days=2, hours=1)),
    ],
)
def test_interval_approx(interval: Interval, approx: timedelta) -> None:
    assert interval.approx() == approx
    assert not interval.is_zero()


@pytest.mark.parametrize(
    "repeat, start, interval",
    [
        (None, datetime(2030, 1, 1), Interval(0, 0, 1, timedelta(0))),
        (-1, utc(2030, 1, 1), Interval(0, 0, 1, timedelta(0))),
        (None, utc(2030, 1, 1), Interval(0, 0, 0, timedelta(0))),
    ],
)
def test_schedule_is_validated_on_construction(
    repeat: int | None, start: datetime, interval: Interval
) -> None:
    with pytest.raises(ValueError):
        Schedule("", repeat, start, interval)
