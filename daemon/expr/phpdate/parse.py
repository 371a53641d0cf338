"""PHP's DateTime::createFromFormat: parse_format."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Final

from daemon.core.errors import ExpressionError
from daemon.expr.phpdate.fields import _instant, _normalize, _year2
from daemon.expr.phpdate.relative import _weekday_adjust
from daemon.expr.phpdate.zones import _DAY_NAMES, _MAX_TEXT, _MONTH_NAMES, _local, zone

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
