"""Cron evaluation: DST tables, Quartz-style extensions, OR semantics, invalid expressions."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from daemon.core.cron import CronSchedule

NY = "America/New_York"
BERLIN = "Europe/Berlin"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(expr: str, tz: str, after: str, n: int) -> list[str]:
    schedule = CronSchedule(expr, ZoneInfo(tz))
    return [d.astimezone(UTC).strftime("%m-%dT%H:%M:%S") for d in schedule.next_n(utc(after), n)]


# (expression, zone, after (UTC), expected fires (UTC, month-day T time))
DST_TABLE = [
    # --- America/New_York, spring forward 2026-03-08: 02:00 EST -> 03:00 EDT (07:00Z) ---
    ("0 2 * * *", NY, "2026-03-06T12:00", ["03-07T07:00:00", "03-08T07:00:00", "03-09T06:00:00"]),
    ("30 2 * * *", NY, "2026-03-07T12:00", ["03-08T07:00:00", "03-09T06:30:00"]),
    ("0 3 * * *", NY, "2026-03-07T12:00", ["03-08T07:00:00", "03-09T07:00:00"]),
    (
        "*/15 * * * *",
        NY,
        "2026-03-08T06:30",
        ["03-08T06:45:00", "03-08T07:00:00", "03-08T07:15:00"],
    ),
    ("0 * * * *", NY, "2026-03-08T05:30", ["03-08T06:00:00", "03-08T07:00:00", "03-08T08:00:00"]),
    ("@daily", NY, "2026-03-07T12:00", ["03-08T05:00:00", "03-09T04:00:00"]),
    (
        "*/30 * * * * *",
        NY,
        "2026-03-08T06:59:15",
        ["03-08T06:59:30", "03-08T07:00:00", "03-08T07:00:30"],
    ),
    ("0 30 2 * * *", NY, "2026-03-07T12:00", ["03-08T07:00:00", "03-09T06:30:00"]),
    # --- America/New_York, fall back 2026-11-01: 02:00 EDT -> 01:00 EST (06:00Z) ---
    ("0 2 * * *", NY, "2026-10-30T12:00", ["10-31T06:00:00", "11-01T07:00:00", "11-02T07:00:00"]),
    ("30 1 * * *", NY, "2026-10-31T12:00", ["11-01T05:30:00", "11-02T06:30:00"]),
    ("30 2 * * *", NY, "2026-10-31T12:00", ["11-01T07:30:00", "11-02T07:30:00"]),
    ("0 3 * * *", NY, "2026-10-31T12:00", ["11-01T08:00:00", "11-02T08:00:00"]),
    (
        "*/15 * * * *",
        NY,
        "2026-11-01T05:40",
        ["11-01T05:45:00", "11-01T06:00:00", "11-01T06:15:00", "11-01T06:30:00"],
    ),
    ("0 * * * *", NY, "2026-11-01T04:30", ["11-01T05:00:00", "11-01T06:00:00", "11-01T07:00:00"]),
    ("@daily", NY, "2026-10-31T12:00", ["11-01T04:00:00", "11-02T05:00:00"]),
    (
        "*/30 * * * * *",
        NY,
        "2026-11-01T05:59:15",
        ["11-01T05:59:30", "11-01T06:00:00", "11-01T06:00:30"],
    ),
    # --- Europe/Berlin, spring forward 2026-03-29: 02:00 CET -> 03:00 CEST (01:00Z) ---
    (
        "0 2 * * *",
        BERLIN,
        "2026-03-27T12:00",
        ["03-28T01:00:00", "03-29T01:00:00", "03-30T00:00:00"],
    ),
    ("30 2 * * *", BERLIN, "2026-03-28T12:00", ["03-29T01:00:00", "03-30T00:30:00"]),
    ("0 3 * * *", BERLIN, "2026-03-28T12:00", ["03-29T01:00:00", "03-30T01:00:00"]),
    (
        "*/15 * * * *",
        BERLIN,
        "2026-03-29T00:40",
        ["03-29T00:45:00", "03-29T01:00:00", "03-29T01:15:00"],
    ),
    (
        "0 * * * *",
        BERLIN,
        "2026-03-28T23:30",
        ["03-29T00:00:00", "03-29T01:00:00", "03-29T02:00:00"],
    ),
    ("@daily", BERLIN, "2026-03-28T12:00", ["03-28T23:00:00", "03-29T22:00:00"]),
    (
        "*/30 * * * * *",
        BERLIN,
        "2026-03-29T00:59:15",
        ["03-29T00:59:30", "03-29T01:00:00", "03-29T01:00:30"],
    ),
    # --- Europe/Berlin, fall back 2026-10-25: 03:00 CEST -> 02:00 CET (01:00Z) ---
    ("0 2 * * *", BERLIN, "2026-10-24T12:00", ["10-25T00:00:00", "10-26T01:00:00"]),
    ("30 2 * * *", BERLIN, "2026-10-24T12:00", ["10-25T00:30:00", "10-26T01:30:00"]),
    ("0 3 * * *", BERLIN, "2026-10-24T12:00", ["10-25T02:00:00", "10-26T02:00:00"]),
    (
        "*/15 * * * *",
        BERLIN,
        "2026-10-25T00:40",
        ["10-25T00:45:00", "10-25T01:00:00", "10-25T01:15:00", "10-25T01:30:00"],
    ),
    (
        "0 * * * *",
        BERLIN,
        "2026-10-24T23:30",
        ["10-25T00:00:00", "10-25T01:00:00", "10-25T02:00:00"],
    ),
    ("@daily", BERLIN, "2026-10-24T12:00", ["10-24T22:00:00", "10-25T23:00:00"]),
    (
        "*/30 * * * * *",
        BERLIN,
        "2026-10-25T00:59:15",
        ["10-25T00:59:30", "10-25T01:00:00", "10-25T01:00:30"],
    ),
]


@pytest.mark.parametrize(("expr", "tz", "after", "expected"), DST_TABLE)
def test_dst_transitions(expr: str, tz: str, after: str, expected: list[str]) -> None:
    """Fires around each DST change land on the exact UTC instants the contract's "Cron" defines."""
    assert fires(expr, tz, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("expr", "tz", "after", "expected"),
    [
        # `after` in the second pass of the repeated hour: the fixed-time job already fired once.
        ("30 1 * * *", NY, "2026-11-01T06:10", "11-02T06:30:00"),
        ("45 1 * * *", NY, "2026-11-01T06:30", "11-02T06:45:00"),
        ("0 2 * * *", BERLIN, "2026-10-25T00:30", "10-26T01:00:00"),
    ],
)
def test_repeated_hour_never_fires_twice_or_backwards(
    expr: str, tz: str, after: str, expected: str
) -> None:
    """next_after never returns a time at or before `after`, even inside the repeated hour."""
    assert fires(expr, tz, after, 1) == [expected]


def test_next_after_is_strict_and_in_zone() -> None:
    """A fire exactly at `after` is not returned; results are aware, in the schedule's zone."""
    schedule = CronSchedule("0 9 * * *", ZoneInfo(NY))
    first = schedule.next_after(utc("2026-06-01T12:00"))
    assert first == datetime(2026, 6, 1, 9, tzinfo=ZoneInfo(NY))
    assert first.tzinfo == ZoneInfo(NY)
    assert schedule.next_after(first) == datetime(2026, 6, 2, 9, tzinfo=ZoneInfo(NY))
    assert schedule.next_after(first.replace(microsecond=1)).day == 2


def test_naive_after_is_rejected() -> None:
    """A naive datetime is ambiguous, so next_after refuses it."""
    with pytest.raises(ValueError, match="aware"):
        CronSchedule("* * * * *", ZoneInfo("UTC")).next_after(datetime(2026, 1, 1))


def local(expr: str, after: str, n: int, tz: str = "UTC") -> list[str]:
    schedule = CronSchedule(expr, ZoneInfo(tz))
    start = datetime.fromisoformat(after).replace(tzinfo=ZoneInfo(tz))
    return [d.strftime("%Y-%m-%d %H:%M:%S %a") for d in schedule.next_n(start, n)]


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("0 9 L * *", "2026-01-15", ["2026-01-31 09:00:00 Sat", "2026-02-28 09:00:00 Sat"]),
        ("0 9 LW * *", "2026-01-15", ["2026-01-30 09:00:00 Fri", "2026-02-27 09:00:00 Fri"]),
        # 15W: Feb 15 2026 is a Sunday -> Monday 16th; Aug 15 a Saturday -> Friday 14th.
        ("0 9 15W * *", "2026-02-01", ["2026-02-16 09:00:00 Mon", "2026-03-16 09:00:00 Mon"]),
        ("0 9 15W 8 *", "2026-01-01", ["2026-08-14 09:00:00 Fri"]),
        # 1W on a Saturday moves forward (never into the previous month).
        ("0 9 1W 8 *", "2026-01-01", ["2026-08-03 09:00:00 Mon"]),
        ("0 9 * * MON#1", "2026-01-01", ["2026-01-05 09:00:00 Mon", "2026-02-02 09:00:00 Mon"]),
        ("0 9 * * 5L", "2026-01-01", ["2026-01-30 09:00:00 Fri", "2026-02-27 09:00:00 Fri"]),
        ("0 9 * JAN,JUL SUN", "2026-01-20", ["2026-01-25 09:00:00 Sun", "2026-07-05 09:00:00 Sun"]),
        ("0 9 * * mon-fri", "2026-01-02 10:00", ["2026-01-05 09:00:00 Mon"]),
        ("0 9 * * 7", "2026-01-01", ["2026-01-04 09:00:00 Sun"]),
        # Day-of-month and day-of-week both restricted: either matches (Vixie cron).
        (
            "0 9 13 * FRI",
            "2026-02-01",
            [
                "2026-02-06 09:00:00 Fri",
                "2026-02-13 09:00:00 Fri",
                "2026-02-20 09:00:00 Fri",
                "2026-02-27 09:00:00 Fri",
                "2026-03-06 09:00:00 Fri",
                "2026-03-13 09:00:00 Fri",
            ],
        ),
        ("0 9 1 1,4,7,10 *", "2026-01-02", ["2026-04-01 09:00:00 Wed", "2026-07-01 09:00:00 Wed"]),
        (
            "0 0-12/6 * * *",
            "2026-01-01 01:00",
            ["2026-01-01 06:00:00 Thu", "2026-01-01 12:00:00 Thu"],
        ),
        ("@hourly", "2026-01-01 01:30", ["2026-01-01 02:00:00 Thu"]),
        ("@midnight", "2026-01-01 01:30", ["2026-01-02 00:00:00 Fri"]),
        ("@weekly", "2026-01-01", ["2026-01-04 00:00:00 Sun"]),
        ("@monthly", "2026-01-01", ["2026-02-01 00:00:00 Sun"]),
        ("@yearly", "2026-01-01", ["2027-01-01 00:00:00 Fri"]),
        ("@annually", "2026-01-01", ["2027-01-01 00:00:00 Fri"]),
        (
            "15 10 * * * *",
            "2026-01-01 00:00",
            ["2026-01-01 00:10:15 Thu", "2026-01-01 01:10:15 Thu"],
        ),
        ("0 0 29 2 *", "2026-01-01", ["2028-02-29 00:00:00 Tue"]),
        ("0 9 ? * MON", "2026-01-01", ["2026-01-05 09:00:00 Mon"]),
    ],
)
def test_expression_features(expr: str, after: str, expected: list[str]) -> None:
    """L, LW, W, #, names, lists, ranges, steps, macros and OR semantics fire when expected."""
    assert local(expr, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", 'invalid cron expression "61 * * * *": bad minute field "61"'),
        ("* 24 * * *", 'bad hour field "24"'),
        ("* * * 13 *", 'bad month field "13"'),
        ("* * * * MON#6", 'bad day-of-week field "MON#6"'),
        ("0 0 31 2 *", 'bad day-of-month field "31"'),
        ("* * *", "expected 5 fields (minute hour day-of-month month day-of-week) or 6"),
        ("* * * * * * *", "got 7"),
        ("@fortnightly", 'unknown macro "@fortnightly" (known: @hourly'),
        ("", 'invalid cron expression "": it is empty'),
        ("   ", "it is empty"),
        ("0 9 15W * MON", "cannot be combined with a day-of-week"),
        ("0 9 40W * *", 'bad day-of-month "40W"'),
        ("*/0 * * * *", 'bad minute field "*/0"'),
    ],
)
def test_invalid_expressions(expr: str, message: str) -> None:
    """Invalid expressions raise ValueError saying what is wrong and where."""
    with pytest.raises(ValueError) as info:
        CronSchedule(expr, ZoneInfo("UTC"))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        ("* * * * *", "every minute"),
        ("*/5 * * * *", "every 5 minutes"),
        ("0 * * * *", "every hour"),
        ("0 9 * * *", "daily at 09:00"),
        ("30 17 * * *", "daily at 17:30"),
        ("0 9 * * 1", "every Monday at 09:00"),
        ("0 9 * * MON", "every Monday at 09:00"),
        ("0 9 * * 1-5", "every weekday at 09:00"),
        ("0 9 1 * *", "on day 1 of every month at 09:00"),
        ("@daily", "daily at 00:00"),
        ("*/30 * * * * *", "every 30 seconds"),
        ("0 9 1 1,4,7,10 *", "0 9 1 1,4,7,10 *"),
    ],
)
def test_describe(expr: str, text: str) -> None:
    """Common shapes read as plain words; anything else is shown as written."""
    assert CronSchedule(expr, ZoneInfo("UTC")).describe() == text


def test_has_seconds() -> None:
    """Six fields mean leading seconds."""
    assert CronSchedule("*/30 * * * * *", ZoneInfo("UTC")).has_seconds
    assert not CronSchedule("*/5 * * * *", ZoneInfo("UTC")).has_seconds
