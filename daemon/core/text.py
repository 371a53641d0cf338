"""Small text helpers for messages every part writes: type names, "did you mean", names."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any


def type_name(value: Any) -> str:
    """The user-facing type name of a value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """` (did you mean "x"?)` for the closest candidate, or "" when nothing is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


# Task names (and anything else a request may carry into a query) are text a person wrote:
# printable, bounded. PostgreSQL refuses NUL in text outright; control characters break logs,
# headers and terminals.
MAX_NAME = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def name_problem(value: str, max_length: int = MAX_NAME) -> str | None:
    """Why `value` is not a usable name (empty, too long, control characters), or None."""
    if not value.strip():
        return "must not be empty"
    if len(value) > max_length:
        return f"must be at most {max_length} characters, got {len(value)}"
    if _CONTROL.search(value):
        return "must not contain control characters (NUL, newline, tab, ...)"
    return None


def shown(value: str, limit: int = 60) -> str:
    """A user-supplied value quoted for a message: escaped, cut at `limit` characters."""
    cut = value if len(value) <= limit else value[:limit] + "…"
    return '"' + _CONTROL.sub(_escape, cut.replace('"', '\\"')) + '"'


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
