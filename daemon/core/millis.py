"""Time values read from a database: ms since the epoch that keep the exact datetime they were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


class Millis(int):
    """ms since the epoch (docs/contract.md "Time values") carrying the value it was read as.

    Task data sees a plain number: arithmetic returns plain ints (`int.__add__` and friends
    build an `int`), orjson writes the number, comparisons and hashing are the int's. The
    column coercions recognise it and bind `dt` instead, so a timestamp copied from one row to
    another keeps its microseconds. `text` is the exact text a SQLite timestamp column held,
    written back unchanged to a SQLite timestamp column.
    """

    # int subclasses cannot have non-empty __slots__; the instance dict holds dt and text.
    dt: datetime
    text: str | None

    def __new__(cls, dt: datetime, text: str | None = None) -> Millis:
        base = _EPOCH if dt.tzinfo is not None else _EPOCH_NAIVE
        self = super().__new__(cls, (dt - base) // _MS)
        self.dt = dt
        self.text = text
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # copy/deepcopy/pickle rebuild it from the datetime (int's own reduce drops attributes).
        return (Millis, (self.dt, self.text))

    def __repr__(self) -> str:
        return int.__repr__(self)

    def aware(self) -> datetime:
        """The exact instant as an aware datetime (a naive value was read as UTC)."""
        dt = self.dt
        return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)

    def naive_utc(self) -> datetime:
        """The exact instant as a naive UTC datetime (a `timestamp without time zone` value)."""
        dt = self.dt
        return dt if dt.tzinfo is None else dt.astimezone(UTC).replace(tzinfo=None)


def plain(value: Any) -> Any:
    """`value` with a Millis (at the top or as a list item) as the plain int it stands for: for
    code that dispatches on exact types (the Xano filters) and sees only the number."""
    t = type(value)
    if t is Millis:
        return int(value)
    if t is list and Millis in map(type, value):
        return [int(v) if type(v) is Millis else v for v in value]
    return value
