"""Wall-clock field arithmetic shared by the parsers, and the timestamp filters' helpers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

from daemon.core.errors import ExpressionError
from daemon.expr.phpdate.formatting import _days_in_month
from daemon.expr.phpdate.zones import _local

# --- shared field arithmetic -----------------------------------------------------------------


def _normalize(
    y: int, m: int, d: int, h: int, i: int, s: int, us: int
) -> tuple[int, int, int, int, int, int, int]:
    """Carry overflowing fields the way timelib does: months into years, then the rest into
    days counted from the first of the month (so Feb 31 is Mar 3)."""
    y += (m - 1) // 12
    m = (m - 1) % 12 + 1
    total_us = (((h * 60) + i) * 60 + s) * 1_000_000 + us
    extra_days, rest = divmod(total_us, 86_400_000_000)
    if not 1 <= y <= 9999:
        raise ExpressionError(f"date out of range (year {y})")
    try:
        day = date.fromordinal(date(y, m, 1).toordinal() + d - 1 + extra_days)
    except (ValueError, OverflowError):
        raise ExpressionError("date out of range (years 1-9999)") from None
    secs, us = divmod(rest, 1_000_000)
    h, secs = divmod(secs, 3600)
    i, s = divmod(secs, 60)
    return day.year, day.month, day.day, h, i, s, us


def _offset_at(seconds: int, tz: tzinfo) -> int:
    """UTC offset (seconds) of `tz` at an instant given in epoch seconds."""
    off = datetime.fromtimestamp(seconds, UTC).astimezone(tz).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def _resolve_local(local_s: int, tz: tzinfo) -> int:
    """Epoch seconds of a wall-clock time (given as if it were UTC) in `tz`, resolved the way
    timelib does: a time in a spring-forward gap moves forward by the gap; an ambiguous time
    in a fall-back hour takes whichever offset the zone has at "local time read as UTC" -
    the standard-time instant in zones east of UTC (Europe/Berlin 02:30 -> CET), the DST
    one west of it (America/New_York 01:30 -> EDT)."""
    if isinstance(tz, timezone):
        return local_s - _offset_at(0, tz)
    current = _offset_at(local_s, tz)
    after = _offset_at(local_s - current, tz)
    if current == after:
        return local_s - current
    # The offsets differ, so a transition lies near; find the one that starts `after`'s
    # period (the latest change at or before local_s - current) by bisection.
    lo, hi = local_s - current - 2 * 86400, local_s - current
    if _offset_at(lo, tz) == after:
        return local_s - after
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset_at(mid, tz) == after:
            hi = mid
        else:
            lo = mid
    transition = hi
    in_transition = (
        local_s - after >= transition + (current - after) and local_s - after < transition
    )
    return local_s - (current if in_transition else after)


def _instant(fields: tuple[int, ...], tz: tzinfo) -> int:
    y, m, d, h, i, s, us = _normalize(*fields)
    try:
        local_s = (datetime(y, m, d, h, i, s) - datetime(1970, 1, 1)) // timedelta(seconds=1)
        seconds = _resolve_local(local_s, tz)
    except (OverflowError, ValueError, OSError):
        raise ExpressionError("date out of range (years 1-9999)") from None
    return seconds * 1000 + us // 1000


def _dow(y: int, m: int, d: int) -> int:
    """Day of week with Sunday = 0 (PHP's `w`), after normalising the day."""
    y, m, d, *_ = _normalize(y, m, d, 0, 0, 0, 0)
    return date(y, m, d).isoweekday() % 7


def _year2(value: int, digits: int) -> int:
    if digits <= 2:
        return value + (2000 if value < 70 else 1900)
    return value


# --- helpers for the timestamp filters -------------------------------------------------------


def to_local(ms: int, tz: tzinfo) -> datetime:
    """The aware local datetime of an epoch-ms instant in `tz`."""
    return _local(ms, tz)


def shift(ms: int, tz: tzinfo, *, years: int = 0, months: int = 0, days: int = 0) -> int:
    """Add calendar years, months and days to the wall clock in `tz`.

    Unlike `strtotime`'s "+1 month", a day past the end of the target month is clamped to
    its last day (Jan 31 + 1 month = Feb 28), as SQL interval arithmetic does: these are the
    `timestamp_add_*` filters, which also run inside database queries.
    """
    local = _local(ms, tz)
    total_months = local.year * 12 + local.month - 1 + years * 12 + months
    y, m0 = divmod(total_months, 12)
    if not 1 <= y <= 9999:
        raise ExpressionError(f"date out of range (year {y})")
    d = min(local.day, _days_in_month(y, m0 + 1))
    fields = (y, m0 + 1, d + days, local.hour, local.minute, local.second, local.microsecond)
    return _instant(fields, tz)
