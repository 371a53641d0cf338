"""Durations in config and task files: `"500ms"`, `"30s"`, `"1h30m"`, `"7d"` or seconds."""

from __future__ import annotations

import math
import re

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


def _show(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def parse_duration(value: str | int | float) -> float:
    """Return `value` in seconds; raise ValueError for negative, non-finite or malformed values."""
    if isinstance(value, bool):
        # bool is an int subclass; `timeout = true` is a mistake, not one second.
        raise ValueError(f"invalid duration {_show(value)}: {_HINT}")
    if isinstance(value, int | float):
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
