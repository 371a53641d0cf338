"""Time zones, epoch-ms to local time, and PHP's day, month and zone-abbreviation names."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

from daemon.core.errors import ExpressionError

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
