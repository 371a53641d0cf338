"""PHP's strtotime: absolute and relative date text resolved against a base instant."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from daemon.core.errors import ExpressionError
from daemon.expr.phpdate.fields import _dow, _instant, _normalize, _year2
from daemon.expr.phpdate.zones import (
    _ABBREVIATIONS,
    _DAY_NAMES,
    _EPOCH,
    _MAX_TEXT,
    _MONTH_NAMES,
    _fixed,
    _local,
    zone,
)

# --- strtotime -------------------------------------------------------------------------------


_UNITS: Final = {
    "usec": "us",
    "usecs": "us",
    "microsecond": "us",
    "microseconds": "us",
    "µs": "us",
    "µsec": "us",
    "µsecs": "us",
    "msec": "ms",
    "msecs": "ms",
    "millisecond": "ms",
    "milliseconds": "ms",
    "ms": "ms",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "min": "i",
    "mins": "i",
    "minute": "i",
    "minutes": "i",
    "hour": "h",
    "hours": "h",
    "day": "d",
    "days": "d",
    "week": "w",
    "weeks": "w",
    "fortnight": "f",
    "fortnights": "f",
    "forthnight": "f",
    "forthnights": "f",
    "month": "m",
    "months": "m",
    "year": "y",
    "years": "y",
}
_RELTEXT: Final = {
    "last": -1,
    "previous": -1,
    "this": 0,
    "next": 1,
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "eight": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
}

_MONTH_RE: Final = (
    r"(?P<mon>january|february|march|april|may|june|july|august|september|october|november"
    r"|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
)
_DAY_RE: Final = (
    r"(?P<day>monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues|tue|wednes"
    r"|wed|thurs|thur|thu|fri|sat|sun)\.?"
)
_UNIT_RE: Final = "(?P<unit>" + "|".join(sorted(_UNITS, key=len, reverse=True)) + ")"
_RELTEXT_RE: Final = "(?P<rel>" + "|".join(sorted(_RELTEXT, key=len, reverse=True)) + ")"
_SUFFIX_RE: Final = r"(?:st|nd|rd|th)?"
_END: Final = r"(?![a-z0-9])"

# One alternative per token kind, tried in order at the current position. Specific
# shapes come first: "2026-01-15" before a bare number, "+1 day" before the "+01" offset.
_TOKEN_RES: Final[tuple[tuple[str, re.Pattern[str]], ...]] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        ("space", r"[\s,]+"),
        ("epoch", r"@(?P<sec>-?\d+)(?:\.(?P<frac>\d{1,6}))?"),
        ("keyword", r"(?P<word>now|today|midnight|noon|tomorrow|yesterday)" + _END),
        ("ago", r"ago" + _END),
        ("lastdayof", r"(?P<which>first|last)\s+day\s+of" + _END),
        ("weekdayof", _RELTEXT_RE + r"\s+" + _DAY_RE + r"\s+of" + _END),
        ("relweek", _RELTEXT_RE + r"\s+week" + _END),
        ("reltext", _RELTEXT_RE + r"\s+(?:" + _UNIT_RE + "|" + _DAY_RE + ")" + _END),
        ("relnum", r"(?P<sign>[+-]?)\s*(?P<num>\d+)\s*" + _UNIT_RE + _END),
        (
            "isodatetime",
            r"(?P<y>[+-]?\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"
            r"(?:[T\s]+(?P<h>\d{1,2}):(?P<i>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?)?",
        ),
        ("slashymd", r"(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})" + _END),
        ("american", r"(?P<m>\d{1,2})/(?P<d>\d{1,2})(?:/(?P<y>\d{4}|\d{2}))?" + _END),
        ("dmy", r"(?P<d>\d{1,2})[.-](?P<m>\d{1,2})[.-](?P<y>\d{4})" + _END),
        (
            "compact",
            r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})(?:t(?P<h>\d{2})(?P<i>\d{2})(?P<s>\d{2})?)?"
            + _END,
        ),
        ("ym", r"(?P<y>\d{4})-(?P<m>\d{2})" + _END),
        ("monthyear", _MONTH_RE + r"[\s.-]*(?P<y>\d{4})" + _END),
        (
            "daymonth",
            r"(?P<d>\d{1,2})"
            + _SUFFIX_RE
            + r"[\s.-]*"
            + _MONTH_RE
            + r"(?:[\s.,-]*(?P<y>\d{4}))?"
            + _END,
        ),
        (
            "monthday",
            _MONTH_RE
            + r"[\s.-]*(?P<d>\d{1,2})"
            + _SUFFIX_RE
            + r"(?:,?[\s.-]*(?P<y>\d{4}))?"
            + _END,
        ),
        ("month", _MONTH_RE + _END),
        (
            "time12",
            r"t?(?P<h>\d{1,2})(?::(?P<i>\d{2})(?::(?P<s>\d{2}))?)?\s*(?P<ap>[ap])\.?m\.?" + _END,
        ),
        ("time24", r"t?(?P<h>\d{1,2}):(?P<i>\d{2})(?::(?P<s>\d{2})(?:[.,:](?P<f>\d+))?)?" + _END),
        ("weekday", _DAY_RE + _END),
        ("tzoffset", r"(?:gmt|utc)?(?P<sign>[+-])(?P<hh>\d{1,2})(?::?(?P<mm>\d{2}))?" + _END),
        ("tzname", r"(?P<name>[a-z]+(?:/[a-z0-9_+-]+)+|[a-z]{1,5})" + _END),
        ("hhmm", r"(?P<h>\d{2})(?P<i>\d{2})" + _END),
    )
)


class _State:
    """Parsed fields and relative parts of one strtotime text, as timelib keeps them."""

    __slots__ = (
        "d",
        "date_set",
        "first_last",
        "h",
        "have_relative",
        "i",
        "m",
        "rel",
        "s",
        "special",
        "text",
        "time_set",
        "tz",
        "us",
        "weekday",
        "weekday_behavior",
        "y",
    )

    def __init__(self, text: str) -> None:
        self.text = text
        self.y: int | None = None
        self.m: int | None = None
        self.d: int | None = None
        self.h: int | None = None
        self.i: int | None = None
        self.s: int | None = None
        self.us: int | None = None
        self.time_set = False
        self.date_set = False
        self.tz: tzinfo | None = None
        self.rel = [0, 0, 0, 0, 0, 0, 0]  # y m d h i s us
        self.have_relative = False
        self.weekday: int | None = None
        self.weekday_behavior = 0
        self.first_last = 0  # 1 = first day of, 2 = last day of
        self.special = 0  # 1 = Nth weekday of, 2 = last weekday of

    def fail(self, why: str) -> ExpressionError:
        return ExpressionError(f'cannot read "{self.text:.80}" as a date/time: {why}')

    def set_time(self, h: int, i: int, s: int = 0, us: int = 0) -> None:
        if self.time_set:
            raise self.fail("two times given")
        if h > 23 or i > 59 or s > 60:
            raise self.fail(f"time {h}:{i:02d}:{s:02d} out of range")
        self.time_set = True
        self.h, self.i, self.s, self.us = h, i, s, us

    def unset_time(self) -> None:
        # timelib's TIMELIB_UNHAVE_TIME: midnight, but a later time in the text still wins.
        self.time_set = False
        self.h = self.i = self.s = self.us = 0

    def set_date(self, y: int | None, m: int | None, d: int | None) -> None:
        if self.date_set:
            raise self.fail("two dates given")
        if m is not None and not 1 <= m <= 12:
            raise self.fail(f"month {m} out of range")
        if d is not None and not 0 <= d <= 31:
            raise self.fail(f"day {d} out of range")
        self.date_set = True
        if y is not None:
            self.y = y
        if m is not None:
            self.m = m
        if d is not None:
            self.d = d

    def set_zone(self, tz: tzinfo) -> None:
        if self.tz is not None:
            raise self.fail("two time zones given")
        self.tz = tz

    def add_relative(self, amount: int, unit: str) -> None:
        self.have_relative = True
        rel = self.rel
        if unit == "y":
            rel[0] += amount
        elif unit == "m":
            rel[1] += amount
        elif unit == "d":
            rel[2] += amount
        elif unit == "w":
            rel[2] += amount * 7
        elif unit == "f":
            rel[2] += amount * 14
        elif unit == "h":
            rel[3] += amount
        elif unit == "i":
            rel[4] += amount
        elif unit == "s":
            rel[5] += amount
        elif unit == "ms":
            rel[6] += amount * 1000
        else:
            rel[6] += amount

    def weekday_relative(self, amount: int, weekday: int, behavior: int) -> None:
        # timelib_set_relative for a day name: whole weeks go into the day offset, the
        # weekday itself is resolved against the date before the other offsets apply.
        self.have_relative = True
        self.unset_time()
        self.rel[2] += (amount - 1 if amount > 0 else amount) * 7
        self.weekday = weekday
        self.weekday_behavior = behavior


def _int(value: str | None, default: int = 0) -> int:
    return int(value) if value else default


def _fraction_us(digits: str | None) -> int:
    if not digits:
        return 0
    return int(digits[:6].ljust(6, "0"))


def _apply_token(st: _State, kind: str, g: dict[str, str | None]) -> None:
    if kind == "epoch":
        seconds = int(g["sec"] or 0)
        try:
            moment = _EPOCH + timedelta(seconds=seconds, microseconds=_fraction_us(g["frac"]))
        except OverflowError:
            raise st.fail("timestamp out of range") from None
        st.set_date(moment.year, moment.month, moment.day)
        st.set_time(moment.hour, moment.minute, moment.second, moment.microsecond)
        st.set_zone(UTC)
    elif kind == "keyword":
        word = (g["word"] or "").lower()
        if word in ("today", "midnight"):
            st.unset_time()
        elif word == "noon":
            st.unset_time()
            st.set_time(12, 0)
        elif word == "tomorrow":
            st.unset_time()
            st.add_relative(1, "d")
        elif word == "yesterday":
            st.unset_time()
            st.add_relative(-1, "d")
    elif kind == "ago":
        st.rel = [-v for v in st.rel]
    elif kind == "lastdayof":
        st.have_relative = True
        st.first_last = 1 if (g["which"] or "").lower() == "first" else 2
    elif kind == "weekdayof":
        amount = _RELTEXT[(g["rel"] or "").lower()]
        weekday = _DAY_NAMES[(g["day"] or "").lower()]
        if amount > 0:
            st.special = 1
            st.weekday_relative(amount, weekday, 1)
        else:
            st.special = 2
            st.weekday_relative(-1, weekday, 0)
    elif kind == "relweek":
        amount = _RELTEXT[(g["rel"] or "").lower()]
        st.add_relative(amount, "w")
        st.weekday_behavior = 2
        if st.weekday is None:  # "next week" alone lands on that week's Monday (as PHP)
            st.weekday = 1
    elif kind == "reltext":
        amount = _RELTEXT[(g["rel"] or "").lower()]
        if g.get("unit"):
            st.add_relative(amount, _UNITS[(g["unit"] or "").lower()])
        else:
            behavior = 1 if amount == 0 else 0
            st.weekday_relative(amount, _DAY_NAMES[(g["day"] or "").lower()], behavior)
    elif kind == "relnum":
        amount = int(g["num"] or 0)
        if g["sign"] == "-":
            amount = -amount
        st.add_relative(amount, _UNITS[(g["unit"] or "").lower()])
    elif kind == "weekday":
        st.have_relative = True
        st.unset_time()
        st.weekday = _DAY_NAMES[(g["day"] or "").lower()]
        if st.weekday_behavior != 2:
            st.weekday_behavior = 1
    elif kind in ("isodatetime", "compact"):
        st.set_date(int(g["y"] or 0), int(g["m"] or 0), int(g["d"] or 0))
        if g["h"] is not None:
            st.set_time(int(g["h"]), _int(g["i"]), _int(g["s"]), _fraction_us(g.get("f")))
    elif kind == "slashymd" or kind == "dmy":
        st.set_date(int(g["y"] or 0), int(g["m"] or 0), int(g["d"] or 0))
    elif kind == "american":
        y = g["y"]
        st.set_date(_year2(int(y), len(y)) if y else None, int(g["m"] or 0), int(g["d"] or 0))
    elif kind == "ym":
        st.set_date(int(g["y"] or 0), int(g["m"] or 0), 1)
    elif kind == "monthyear":
        st.set_date(int(g["y"] or 0), _MONTH_NAMES[(g["mon"] or "").lower()], 1)
    elif kind in ("daymonth", "monthday"):
        y = g["y"]
        st.set_date(int(y) if y else None, _MONTH_NAMES[(g["mon"] or "").lower()], int(g["d"] or 0))
    elif kind == "month":
        st.set_date(None, _MONTH_NAMES[(g["mon"] or "").lower()], None)
    elif kind == "time12":
        h = int(g["h"] or 0)
        if not 1 <= h <= 12:
            raise st.fail(f"hour {h} is not a 12-hour clock hour")
        h = h % 12 + (12 if (g["ap"] or "").lower() == "p" else 0)
        st.set_time(h, _int(g["i"]), _int(g["s"]))
    elif kind == "time24":
        st.set_time(int(g["h"] or 0), int(g["i"] or 0), _int(g["s"]), _fraction_us(g.get("f")))
    elif kind == "hhmm":
        st.set_time(int(g["h"] or 0), int(g["i"] or 0))
    elif kind == "tzoffset":
        st.set_zone(_fixed(g["sign"] or "+", g["hh"] or "0", g["mm"]))
    elif kind == "tzname":
        name = g["name"] or ""
        if "/" not in name and name.lower() not in _ABBREVIATIONS:
            raise st.fail(f'unknown word "{name}"')
        try:
            st.set_zone(zone(name))
        except ExpressionError:
            raise st.fail(f'unknown time zone "{name}"') from None


def _scan(text: str) -> _State:
    st = _State(text)
    pos = 0
    n = len(text)
    while pos < n:
        for kind, pattern in _TOKEN_RES:
            m = pattern.match(text, pos)
            if m is None or m.end() == pos:
                continue
            if kind != "space":
                _apply_token(st, kind, m.groupdict())
            pos = m.end()
            break
        else:
            raise st.fail(f'unexpected "{text[pos : pos + 20]}"')
    return st


def _weekday_adjust(fields: list[int], weekday: int, behavior: int, rel_d: int) -> None:
    """timelib's do_adjust_for_weekday, on [y, m, d, ...] in place."""
    current = _dow(fields[0], fields[1], fields[2])
    if behavior == 2:
        # "monday next week": move within the current Monday-based week.
        if current == 0 and weekday != 0:
            weekday -= 7
        if weekday == 0 and current != 0:
            weekday = 7
        fields[2] += weekday - current
        return
    difference = weekday - current
    if (rel_d < 0 and difference < 0) or (rel_d >= 0 and difference <= -behavior):
        difference += 7
    fields[2] += difference


def strtotime(text: str, base_ms: int, tz: tzinfo) -> int:
    """PHP `strtotime(text, base)` in zone `tz`, in epoch ms.

    Relative months and years are calendar arithmetic with PHP's overflow: 2026-01-31
    "+1 month" is 2026-02-31, which carries to 2026-03-03 (not clamped to Feb 28).
    Hours, minutes and seconds are added to the wall clock as PHP 8 does, so "+24 hours"
    across a DST change equals "+1 day".
    """
    if len(text) > _MAX_TEXT:
        raise ExpressionError(f"date text longer than {_MAX_TEXT} characters")
    st = _scan(text.strip())
    zone_ = st.tz or tz
    base = _local(base_ms, zone_)
    y = st.y if st.y is not None else base.year
    m = st.m if st.m is not None else base.month
    d = st.d if st.d is not None else base.day
    if st.time_set or st.h is not None:
        h, i, s, us = st.h or 0, st.i or 0, st.s or 0, st.us or 0
    elif st.date_set:
        h = i = s = us = 0  # a date without a time means midnight
    else:
        h, i, s, us = base.hour, base.minute, base.second, base.microsecond
    fields = [y, m, d, h, i, s, us]
    rel = list(st.rel)
    # Nth / last weekday of a month: start from the 1st of the target month.
    if st.special == 1:
        fields[2] = 1
        fields[1] += rel[1]
        rel[1] = 0
    elif st.special == 2:
        fields[2] = 1
        fields[1] += rel[1] + 1
        rel[1] = 0
    if st.weekday is not None:
        fields = list(_normalize(*fields))
        _weekday_adjust(fields, st.weekday, st.weekday_behavior, rel[2])
        fields = list(_normalize(*fields))
    for k in range(7):
        fields[k] += rel[k]
    if st.first_last == 1:
        fields[2] = 1
    elif st.first_last == 2:
        fields[1] += 1
        fields[2] = 0  # day 0 of the next month is the last day of this one
    norm = _normalize(*fields)
    if st.tz is None and norm == _fields(base):
        # Nothing moved ("now", "+0 days"): the base instant itself. PHP re-resolves the
        # wall time instead, which inside a DST fold can land an hour off.
        return base_ms
    return _instant(norm, zone_)


def _fields(dt: datetime) -> tuple[int, int, int, int, int, int, int]:
    return dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond
