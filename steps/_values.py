"""Small value helpers shared by the step modules: JSON type names, text rendering, durations."""

from __future__ import annotations

from typing import Any

import orjson

from daemon.core.durations import MAX_DURATION, parse_duration


def to_text(value: Any) -> str:
    """Render any value as message text: strings as-is, everything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return str(value)


def seconds(value: Any, what: str) -> float:
    """Parse a run-time duration value (at most MAX_DURATION); a bad one is a ValueError
    naming `what`."""
    try:
        return parse_duration(value, MAX_DURATION)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
