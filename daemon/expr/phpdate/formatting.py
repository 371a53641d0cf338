"""PHP's date() formatting: format_ms and the table of format characters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

from daemon.expr.phpdate.zones import _DAYS, _MONTHS, _local, _to_ms

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
