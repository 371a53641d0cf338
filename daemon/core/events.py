"""Xano event schedules: fires at starts_on + k·freq up to ends_on, beside cron (same interface)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

_UTC_ZONE = ZoneInfo("UTC")
_US = 1_000_000
# Xano's literal: `2025-01-01 03:00:00+0000` (one space, a 4-digit offset), as exports write it.
_XANO_INSTANT = re.compile(
    r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*(Z|[+-]\d{2}:?\d{2})\Z", re.I
)


def parse_instant(value: Any) -> datetime:
    """An event time: RFC 3339 (`2025-01-01T08:00:00Z`), Xano's `2025-01-01 08:00:00+0000`, or
    an aware datetime (TOML). The offset is required: events are instants, not local times."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        match = _XANO_INSTANT.match(value.strip())
        if match is None:
            raise ValueError(
                f'invalid time "{value}": expected "2025-01-01T08:00:00Z" or'
                ' "2025-01-01 08:00:00+0000" (with an offset)'
            )
        day, clock, offset = match.groups()
        offset = "+00:00" if offset.upper() == "Z" else offset
        if ":" not in offset:
            offset = offset[:3] + ":" + offset[3:]
        try:
            parsed = datetime.fromisoformat(f"{day}T{clock}{offset}")
        except ValueError as exc:
            raise ValueError(f'invalid time "{value}": {exc}') from None
    else:
        raise ValueError(f"expected a time with an offset, got {type(value).__name__}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f'time "{value}" needs a UTC offset (e.g. "Z" or "+0000")')
    return parsed


@dataclass(frozen=True, slots=True)
class Event:
    """One event: `starts_on`, then every `freq` seconds (None: once), up to `ends_on` included."""

    starts_on: datetime
    freq: int | None = None
    ends_on: datetime | None = None

    def __post_init__(self) -> None:
        if self.freq is not None and (isinstance(self.freq, bool) or self.freq < 1):
            raise ValueError(f"freq must be a whole number of seconds, at least 1; got {self.freq}")
        if self.ends_on is not None and self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on: the event would never fire")

    def next_after(self, after: datetime) -> datetime | None:
        """The first grid point strictly after `after`, or None when the event is over."""
        start = self.starts_on
        if after < start:
            found = start
        elif self.freq is None:
            return None
        else:
            # Integer microseconds: float seconds would drift off the grid after a few years.
            elapsed = (after - start) // timedelta(microseconds=1)
            step = self.freq * _US
            found = start + timedelta(microseconds=(elapsed // step + 1) * step)
        if self.ends_on is not None and found > self.ends_on:
            return None
        return found

    def key(self) -> str:
        """A stable text identifying this event exactly (instants in UTC)."""
        end = _utc_text(self.ends_on) if self.ends_on is not None else ""
        return f"{_utc_text(self.starts_on)}/{self.freq or ''}/{end}"

    def as_json(self) -> dict[str, Any]:
        return {
            "starts_on": self.starts_on.isoformat(),
            "freq": self.freq,
            "ends_on": self.ends_on.isoformat() if self.ends_on is not None else None,
        }

    def describe(self) -> str:
        start = _words_time(self.starts_on)
        if self.freq is None:
            return f"once at {start}"
        text = f"every {_words_interval(self.freq)} from {start}"
        if self.ends_on is not None:
            text += f" until {_words_time(self.ends_on)}"
        return text


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def _words_time(moment: datetime) -> str:
    offset = moment.strftime("%z")
    zone = "UTC" if offset in ("+0000", "") else offset
    text = moment.strftime("%Y-%m-%d %H:%M:%S").removesuffix(":00")
    return f"{text} {zone}"


_UNITS = ((86400 * 7, "week"), (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def _words_interval(seconds: int) -> str:
    for size, unit in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} seconds"  # pragma: no cover - the 1-second unit always divides


class EventSchedule:
    """Xano's schedule: several independent events; instants two events share are one slot.

    It answers the scheduler exactly like `CronSchedule` (`next_after`, `next_n`, `describe`,
    `expression`, `tz`), so policies (overlap, misfire, catch-up, pause, exactly-once claims)
    apply unchanged. `expression` is a stable key naming every event exactly: the scheduler
    memoizes next fires by (expression, tz, after). Fires are returned in UTC (`tz`): event
    offsets are fixed, there is no DST. A starts_on in the past never fires by itself: the next
    grid point after the asked time is the first (catch-up after downtime is the task's policy).
    """

    has_seconds = True

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = tuple(events)
        self.tz = _UTC_ZONE
        self.expression = "events:" + ",".join(e.key() for e in self.events)

    def __repr__(self) -> str:
        return f"EventSchedule({self.expression!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EventSchedule) and other.expression == self.expression

    def __hash__(self) -> int:
        return hash(self.expression)

    def next_after(self, after: datetime) -> datetime:
        """The first fire strictly after `after` (aware), in UTC; LookupError when none is left."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("next_after needs an aware datetime")
        best: datetime | None = None
        for event in self.events:
            found = event.next_after(after)
            if found is not None and (best is None or found < best):
                best = found
        if best is None:
            raise LookupError("the schedule's events have no fire time left")
        return best.astimezone(self.tz)

    def next_n(self, after: datetime, n: int) -> list[datetime]:
        """Up to `n` fires strictly after `after`, in order (fewer when the events end)."""
        result: list[datetime] = []
        current = after
        for _ in range(n):
            try:
                current = self.next_after(current)
            except LookupError:
                break
            result.append(current)
        return result

    def describe(self) -> str:
        if not self.events:
            return "no events (manual only)"
        return "; ".join(e.describe() for e in self.events)

    def as_json(self) -> dict[str, Any]:
        """What `check --json` shows as a task's `schedule`."""
        return {"events": [e.as_json() for e in self.events]}
