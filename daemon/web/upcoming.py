"""Each task's fires in the next 24 h for the dashboard's timeline, cached and kept off fires."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

import structlog

from daemon.web.charts import Lane
from daemon.web.views import FIRE_QUIET_AFTER, FIRE_QUIET_BEFORE

if TYPE_CHECKING:
    from daemon.engine.compiler import CompiledTask
    from daemon.scheduling.scheduler import Scheduler

log = structlog.get_logger("cronstack.admin")

WINDOW = 24 * 3600.0
# A lane draws each fire while there are at most TICKS in the window; a task that fires more
# often (an every-second task has 86,400) is drawn as bands over the BIN-long spans it fires in.
TICKS = 48
BIN = WINDOW / TICKS
# A schedule's fires are recomputed at most every TTL seconds, for HORIZON ahead: a snapshot up
# to 2 x TTL old still covers the whole window while its refresh runs.
TTL = 60.0
HORIZON = WINDOW + 2 * TTL
# How long a request waits for schedules never computed before (then their lanes say so).
WAIT = 1.0
_JUST_BEFORE = timedelta(microseconds=1)


class NextAfter(Protocol):
    """What a schedule offers the timeline: its first fire strictly after a time."""

    def next_after(self, after: datetime) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Upcoming:
    """Fires of one schedule from `at` to `at + HORIZON` (epoch seconds): every fire when at
    most TICKS fall in a window, else the first TICKS + 1 fires, the BIN-aligned spans it
    fires in (`bands`) and its median gap (`every`)."""

    at: float
    fires: tuple[float, ...] = ()
    bands: tuple[tuple[float, float], ...] = ()
    every: float | None = None


def upcoming(schedule: NextAfter, start: datetime, end: float) -> Upcoming:
    """The fires of `schedule` after `start` and before `end`, in at most about
    TICKS + 2 x (end - start) / BIN schedule evaluations (~100 for a day: a few ms), however
    often the schedule fires."""
    at = start.timestamp()
    fires: list[float] = []
    after = start
    # A few more than TICKS: a sparse schedule's fires in the extra horizon are kept too.
    while len(fires) < TICKS + 8:
        try:
            nxt = schedule.next_after(after)
        except LookupError:  # nothing more for decades
            break
        if nxt.timestamp() >= end:
            break
        fires.append(nxt.timestamp())
        after = nxt
    if sum(1 for f in fires if f < at + WINDOW) <= TICKS:
        return Upcoming(at, tuple(fires))
    gaps = [b - a for a, b in itertools.pairwise(fires)]
    every = statistics.median(gaps) if gaps else None
    # Dense: which BINs hold a fire. One evaluation finds the first fire at or after a bin's
    # end, so each occupied bin costs one, and a run of empty bins one in all.
    bands: list[tuple[float, float]] = []
    ts = fires[0]
    for _ in range(4 * math.ceil((end - at) / BIN) + 4):  # bounded even for odd schedules
        lo = math.floor(ts / BIN) * BIN
        hi = lo + BIN
        if bands and bands[-1][1] >= lo:
            bands[-1] = (bands[-1][0], hi)
        else:
            bands.append((lo, hi))
        try:
            nxt = schedule.next_after(
                max(datetime.fromtimestamp(hi, UTC) - _JUST_BEFORE, datetime.fromtimestamp(ts, UTC))
            )
        except LookupError:
            break
        ts = nxt.timestamp()
        if ts >= end:
            break
    clipped = tuple((max(lo, at), min(hi, end)) for lo, hi in bands)
    return Upcoming(at, tuple(fires), clipped, every)


def _key(task: CompiledTask) -> tuple[str, str]:
    # Tasks sharing an expression and zone share their fires (100 every-second tasks: one).
    return (task.cron or f"task:{task.name}", task.tz.key)


async def _quiet() -> None:
    """Return away from a whole second (cron fires land there), after yielding to the loop."""
    phase = time.time() % 1.0
    if phase > 1.0 - FIRE_QUIET_BEFORE or phase < FIRE_QUIET_AFTER:
        await asyncio.sleep((FIRE_QUIET_AFTER - phase) % 1.0)
    else:
        await asyncio.sleep(0)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("admin_timeline_refresh_failed", error=str(task.exception()))


class UpcomingFires:
    """The timeline's data per (cron, timezone): computed in the background at most every TTL,
    one schedule at a time with the loop free in between and never near a whole second, so
    neither a busy dashboard nor 100 every-second tasks delay a fire."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._cache: dict[tuple[str, str], Upcoming] = {}
        self._refresh: asyncio.Task[None] | None = None

    async def lanes(self, names: Sequence[str] | None = None) -> tuple[float, list[Lane]]:
        """(now, a lane per active scheduled task) — all, or those named — by name."""
        scheduler = self.scheduler
        now_ts = scheduler.clock.now().timestamp()
        tasks = [
            t
            for t in scheduler.tasks()
            if t.schedule is not None
            and t.status == "active"
            and (names is None or t.name in names)
        ]
        tasks.sort(key=lambda t: t.name.lower())
        wanted = {_key(t): t.schedule for t in tasks if t.schedule is not None}
        cache = self._cache
        stale = any(k not in cache or now_ts - cache[k].at >= TTL for k in wanted)
        if stale and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(
                self._compute(wanted, prune=names is None), name="admin-timeline-refresh"
            )
            self._refresh.add_done_callback(_log_failure)
        if self._refresh is not None and any(k not in cache for k in wanted):
            with contextlib.suppress(TimeoutError, Exception):
                async with asyncio.timeout(WAIT):
                    await asyncio.shield(self._refresh)
        paused = scheduler.paused
        lanes = []
        for task in tasks:
            entry = self._cache.get(_key(task))
            href = f"/tasks/{quote(task.name, safe='')}"
            if entry is None:
                lanes.append(Lane(task.name, href, paused=task.name in paused, pending=True))
                continue
            lanes.append(
                Lane(
                    task.name,
                    href,
                    fires=entry.fires,
                    bands=entry.bands,
                    every=entry.every,
                    paused=task.name in paused,
                )
            )
        return now_ts, lanes

    async def _compute(self, wanted: Mapping[tuple[str, str], NextAfter], *, prune: bool) -> None:
        for key, schedule in wanted.items():
            entry = self._cache.get(key)
            if entry is not None and self.scheduler.clock.now().timestamp() - entry.at < TTL:
                continue
            # One schedule (a few ms at most) at a time, each away from a whole second: fires
            # due meanwhile run first, and the scheduler's batch never waits behind this.
            await _quiet()
            now = self.scheduler.clock.now()
            self._cache[key] = upcoming(schedule, now, now.timestamp() + HORIZON)
        if prune:  # reloads: forget schedules no task has any more
            self._cache = {k: v for k, v in self._cache.items() if k in wanted}

    async def close(self) -> None:
        """Stop a computation in flight (the listener is closing)."""
        refresh, self._refresh = self._refresh, None
        if refresh is not None:
            refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await refresh


__all__ = ["HORIZON", "TICKS", "WINDOW", "Upcoming", "UpcomingFires", "upcoming"]
