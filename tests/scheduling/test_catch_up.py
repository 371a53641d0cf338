"""Catch-up after downtime and one row per slot, with the scheduler on a fake clock and a real
SQLite state store."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from daemon.engine.compiler import CompiledTask, RetryPolicy
from daemon.resources.bundle import Resources
from daemon.resources.db import create_datasource
from daemon.scheduling.scheduler import Scheduler
from daemon.state.store import StateStore
from daemon.testing import FakeClock, settle
from tests.scheduling.test_scheduler import FakeRun, make_task

START = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


async def idle(store: StateStore) -> None:
    """Let the loop finish what the last clock step started, including claims in SQLite's thread."""
    deadline = time.monotonic() + 5
    while True:
        await settle()
        if store.claiming == 0:
            await settle()
            if store.claiming == 0:
                return
        assert time.monotonic() < deadline, "claims did not finish"
        await asyncio.sleep(0.001)


class Daemon:
    """A scheduler with the store as recorder and claimer, like `cronstack run` wires it."""

    def __init__(self, store: StateStore, clock: FakeClock, tasks: list[CompiledTask]) -> None:
        self.store = store
        self.clock = clock
        self.run = FakeRun(clock)
        self.tasks = tasks
        self.scheduler: Scheduler | None = None
        self.loop_task: asyncio.Task[None] | None = None

    async def start(self, seed: int = 1) -> Scheduler:
        self.scheduler = Scheduler(
            self.tasks,
            Resources(),
            clock=self.clock,
            run=self.run,
            recorder=self.store,
            claims=self.store,
            resume_from=await self.store.last_slots(),
            rng=random.Random(seed),
        )
        self.loop_task = asyncio.create_task(self.scheduler.serve())
        await self.scheduler.armed.wait()
        await idle(self.store)
        return self.scheduler

    async def advance(self, seconds: float, step: float = 0.5) -> None:
        while seconds > 1e-9:
            dt = min(step, seconds)
            await self.clock.advance(dt)
            await idle(self.store)
            seconds -= dt

    async def stop(self) -> None:
        assert self.scheduler is not None and self.loop_task is not None
        self.scheduler.stop_firing()
        await self.loop_task
        await self.scheduler.cancel_all()
        await idle(self.store)
        await self.store.flush(slots=True)  # as closing the store at shutdown does


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    """A SQLite state store in a temp file (history on, nothing running in the background)."""
    s = StateStore(create_datasource("state", f"sqlite:///{tmp_path / 's.db'}", base_dir=tmp_path))
    await s.open(exclusive=True)
    yield s
    await s.close()


async def rows(store: StateStore, task: str) -> list[dict[str, Any]]:
    found = await store.queries.runs(task, limit=10_000)
    return sorted(found, key=lambda r: (r["scheduled_at"], r["attempt"]))


def minute(n: int) -> int:
    return int((START + timedelta(minutes=n)).timestamp() * 1000)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("none", [("missed", "schedule")] * 5),
        ("latest", [("missed", "schedule")] * 4 + [("succeeded", "catch_up")]),
        ("all", [("succeeded", "catch_up")] * 5),
    ],
)
async def test_downtime_across_five_slots(
    store: StateStore, policy: str, expected: list[tuple[str, str]]
) -> None:
    """Down from just after 12:00 to 12:05:30 (slots 12:01-12:05): exactly the rows the
    catch_up policy says, and the schedule carries on at 12:06."""
    task = make_task("m", "* * * * *", misfire_grace=1, catch_up=policy)
    clock = FakeClock(START - timedelta(seconds=30))
    first = Daemon(store, clock, [task])
    await first.start()
    await first.advance(40)  # 12:00 runs
    await first.stop()
    await clock.jump(5 * 60 + 20)  # the daemon is down; 12:05:30 when it starts again
    second = Daemon(store, clock, [task])
    await second.start()
    await second.advance(40)  # 12:06 runs normally
    await second.stop()
    got = await rows(store, "m")
    assert [r["scheduled_at"] for r in got] == [minute(n) for n in range(7)]
    assert (got[0]["status"], got[-1]["status"]) == ("succeeded", "succeeded")
    assert [(r["status"], r["trigger"]) for r in got[1:6]] == expected
    for r in got[1:6]:
        if r["status"] == "missed":
            assert r["reason"] == "the daemon was not running at this time"
    if policy == "all":  # oldest first, one after another
        calls = [c.scheduled_at for c in second.run.calls if c.trigger == "catch_up"]
        assert calls == [minute(n) for n in range(1, 6)]


async def test_paused_slots_are_missed_and_resume_fires_again(store: StateStore) -> None:
    """Slots of a paused task are rows `missed` (reason paused); after resume it runs again."""
    clock = FakeClock(START)
    d = Daemon(store, clock, [make_task("p", "* * * * * *")])
    sched = await d.start()
    await d.advance(2)
    sched.paused = {"p"}
    await d.advance(3)
    sched.paused = set()
    await d.advance(2)
    await d.stop()
    got = [(r["status"], r["reason"]) for r in await rows(store, "p")]
    assert got == [("succeeded", None)] * 2 + [("missed", "paused")] * 3 + [("succeeded", None)] * 2


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    specs=st.lists(
        st.tuples(
            st.sampled_from(["skip", "allow", "queue", "replace"]),
            st.floats(0, 14),  # run duration, s
            st.lists(st.sampled_from(["succeeded", "failed"]), max_size=30),
            st.booleans(),  # retried
        ),
        min_size=1,
        max_size=3,
    ),
    jump_at=st.integers(30, 500),
    jump=st.integers(0, 90),
    inline=st.booleans(),
)
# Found by hypothesis: a retry attempt replaced while its claim was in flight left `running`.
@example(
    specs=[
        ("skip", 4.12, [], True),
        ("skip", 4.12, ["succeeded"] * 15, False),
        ("replace", 4.12, ["failed"], True),
    ],
    jump_at=30,
    jump=0,
    inline=True,
)
async def test_every_slot_of_ten_minutes_is_exactly_one_row(
    tmp_path_factory: pytest.TempPathFactory,
    specs: list[tuple[str, float, list[str], bool]],
    jump_at: int,
    jump: int,
    inline: bool,
) -> None:
    """Over a simulated 10 minutes of random overlaps, durations, failures, retries and a clock
    jump, every slot ends as exactly one attempt-1 row, none left running (runs started inline
    in their batch, and runs in tasks of their own)."""
    tmp = tmp_path_factory.mktemp("prop")
    store = StateStore(create_datasource("s", f"sqlite:///{tmp / 's.db'}", base_dir=tmp))
    await store.open(exclusive=True)
    try:
        tasks = []
        for i, (overlap, _, _, retried) in enumerate(specs):
            retry = RetryPolicy(max_attempts=2, initial_delay=1, max_delay=2) if retried else None
            tasks.append(
                make_task(
                    f"t{i}",
                    "*/5 * * * * *",
                    overlap=overlap,
                    retry=retry,
                    misfire_grace=20,
                    inline=inline,
                )
            )
        clock = FakeClock(START)
        d = Daemon(store, clock, tasks)
        for i, (_, duration, statuses, _) in enumerate(specs):
            d.run.durations[f"t{i}"] = duration
            d.run.statuses[f"t{i}"] = list(statuses)
        await d.start()
        await d.advance(jump_at, step=1)
        await clock.jump(jump)
        await idle(store)
        await d.advance(600 - jump_at - jump, step=1) if 600 > jump_at + jump else None
        end = clock.now()
        await d.stop()
        for task in tasks:
            assert task.schedule is not None
            slots = [
                int(t.timestamp() * 1000) for t in task.schedule.next_n(START, 200) if t <= end
            ]
            got = await rows(store, task.name)
            firsts = [r["scheduled_at"] for r in got if r["attempt"] == 1]
            assert firsts == slots
            assert not [r for r in got if r["status"] == "running"]
    finally:
        await store.close()
