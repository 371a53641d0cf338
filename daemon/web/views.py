"""The task views the API and the dashboard show, cached so polling never slows the fires."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from daemon.state.queries import RunQueries, rfc3339, run_json

if TYPE_CHECKING:
    from daemon.engine.compiler import CompiledTask
    from daemon.scheduling.scheduler import Scheduler

log = structlog.get_logger("cronstack.admin")

NEXT_FIRES = 5
RECENT_RUNS = 12
# /api/tasks reads the last outcomes of every task; a second of staleness keeps a busy dashboard
# (or a monitoring poller) from turning into a query storm on the state store.
RECENT_TTL = 1.0
# Cron fires land on whole seconds: a background refresh that would start within this window
# around one (the scheduler's busiest moment) waits until FIRE_QUIET_AFTER past it instead.
FIRE_QUIET_BEFORE = 0.05
FIRE_QUIET_AFTER = 0.25
# Next fires are kept computed this far ahead, so a request right after a fire only slices.
FIRES_AHEAD = 2 * RECENT_TTL + 1.0


def _fire_key(task: CompiledTask) -> tuple[str, str]:
    # A schedule is its expression and its zone: tasks sharing both share their next fires.
    # (`expression` names event schedules exactly too; their `cron` is None.)
    schedule = task.schedule
    return (schedule.expression if schedule is not None else "", task.tz.key)


def _ts(fire: tuple[float, str, datetime]) -> float:
    return fire[0]


def _log_refresh_failure(task: asyncio.Task[None]) -> None:
    # A background refresh that fails leaves the last snapshot in place; say why, once per try.
    if not task.cancelled() and task.exception() is not None:
        log.warning("admin_recent_refresh_failed", error=str(task.exception()))


@dataclass(slots=True)
class _Recent:
    """A snapshot of the last outcomes per task; `at` = 0 means none yet, or invalidated."""

    at: float = 0.0
    version: int = 0
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(slots=True)
class _Fires:
    """Upcoming fires of one (cron, timezone): (epoch seconds, RFC 3339 text, datetime)."""

    times: list[tuple[float, str, datetime]] = field(default_factory=list)
    exhausted: bool = False


@dataclass(slots=True)
class _Static:
    """The parts of every task's view that do not move with the clock, and what they came from."""

    key: tuple[Any, ...]
    views: list[tuple[CompiledTask, dict[str, Any]]]


class TaskViews:
    """Every task's schedule, next fires, pause state and last outcomes, as the API shows them.

    The last outcomes come from a snapshot of the state store refreshed in the background (at
    most every RECENT_TTL, away from whole seconds); the parts of each view that did not change
    are kept, and next fires are extended incrementally per (cron, timezone).
    """

    def __init__(self, scheduler: Scheduler, queries: RunQueries | None) -> None:
        self.scheduler = scheduler
        self.queries = queries
        self._recent = _Recent()
        self._versions = 0  # snapshot versions: identity by counter, never by id() (reused)
        self._invalidated = 0  # bumped by run-now/pause: a load begun before must not count
        self._refresh: asyncio.Task[None] | None = None
        self._fires: dict[tuple[str, str], _Fires] = {}
        self._static: _Static | None = None

    def invalidate(self) -> None:
        """After run-now or pause: the next read waits for a fresh snapshot."""
        self._invalidated += 1
        self._recent = _Recent(0.0, self._recent.version, self._recent.runs)

    async def recent_runs(self) -> dict[str, list[dict[str, Any]]]:
        """The last outcomes per task. A stale snapshot is served while a background refresh
        (one at a time, kept off the fire instant) replaces it: a busy poller never waits for
        the store, and never makes the loop query it exactly when every-second tasks fire."""
        if self.queries is None:
            return {}
        recent = self._recent
        if recent.at and time.monotonic() - recent.at <= RECENT_TTL:
            return recent.runs
        if not recent.at:
            # Never loaded, or invalidated by an action this client expects to see: wait, a
            # few rounds at most (a load that began before an invalidation does not count).
            for _ in range(3):
                if self._refresh is None or self._refresh.done():
                    self._start_refresh(background=False)
                assert self._refresh is not None
                await asyncio.shield(self._refresh)
                if self._recent.at:
                    break
            return self._recent.runs
        if self._refresh is None or self._refresh.done():
            self._start_refresh(background=True)
        return recent.runs

    def _start_refresh(self, *, background: bool) -> None:
        assert self.queries is not None
        task = asyncio.create_task(
            self._load_recent(self.queries, background), name="admin-recent-refresh"
        )
        self._refresh = task
        # Also for a waited-on load: its waiter may have gone (client disconnected).
        task.add_done_callback(_log_refresh_failure)

    async def _load_recent(self, queries: RunQueries, background: bool) -> None:
        if background:
            phase = time.time() % 1.0
            if phase > 1.0 - FIRE_QUIET_BEFORE or phase < FIRE_QUIET_AFTER:
                await asyncio.sleep((FIRE_QUIET_AFTER - phase) % 1.0)
        invalidated = self._invalidated
        started = time.monotonic()
        names = [t.name for t in self.scheduler.tasks()]
        runs = await queries.recent(names, RECENT_RUNS)
        self._versions += 1
        fresh = invalidated == self._invalidated
        self._recent = _Recent(started if fresh else 0.0, self._versions, runs)
        if background:
            # Off the fire instant too: the views' fixed parts and the next fires for the
            # coming seconds, so requests between now and the next refresh only slice.
            now_ts = self.scheduler.clock.now().timestamp()
            static = self.static_views(runs)
            for task, _view in static.views:
                self.next_fires(task, now_ts, ahead=FIRES_AHEAD)

    def next_fires(self, task: CompiledTask, now_ts: float, ahead: float = 0.0) -> list[str]:
        """The next NEXT_FIRES fires after `now_ts`. Kept per (cron, timezone) and extended
        incrementally: passed fires are dropped, only missing ones are computed (a cron
        evaluation costs ~20 us; 100 tasks x 5 fires on every request would cost the loop
        milliseconds right when every-second tasks fire)."""
        schedule = task.schedule
        if schedule is None or task.status != "active":
            return []
        key = _fire_key(task)
        fires = self._fires.get(key)
        if fires is None:
            fires = self._fires[key] = _Fires()
        times = fires.times
        if times and times[0][0] <= now_ts:
            del times[: bisect.bisect_right(times, now_ts, key=_ts)]
        horizon = now_ts + ahead
        beyond = len(times) - (bisect.bisect_right(times, horizon, key=_ts) if ahead else 0)
        if beyond < NEXT_FIRES and not fires.exhausted:
            after = times[-1][2] if times else datetime.fromtimestamp(now_ts, task.tz)
            for _ in range(NEXT_FIRES - beyond):
                try:
                    after = schedule.next_after(after)
                except LookupError:
                    fires.exhausted = True
                    break
                times.append((after.timestamp(), after.isoformat(), after))
        return [t[1] for t in times[:NEXT_FIRES]]

    def static_views(self, recent: dict[str, list[dict[str, Any]]]) -> _Static:
        """Every task's view without `next`: rebuilt only when an input changed (a new history
        snapshot, the pause set, the task definitions)."""
        scheduler = self.scheduler
        tasks = scheduler.tasks()
        key = (
            self._recent.version,
            frozenset(scheduler.paused),
            tuple(t.fingerprint for t in tasks),
        )
        cached = self._static
        if cached is not None and cached.key == key:
            return cached
        if cached is None or cached.key[2] != key[2]:
            # Definitions changed (reload): forget fires of schedules no task has any more.
            keep = {_fire_key(t) for t in tasks}
            self._fires = {k: v for k, v in self._fires.items() if k in keep}
        views: list[tuple[CompiledTask, dict[str, Any]]] = []
        for task in sorted(tasks, key=lambda t: t.name.lower()):
            tz = task.tz
            runs = recent.get(task.name, [])
            last = runs[0] if runs else None
            view = {
                "name": task.name,
                "description": task.description,
                "status": task.status,
                "cron": task.cron,
                "schedule": task.schedule.describe() if task.schedule else "manual only",
                "timezone": tz.key,
                "next": [],
                "paused": task.name in scheduler.paused,
                "last_run": run_json(last, tz) if last else None,
                "recent": [
                    {
                        "run_id": r["run_id"],
                        "status": r["status"],
                        "scheduled_at": rfc3339(r["scheduled_at"], tz),
                    }
                    for r in runs
                ],
                "expect_success_within": task.expect_success_within,
            }
            views.append((task, view))
        static = _Static(key, views)
        self._static = static
        return static

    async def views_now(self) -> tuple[tuple[Any, ...], float, list[dict[str, Any]]]:
        """The task views with their next fires; their key, and until when they hold."""
        now_ts = self.scheduler.clock.now().timestamp()
        static = self.static_views(await self.recent_runs())
        until = now_ts + 3600
        views = []
        for task, view in static.views:
            fires = self.next_fires(task, now_ts)
            if fires:
                until = min(until, self._fires[_fire_key(task)].times[0][0])
            views.append({**view, "next": fires})
        return static.key, until, views

    async def task_views(self) -> list[dict[str, Any]]:
        """Every task with its schedule, next fires, pause state and last outcomes."""
        return (await self.views_now())[2]

    async def close(self) -> None:
        """Stop a background refresh in flight (the listener is closing)."""
        refresh, self._refresh = self._refresh, None
        if refresh is not None:
            refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await refresh
