"""The interfaces at the seams between parts: what each side may expect of the other.

Implementations live in their parts (`SystemClock` in scheduling, `StateStore` in state,
`Metrics` in ops); test doubles in `daemon.testing`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from daemon.core.runs import Claim, Outcome


class Schedule(Protocol):
    """When a task fires: `CronSchedule` (daemon.core.cron) or `EventSchedule` (core.events).

    `expression` identifies the schedule exactly and `tz` is its zone: the scheduler memoizes
    next fires by (expression, tz.key, after)."""

    expression: str
    tz: ZoneInfo

    def next_after(self, after: datetime) -> datetime:
        """The first fire strictly after `after` (aware); LookupError when none is left."""
        ...

    def next_n(self, after: datetime, n: int) -> list[datetime]: ...

    def describe(self) -> str: ...


class Clock(Protocol):
    """What the scheduler needs from time: the wall clock, a monotonic clock, and sleeping."""

    def now(self) -> datetime:
        """The current wall-clock time, aware, in UTC."""
        ...

    def monotonic(self) -> float: ...

    async def sleep_until(self, deadline: datetime | None, wake: asyncio.Event) -> None:
        """Return at `deadline` (wall clock), when `wake` is set, or earlier; callers re-check."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class Claimer(Protocol):
    """The state store's claim: WON (its `running` row is written before any step runs), LOST
    (another process owns the slot), BUSY (a live run of the task elsewhere; recorded skipped) or
    EARLY (not due yet by the store's clock; nothing recorded, fired again later).

    A coroutine function will do; the state store returns a future (no task per claim).

    `exclusive` is true when this process alone runs the store's tasks (a SQLite store, held by
    a file lock). A run with no effect outside the process (an inline task,
    `CompiledTask.inline`) needs no claim before it runs when nobody else would run its slot —
    the store is exclusive, or no other replica is alive — and a crash mid-run leaves nothing
    behind to account for: its final row is its only write."""

    exclusive: bool
    # (this process's rank, live replicas): each replica claims the fires of the tasks whose
    # name hashes to its rank first; (0, 1) when it is alone.
    partition: tuple[int, int]

    def claim(self, claim: Claim) -> Awaitable[str]: ...

    async def unclaimed(self, slots: Sequence[tuple[int, str]]) -> set[str]:
        """The slot ids of these first-attempt slots ((scheduled_at, slot_id)) that nobody has
        claimed (or recorded) yet."""
        ...

    @property
    def behind(self) -> bool:
        """True while the store cannot keep up (its write queue is full): hold new fires."""
        ...

    async def wait_ready(self) -> None:
        """Return once the store has room again."""
        ...


class RunRecorder(Protocol):
    """Where outcomes go (logs, the history store). Must not block: enqueue and return."""

    async def record(self, outcome: Outcome) -> None: ...


class OutcomeListener(Protocol):
    """Something that wants to see every outcome (metrics, the dead-man's switch)."""

    def observe(self, outcome: Outcome) -> None: ...
