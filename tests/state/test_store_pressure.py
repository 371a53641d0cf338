"""The state store under pressure: a queue that holds new fires, a spool at exit, shared bursts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.core.runs import Claim, Outcome
from daemon.engine.compiler import CompiledTask
from daemon.resources.bundle import Resources
from daemon.resources.db import create_datasource
from daemon.scheduling import scheduler as scheduler_module
from daemon.scheduling.scheduler import Scheduler
from daemon.state import store as store_module
from daemon.state.store import WON, StateStore
from daemon.testing import FakeClock
from tests.scheduling.test_catch_up import idle
from tests.scheduling.test_scheduler import FakeRun, make_task
from tests.state.test_store import StoreFactory, claim, stores  # noqa: F401 - fixture

START_S = 1_767_614_400  # 2026-01-05 12:00:00 UTC


def broken(tmp: Path) -> Any:
    """A data source that cannot be opened: every statement fails, like a store that is gone."""
    return create_datasource("broken", "sqlite:////nonexistent/dir/x.db", base_dir=tmp)


def finished(c: Claim, status: str = "succeeded") -> Outcome:
    now = int(time.time() * 1000)
    return Outcome(
        c.task, c.run_id, c.slot_id, status, c.trigger, c.attempt, c.scheduled_at, now - 5, now
    )


async def test_unwritten_final_states_are_spooled_and_replayed_at_the_next_start(
    stores: StoreFactory,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """Final states the store does not take before exit go to a spool file; the next process
    writes them before anything else — as the runs ended, even after a survivor marked them
    interrupted — and removes the file."""
    spool = tmp_path / "spool"
    first = stores(instance="first", spool_dir=spool, lease_timeout=0.2)
    await first.open(exclusive=True)
    ran = [claim("t", 1000 + i, skip=False) for i in range(3)]
    assert set((await first.claim_many(ran)).values()) == {WON}
    for c in ran[:2]:
        first.enqueue(finished(c))
    first.enqueue(finished(claim("t", 2000), "missed"))  # a row that never had a claim
    real = first.ds
    first.ds = broken(tmp_path)
    await first.close(timeout=0.2)
    await real.close()
    assert len(list(spool.glob("cronstack-spool-*.ndjson"))) == 1

    await asyncio.sleep(0.3)  # the leases expire: a survivor marks the runs interrupted
    survivor = stores(instance="survivor", lease_timeout=0.2)
    await survivor.open()
    assert await survivor.reap() == 3

    second = stores(instance="second", spool_dir=spool)
    await second.open(exclusive=True)
    got = {r["scheduled_at"]: r["status"] for r in await second.queries.runs("t", limit=10)}
    assert got == {1000: "succeeded", 1001: "succeeded", 1002: "interrupted", 2000: "missed"}
    assert not list(spool.glob("cronstack-spool-*"))


async def test_a_store_behind_holds_new_fires_and_memory_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the store unable to write, the queue stops at its limit and the scheduler holds new
    fires; when the store is back every slot has its row — the held ones recorded missed with
    a reason once they waited past their grace — and nothing is left queued."""
    monkeypatch.setattr(store_module, "MAX_QUEUED", 20)
    store = StateStore(create_datasource("s", f"sqlite:///{tmp_path / 's.db'}", base_dir=tmp_path))
    await store.open(exclusive=True)
    tasks = [make_task(f"t{i}", "* * * * * *", misfire_grace=3) for i in range(5)]
    clock = FakeClock()
    sched = Scheduler(tasks, Resources(), clock=clock, run=FakeRun(clock), recorder=store,
                      claims=store)  # fmt: skip
    loop_task = asyncio.create_task(sched.serve())
    await sched.armed.wait()
    real = store.ds
    try:
        store.ds = broken(tmp_path)
        peak = 0
        for _ in range(20):
            await clock.advance(1)
            await idle(store)
            peak = max(peak, store.queued)
            with pytest.raises(Exception):  # noqa: B017 - any store error
                await store.flush()
        assert store.behind
        assert peak <= 20 + len(tasks)  # the limit, plus what was already in flight
        store.ds = real
        await store.flush()
        assert not store.behind
        for _ in range(3):  # the flusher's work, as the daemon's background task does it
            await clock.advance(1)
            await idle(store)
            await store.flush()
    finally:
        store.ds = real
        sched.stop_firing()
        await loop_task
        await sched.cancel_all()
        await idle(store)
        await store.flush(slots=True)
    end = int(clock.now().timestamp() * 1000)
    for task in tasks:
        got = await store.queries.runs(task.name, limit=1000)
        slots = sorted(r["scheduled_at"] for r in got if r["attempt"] == 1)
        first = slots[0]
        # Every slot up to the end has its row (the slot at the very end may still be running).
        assert slots in (list(range(first, end + 1, 1000)), list(range(first, end, 1000))), (
            "a slot without its row",
            end,
            [(r["scheduled_at"] - first, r["status"], r["reason"]) for r in got],
        )
        missed = [r for r in got if r["status"] == "missed"]
        assert missed and all(r["reason"] for r in missed)
    assert store.queued == 0
    await store.close()


@pytest.fixture
async def alive(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StateStore]:
    """Two registered replicas on PostgreSQL; the one yielded runs, the other ("b-dead")
    registered and is gone: it never claims anything. PARTITION_GRACE is 2 s."""
    monkeypatch.setattr(scheduler_module, "PARTITION_GRACE", 2.0)
    made = [
        StateStore(create_datasource("s", pg_url, base_dir=tmp_path, max_size=6), instance=name)
        for name in ("a-alive", "b-dead")
    ]
    alive, dead = made
    try:
        await dead.open(exclusive=True)
        # Only these two replicas (other tests' instances may linger in this database).
        await dead.ds.execute(
            "DELETE FROM cronstack_instances WHERE instance NOT IN ('a-alive', 'b-dead')", []
        )
        await alive.open(exclusive=True)
        assert alive.partition == (0, 2)
        yield alive
    finally:
        for s in made:
            await s.close(timeout=1)
        cleaner = create_datasource("c", pg_url, base_dir=tmp_path)
        await cleaner.open()
        for table in ("cronstack_runs", "cronstack_task_state", "cronstack_instances"):
            await cleaner.execute(f"DELETE FROM {table}", [])
        await cleaner.close()


async def test_replicas_claim_their_share_first_and_pick_up_a_dead_ones_share(
    alive: StateStore,
) -> None:
    """Two registered replicas split 40 tasks by name hash; when only one of them runs, it
    claims its own share at the slot and the other's after the grace: every slot runs once."""
    tasks, clock, run, sched, loop_task = await forty_tasks(alive)
    await clock.advance(1.5)  # the minute's slot fires: own share claimed and run
    await idle(alive)
    own = {c.task for c in run.calls}
    assert 0 < len(own) < 40
    assert all(alive.partition[0] == zlib_part(t) % 2 for t in own)
    await clock.advance(3)  # past the grace: the dead replica's share
    await idle(alive)
    await stop(sched, loop_task, alive)
    assert sorted(c.task for c in run.calls) == sorted(t.name for t in tasks)
    rows = await alive.queries.runs(None, limit=1000)
    assert len(rows) == 40 and {r["status"] for r in rows} == {"succeeded"}


async def test_the_grace_for_another_share_counts_from_when_our_own_share_was_claimed(
    alive: StateStore,
) -> None:
    """In a burst our own share takes a while to claim, and the other replica is as far into
    its own: its share is looked at only a grace after ours is done, not a grace after the
    slot (which, in a burst, had both replicas claim every slot)."""
    # Our own claims are answered only when the test says so: a slow, big share.
    gate = asyncio.Event()
    real_fetch = alive.ds.fetch

    async def slow_claims(query: str, params: Any = ()) -> Any:
        if query == alive.q["claim"]:
            await gate.wait()
        return await real_fetch(query, params)

    alive.ds.fetch = slow_claims  # type: ignore[method-assign]
    tasks, clock, run, sched, loop_task = await forty_tasks(alive)
    await clock.advance(1.5)  # the slot fires; our own claims are on their way
    await clock.advance(3)  # well past slot + grace, own share still not answered
    assert run.calls == []
    gate.set()
    await idle(alive)
    own = {c.task for c in run.calls}
    assert 0 < len(own) < 40, "only our own share: the other's owner gets its grace"
    await clock.advance(1.5)
    await idle(alive)
    assert {c.task for c in run.calls} == own
    await clock.advance(1)  # a grace after our own share was claimed
    await idle(alive)
    assert sorted(c.task for c in run.calls) == sorted(t.name for t in tasks)
    await stop(sched, loop_task, alive)


async def forty_tasks(
    store: StateStore,
) -> tuple[list[CompiledTask], FakeClock, FakeRun, Scheduler, asyncio.Task[None]]:
    """40 claimed every-minute tasks on a scheduler with `store`, armed a second before the
    minute."""
    tasks = [make_task(f"t{i}", "* * * * *", inline=False) for i in range(40)]
    clock = FakeClock()
    clock._set(float(START_S - 1))
    run = FakeRun(clock)
    sched = Scheduler(tasks, Resources(), clock=clock, run=run, recorder=store, claims=store)
    loop_task = asyncio.create_task(sched.serve())
    await sched.armed.wait()
    return tasks, clock, run, sched, loop_task


async def stop(sched: Scheduler, loop_task: asyncio.Task[None], store: StateStore) -> None:
    sched.stop_firing()
    await loop_task
    await sched.cancel_all()
    await store.flush()


def zlib_part(task: str) -> int:
    import zlib

    return zlib.crc32(task.encode())
