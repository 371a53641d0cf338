"""Fires in the next 24 h for the timeline: exact or banded, bounded work, cached per schedule."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.core.cron import CronSchedule
from daemon.web import upcoming as up
from tests.web.admin_harness import TASKS, harness

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 1, 5, 12, 7, 13, tzinfo=UTC)
END = START.timestamp() + up.HORIZON


class Counting:
    """A schedule that counts its evaluations."""

    def __init__(self, expression: str, tz: ZoneInfo = PARIS) -> None:
        self.schedule = CronSchedule(expression, tz)
        self.calls = 0

    def next_after(self, after: datetime) -> datetime:
        self.calls += 1
        return self.schedule.next_after(after)


class Never:
    """A schedule with nothing left to fire."""

    def next_after(self, after: datetime) -> datetime:
        raise LookupError("no fire time in the next 50 years")


# expression → (exact fires in the window or None when banded, most evaluations allowed)
TABLE = [
    ("0 3 * * *", 1, 3),
    ("0 * * * *", 24, 30),
    ("*/30 * * * *", 48, 60),
    ("0 0 1 1 *", 0, 2),
    ("*/20 * * * *", None, 120),
    ("* * * * * *", None, 120),
    ("* 9-17 * * 1-5", None, 120),
]


@pytest.mark.parametrize(("expression", "exact", "budget"), TABLE)
def test_fires_are_exact_or_banded_within_a_bounded_number_of_evaluations(
    expression: str, exact: int | None, budget: int
) -> None:
    """Up to TICKS fires a day each is kept; beyond, bands; never more than ~100 evaluations."""
    schedule = Counting(expression)
    result = up.upcoming(schedule, START, END)
    assert schedule.calls <= budget, schedule.calls
    in_window = [f for f in result.fires if f < START.timestamp() + up.WINDOW]
    if exact is not None:
        assert len(in_window) == exact and result.bands == () and result.every is None
        assert all(START.timestamp() < f < END for f in result.fires)
    else:
        assert result.bands and result.every is not None
        assert all(START.timestamp() <= a < b <= END for a, b in result.bands)


def test_every_second_band_covers_the_whole_horizon() -> None:
    """86,400 fires a day: one band from now to the horizon, a 1 s gap."""
    result = up.upcoming(Counting("* * * * * *"), START, END)
    assert result.bands == ((START.timestamp(), END),) and result.every == 1.0


def test_office_hours_bands_follow_local_time() -> None:
    """Every minute 09:00-17:59 on weekdays in Paris: bands end at 17:00Z and restart at 08:00Z."""
    result = up.upcoming(Counting("* 9-17 * * 1-5"), START, END)
    spans = [
        (datetime.fromtimestamp(a, UTC).strftime("%H:%M"), datetime.fromtimestamp(b, UTC))
        for a, b in result.bands
    ]
    assert [s[0] for s in spans] == ["12:07", "08:00"]
    assert spans[0][1] == datetime(2026, 1, 5, 17, 0, tzinfo=UTC)
    assert result.every == 60.0


def test_a_schedule_with_nothing_left_is_empty() -> None:
    """LookupError from the schedule (nothing for decades) is an empty lane, not an error."""
    assert up.upcoming(Never(), START, END) == up.Upcoming(START.timestamp())


def test_fires_across_a_dst_change_are_real_instants() -> None:
    """Hourly in Paris over the spring-forward night: 24 fires a real hour apart."""
    start = datetime(2026, 3, 28, 12, 30, tzinfo=UTC)
    result = up.upcoming(Counting("0 * * * *"), start, start.timestamp() + up.HORIZON)
    fires = [f for f in result.fires if f < start.timestamp() + up.WINDOW]
    assert len(fires) == 24 and {b - a for a, b in itertools.pairwise(fires)} == {3600}


async def test_lanes_are_cached_per_schedule_and_refreshed_after_ttl(tmp_path: Path) -> None:
    """Tasks sharing a schedule share one computation; it is reused until TTL, then redone."""
    twin = {**TASKS[0], "name": "hello twin"}
    async with harness(tmp_path, tasks=[*TASKS, twin]) as h:
        fires = h.server.upcoming
        now, lanes = await fires.lanes()
        assert [lane.name for lane in lanes] == ["broken", "hello", "hello twin"]
        assert now == h.clock.now().timestamp()
        assert not any(lane.pending for lane in lanes)
        assert len(fires._cache) == 2  # "hello" and its twin share (cron, zone)
        hello = lanes[1]
        assert hello.bands and hello.every == 10.0 and hello.href == "/tasks/hello"
        entries = dict(fires._cache)
        await fires.lanes(["hello"])
        assert all(fires._cache[k] is v for k, v in entries.items())
        await h.clock.advance(up.TTL + 1)
        _now, again = await fires.lanes(["broken"])
        assert [lane.name for lane in again] == ["broken"]
        assert fires._refresh is not None
        await asyncio.wait_for(fires._refresh, 2)
        key = next(k for k in entries if k[0] == "0 3 * * *")
        assert fires._cache[key] is not entries[key]
        assert fires._cache[key].at == h.clock.now().timestamp()


async def test_paused_and_inactive_tasks(tmp_path: Path) -> None:
    """A paused task's lane says so; an inactive or manual-only task has no lane."""
    tasks = [
        *TASKS,
        {**TASKS[1], "name": "off", "status": "inactive"},
        {"name": "manual", "function_stack": []},
    ]
    async with harness(tmp_path, tasks=tasks) as h:
        await h.post("/api/tasks/broken/pause")
        _now, lanes = await h.server.upcoming.lanes()
        assert [(lane.name, lane.paused) for lane in lanes] == [
            ("broken", True),
            ("hello", False),
        ]


def test_ttl_leaves_the_window_covered() -> None:
    """A snapshot up to 2 x TTL old still reaches a full window past its reader's now."""
    assert up.HORIZON >= up.WINDOW + 2 * up.TTL
    assert timedelta(seconds=up.BIN) == timedelta(minutes=30)


async def test_quiet_returns_away_from_whole_seconds() -> None:
    """Every schedule is computed after _quiet(): never in the window where cron fires land."""
    for _ in range(5):
        await up._quiet()
        phase = time.time() % 1.0
        assert up.FIRE_QUIET_AFTER <= phase < 1.0 - up.FIRE_QUIET_BEFORE, phase
        await asyncio.sleep(0.13)  # land elsewhere in the second next time
