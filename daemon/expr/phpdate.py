"""PHP date handling for Xano filters: date() formats, createFromFormat and strtotime."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

from daemon.core.errors import ExpressionError

__all__ = ["format_ms", "parse_format", "shift", "strtotime", "to_local", "zone"]

# Instants are integer milliseconds since the Unix epoch (Xano's timestamp type, §3.7).
# Wall-clock work happens on plain fields (year .. microsecond) that may overflow, as in
# PHP's timelib; they are normalised and converted to an instant once, at the end.

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_MAX_TEXT: Final = 200  # longer date text is a mistake, not a date; keeps parsing bounded

_DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# Lower-case month and day names (and PHP's abbreviations) -> month 1-12 / ISO weekday 0-6
# counted from Sunday as PHP's `w`.
_MONTH_NAMES: Final = {
    **{name.lower(): i + 1 for i, name in enumerate(_MONTHS)},
    **{name[:3].lower(): i + 1 for i, name in enumerate(_MONTHS)},
    "sept": 9,
}
_DAY_NAMES: Final = {
    **{name.lower(): (i + 1) % 7 for i, name in enumerate(_DAYS)},
    **{name[:3].lower(): (i + 1) % 7 for i, name in enumerate(_DAYS)},
    "tues": 2,
    "wednes": 3,
    "thur": 4,
    "thurs": 4,
}
# Timezone abbreviations PHP understands in date text, as fixed offsets (minutes).
_ABBREVIATIONS: Final = {
    "utc": 0,
    "gmt": 0,
    "z": 0,
    "ut": 0,
    "wet": 0,
    "west": 60,
    "bst": 60,
    "cet": 60,
    "cest": 120,
    "met": 60,
    "mest": 120,
    "eet": 120,
    "eest": 180,
    "msk": 180,
    "ist": 330,
    "jst": 540,
    "kst": 540,
    "hkt": 480,
    "awst": 480,
    "acst": 570,
    "aest": 600,
    "aedt": 660,
    "nzst": 720,
    "nzdt": 780,
    "ast": -240,
    "adt": -180,
    "est": -300,
    "edt": -240,
    "cst": -360,
    "cdt": -300,
    "mst": -420,
    "mdt": -360,
    "pst": -480,
    "pdt": -420,
    "akst": -540,
    "akdt": -480,
    "hst": -600,
}


# --- time zones ------------------------------------------------------------------------------

_OFFSET_RE: Final = re.compile(r"(?:utc|gmt)?([+-])(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)


@lru_cache(maxsize=512)
def zone(name: str) -> tzinfo:
    """A time zone from an IANA name, "UTC", an abbreviation ("EST") or an offset ("+02:00")."""
    key = name.strip()
    if key.upper() in ("UTC", "Z", "GMT"):
        return UTC
    m = _OFFSET_RE.fullmatch(key)
    if m:
        return _fixed(m.group(1), m.group(2), m.group(3))
    if "/" in key or (key.isalpha() and key.lower() not in _ABBREVIATIONS):
        try:
            return ZoneInfo(key)
        except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
            pass
    minutes = _ABBREVIATIONS.get(key.lower())
    if minutes is not None:
        return timezone(timedelta(minutes=minutes), key.upper())
    raise ExpressionError(f'unknown timezone "{name:.60}"')


def _fixed(sign: str, hours: str, minutes: str | None) -> tzinfo:
    total = int(hours) * 60 + int(minutes or 0)
    if total > 18 * 60:
        raise ExpressionError(f"timezone offset out of range: {sign}{hours}:{minutes or '00'}")
    if total == 0:
        return timezone(timedelta(0), "+00:00")
    return timezone(timedelta(minutes=-total if sign == "-" else total))


def _local(ms: int, tz: tzinfo) -> datetime:
    try:
        return (_EPOCH + ms * _MS).astimezone(tz)
    except OverflowError:
        raise ExpressionError(f"timestamp {ms} is out of range (years 1-9999)") from None


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


# --- date(): formatting ----------------------------------------------------------------------


def _offset(dt: datetime, colon: bool) -> str:
    off = dt.utcoffset() or timedelta(0)
    total = int(off.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    hh, mm = divmod(abs(total), 60)
    return f"{sign}{hh:02d}:{mm:02d}" if colon else f"{sign}{hh:02d}{mm:02d}"


def _zone_name(dt: datetime) -> str:
    tz = dt.tzinfo
    if isinstance(tz, ZoneInfo):
        return tz.key
    if tz is UTC:
        return "UTC"
    name = dt.tzname()
    if name and name[0] not in "+-" and not name.startswith("UTC"):
        return name  # an abbreviation read from date text ("EST")
    return _offset(dt, True)


def _abbreviation(dt: datetime) -> str:
    tz = dt.tzinfo
    if tz is UTC:
        return "UTC"
    name = dt.tzname()
    if isinstance(tz, ZoneInfo) and name:
        return name  # "EST", "CEST", or "+03" for zones without a letter abbreviation
    if name and name[0] not in "+-" and not name.startswith("UTC"):
        return name
    return "GMT" + _offset(dt, False)


_SUFFIXES: Final = {1: "st", 2: "nd", 3: "rd"}


def _suffix(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return "th"
    return _SUFFIXES.get(day % 10, "th")


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (date(year, month + 1, 1) - date(year, month, 1)).days


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _hour12(dt: datetime) -> int:
    return dt.hour % 12 or 12


def _swatch(dt: datetime) -> str:
    seconds = (int(dt.timestamp()) + 3600) % 86400
    return f"{int(seconds / 86.4) % 1000:03d}"


_FORMATTERS: Final[dict[str, Any]] = {
    "d": lambda dt: f"{dt.day:02d}",
    "D": lambda dt: _DAYS[dt.weekday()][:3],
    "j": lambda dt: str(dt.day),
    "l": lambda dt: _DAYS[dt.weekday()],
    "N": lambda dt: str(dt.isoweekday()),
    "S": lambda dt: _suffix(dt.day),
    "w": lambda dt: str(dt.isoweekday() % 7),
    "z": lambda dt: str(dt.timetuple().tm_yday - 1),
    "W": lambda dt: f"{dt.isocalendar()[1]:02d}",
    "F": lambda dt: _MONTHS[dt.month - 1],
    "m": lambda dt: f"{dt.month:02d}",
    "M": lambda dt: _MONTHS[dt.month - 1][:3],
    "n": lambda dt: str(dt.month),
    "t": lambda dt: str(_days_in_month(dt.year, dt.month)),
    "L": lambda dt: "1" if _is_leap(dt.year) else "0",
    "o": lambda dt: str(dt.isocalendar()[0]),
    "Y": lambda dt: f"{dt.year:04d}",
    "y": lambda dt: f"{dt.year % 100:02d}",
    "a": lambda dt: "am" if dt.hour < 12 else "pm",
    "A": lambda dt: "AM" if dt.hour < 12 else "PM",
    "B": _swatch,
    "g": lambda dt: str(_hour12(dt)),
    "G": lambda dt: str(dt.hour),
    "h": lambda dt: f"{_hour12(dt):02d}",
    "H": lambda dt: f"{dt.hour:02d}",
    "i": lambda dt: f"{dt.minute:02d}",
    "s": lambda dt: f"{dt.second:02d}",
    "u": lambda dt: f"{dt.microsecond:06d}",
    "v": lambda dt: f"{dt.microsecond // 1000:03d}",
    "e": _zone_name,
    "I": lambda dt: "1" if dt.dst() else "0",
    "O": lambda dt: _offset(dt, False),
    "P": lambda dt: _offset(dt, True),
    "p": lambda dt: "Z" if not dt.utcoffset() else _offset(dt, True),
    "T": _abbreviation,
    "Z": lambda dt: str(int((dt.utcoffset() or timedelta(0)).total_seconds())),
    "U": lambda dt: str(_to_ms(dt) // 1000),
}
_FORMATTERS["c"] = lambda dt: _format(dt, "Y-m-d\\TH:i:sP")
_FORMATTERS["r"] = lambda dt: _format(dt, "D, d M Y H:i:s O")


@lru_cache(maxsize=256)
def _format_parts(fmt: str) -> tuple[Any, ...]:
    """A format as a tuple of literal strings and formatter callables (parsed once)."""
    parts: list[Any] = []
    literal: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "\\":
            if i + 1 < len(fmt):
                literal.append(fmt[i + 1])
            i += 2
            continue
        fn = _FORMATTERS.get(ch)
        if fn is None:
            literal.append(ch)
        else:
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(fn)
        i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _format(dt: datetime, fmt: str) -> str:
    return "".join(p if type(p) is str else p(dt) for p in _format_parts(fmt))


def format_ms(ms: int, fmt: str, tz: tzinfo) -> str:
    """PHP `date(fmt)` of an epoch-ms instant in `tz`; unknown letters are copied as PHP does."""
    return _format(_local(ms, tz), fmt)


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


# --- createFromFormat ------------------------------------------------------------------------

_DIGITS: Final = {
    "d": (1, 2),
    "j": (1, 2),
    "m": (1, 2),
    "n": (1, 2),
    "y": (2, 2),
    "Y": (1, 4),
    "g": (1, 2),
    "h": (1, 2),
    "G": (1, 2),
    "H": (1, 2),
    "i": (2, 2),
    "s": (2, 2),
    "v": (3, 3),
    "u": (1, 6),
    "z": (1, 3),
}
_SEPARATORS: Final = frozenset(";:/.,-()")
_TZ_TEXT_RE: Final = re.compile(
    r"[+-]\d{1,2}(?::?\d{2})?|[A-Za-z]+(?:/[A-Za-z0-9_+-]+)+|[A-Za-z]{1,6}", re.IGNORECASE
)
_WORD_RE: Final = re.compile(r"[A-Za-z]+")
_EPOCH_RE: Final = re.compile(r"-?\d{1,12}")


@dataclass(slots=True)
class _Parsed:
    y: int | None = None
    m: int | None = None
    d: int | None = None
    h: int | None = None
    i: int | None = None
    s: int | None = None
    us: int | None = None
    doy: int | None = None
    pm: bool | None = None
    tz: tzinfo | None = None
    weekday: int | None = None
    epoch: int | None = None


@lru_cache(maxsize=256)
def _format_tokens(fmt: str) -> tuple[tuple[str, str], ...]:
    """A createFromFormat format as (kind, char) pairs: kind "lit" for literal text."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "\\" and i + 1 < len(fmt):
            out.append(("lit", fmt[i + 1]))
            i += 2
            continue
        if ch in _DIGITS or ch in "DlSFMaAeTOPpU !|+#?*" or ch in _SEPARATORS:
            out.append(("fmt", ch))
        else:
            out.append(("lit", ch))
        i += 1
    return tuple(out)


def parse_format(text: str, fmt: str, tz: tzinfo, now_ms: int) -> int:
    """PHP `DateTime::createFromFormat(fmt, text)` in zone `tz`, in epoch ms.

    As in PHP, fields the format does not mention come from "now" (the time of day too,
    unless some time field was parsed; then the others are 0); `!` resets everything to
    1970-01-01 00:00:00 and `|` resets what was not parsed. Out-of-range days carry
    over (2021-02-30 is 2021-03-02).
    """
    if len(text) > _MAX_TEXT:
        raise ExpressionError(f"date text longer than {_MAX_TEXT} characters")

    def fail(why: str) -> ExpressionError:
        return ExpressionError(f'cannot read "{text:.80}" with format "{fmt:.40}": {why}')

    p = _Parsed()
    reset_all = False
    reset_unset = False
    trailing_ok = False
    pos = 0
    n = len(text)
    tokens = _format_tokens(fmt)
    for kind, ch in tokens:
        if kind == "lit":
            if pos < n and text[pos] == ch:
                pos += 1
                continue
            raise fail(f'expected "{ch}" at position {pos + 1}')
        if ch in _DIGITS:
            lo, hi = _DIGITS[ch]
            end = pos
            while end < n and end - pos < hi and text[end].isdigit():
                end += 1
            if end - pos < lo:
                raise fail(f'expected a number for "{ch}" at position {pos + 1}')
            value = int(text[pos:end])
            if ch in "dj":
                p.d = value
            elif ch in "mn":
                p.m = value
            elif ch == "Y":
                p.y = value
            elif ch == "y":
                p.y = _year2(value, 2)
            elif ch in "gh":
                if not 1 <= value <= 12:
                    raise fail(f"hour {value} is not a 12-hour clock hour")
                p.h = value
            elif ch in "GH":
                p.h = value
            elif ch == "i":
                p.i = value
            elif ch == "s":
                p.s = value
            elif ch == "v":
                p.us = value * 1000
            elif ch == "u":
                p.us = int(text[pos:end].ljust(6, "0"))
            elif ch == "z":
                p.doy = value
            pos = end
        elif ch in "Dl":
            m = _WORD_RE.match(text, pos)
            name = m.group().lower() if m else ""
            if name not in _DAY_NAMES:
                raise fail(f"expected a day name at position {pos + 1}")
            p.weekday = _DAY_NAMES[name]
            pos = m.end() if m else pos
        elif ch in "FM":
            m = _WORD_RE.match(text, pos)
            name = m.group().lower() if m else ""
            if name not in _MONTH_NAMES:
                raise fail(f"expected a month name at position {pos + 1}")
            p.m = _MONTH_NAMES[name]
            pos = m.end() if m else pos
        elif ch == "S":
            if text[pos : pos + 2].lower() not in ("st", "nd", "rd", "th"):
                raise fail(f"expected a day suffix at position {pos + 1}")
            pos += 2
        elif ch in "aA":
            word = text[pos : pos + 2].lower()
            if word not in ("am", "pm"):
                raise fail(f"expected am or pm at position {pos + 1}")
            p.pm = word == "pm"
            pos += 2
        elif ch in "eTOPp":
            m = _TZ_TEXT_RE.match(text, pos)
            if m is None:
                raise fail(f"expected a time zone at position {pos + 1}")
            try:
                p.tz = zone(m.group())
            except ExpressionError:
                raise fail(f'unknown time zone "{m.group()}"') from None
            pos = m.end()
        elif ch == "U":
            m = _EPOCH_RE.match(text, pos)
            if m is None:
                raise fail(f"expected a Unix timestamp at position {pos + 1}")
            p.epoch = int(m.group())
            pos = m.end()
        elif ch == " ":
            while pos < n and text[pos] in " \t\u00a0\u202f":
                pos += 1
        elif ch == "#":
            if pos < n and text[pos] in _SEPARATORS:
                pos += 1
            else:
                raise fail(f"expected a separator at position {pos + 1}")
        elif ch in _SEPARATORS:
            if pos < n and text[pos] == ch:
                pos += 1
            else:
                raise fail(f'expected "{ch}" at position {pos + 1}')
        elif ch == "?":
            if pos >= n:
                raise fail("not enough data for the format")
            pos += 1
        elif ch == "*":
            while pos < n and not (text[pos] in _SEPARATORS or text[pos] in " \t"):
                pos += 1
        elif ch == "!":
            reset_all = True
            p = _Parsed()
        elif ch == "|":
            reset_unset = True
        elif ch == "+":
            trailing_ok = True
    if pos < n and not trailing_ok:
        raise fail(f'unexpected trailing text "{text[pos : pos + 20]}"')
    return _assemble(p, tz, now_ms, reset_all or reset_unset)


def _assemble(p: _Parsed, tz: tzinfo, now_ms: int, reset: bool) -> int:
    zone_ = p.tz or tz
    if p.epoch is not None:
        return p.epoch * 1000 + (p.us or 0) // 1000
    if reset:
        now = datetime(1970, 1, 1)
        time_default: tuple[int, int, int] = (0, 0, 0)
    else:
        now = _local(now_ms, zone_).replace(tzinfo=None)
        time_default = (now.hour, now.minute, now.second)
    any_time = p.h is not None or p.i is not None or p.s is not None or p.us is not None
    y = p.y if p.y is not None else now.year
    m = p.m if p.m is not None else now.month
    d = p.d if p.d is not None else now.day
    if p.doy is not None:
        m, d = 1, p.doy + 1
    if any_time:
        h, i, s = p.h or 0, p.i or 0, p.s or 0
    else:
        h, i, s = time_default
    if p.pm is not None:
        h = h % 12 + (12 if p.pm else 0)
    fields = [y, m, d, h, i, s, p.us or 0]
    if p.weekday is not None:
        fields = list(_normalize(*fields))
        _weekday_adjust(fields, p.weekday, 1, 0)
    return _instant(tuple(fields), zone_)


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
