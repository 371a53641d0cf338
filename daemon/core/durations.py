"""Durations in config and task files: `"500ms"`, `"30s"`, `"1h30m"`, `"7d"` or seconds."""

from __future__ import annotations

import math
import re
from typing import Final

# The longest duration any setting takes: timeouts, intervals, delays, TTLs, jitter, grace.
# A value past it is a typo ("99999999999999999999d"), and asyncio's timers would overflow.
MAX_DURATION: Final = 366 * 86400.0
# History retention may be long: a hundred years is the ceiling of every duration.
MAX_RETENTION: Final = 36525 * 86400.0

_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
# "ms" must be tried before "m" and "s"; whitespace between parts is allowed ("1h 30m").
_PART = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*")

_HINT = 'expected a duration like "500ms", "30s", "5m", "1h30m", "7d" or a number of seconds'


def _show(value: object, limit: int = 80) -> str:
    if isinstance(value, int) and not -(10**30) < value < 10**30:
        return f"(a number of about 10^{int(abs(value).bit_length() * 0.30103)})"
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return f'"{text}"' if isinstance(value, str) else text


def parse_duration(value: str | int | float, maximum: float = MAX_RETENTION) -> float:
    """Return `value` in seconds; raise ValueError for negative, non-finite, malformed values
    and values above `maximum` (callers pass the bound of their setting, e.g. MAX_DURATION)."""
    seconds = _parse(value)
    if seconds > maximum:
        raise ValueError(
            f"invalid duration {_show(value, 40)}: must be at most {format_duration(maximum)}"
        )
    return seconds


def _parse(value: str | int | float) -> float:
    if isinstance(value, bool):
        # bool is an int subclass; `timeout = true` is a mistake, not one second.
        raise ValueError(f"invalid duration {_show(value)}: {_HINT}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid duration {_show(value, 40)}: must not be negative")
        return float(value) if value < 2**63 else math.inf  # float() of 10**400 overflows
    if isinstance(value, float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(f"invalid duration {_show(value)}: {_HINT}")
        if seconds < 0:
            raise ValueError(f"invalid duration {_show(value)}: must not be negative")
        return seconds
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {_show(value)}: {_HINT}")
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"invalid duration {_show(value)}: must not be negative")
    if not text:
        raise ValueError(f"invalid duration {_show(value)}: empty; {_HINT}")
    bare = _NUMBER.fullmatch(text)
    if bare:
        return float(bare.group(1))
    total = 0.0
    pos = 0
    seen: set[str] = set()
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise ValueError(f"invalid duration {_show(value)}: {_HINT}")
        unit = match.group(2).lower()
        if unit in seen:
            raise ValueError(f'invalid duration {_show(value)}: unit "{unit}" given twice')
        seen.add(unit)
        total += float(match.group(1)) * _UNITS[unit]
        pos = match.end()
        # Trailing whitespace after the last part is fine.
        if text[pos:].strip() == "":
            break
    return total


def format_duration(seconds: float) -> str:
    """Render seconds compactly, the inverse of parse_duration: 5400 -> "1h30m", 0.5 -> "500ms"."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    ms_total = round(seconds * 1000)
    if ms_total == 0:
        return "0s"
    whole, ms = divmod(ms_total, 1000)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    if ms:
        parts.append(f"{ms}ms")
    return "".join(parts)
