"""The state store on PostgreSQL and SQLite: migrations, claims, leases, fencing, retention."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.core.runs import Claim, Outcome
from daemon.resources.bundle import Resources
from daemon.resources.db import create_datasource
from daemon.scheduling.clock import SystemClock
from daemon.scheduling.scheduler import Scheduler
from daemon.state.store import BUSY, EARLY, LOST, WON, StateStore, StoreLockedError, TaskPolicy
from daemon.testing import FakeClock
from tests.scheduling.test_scheduler import FakeRun, make_task

StoreFactory = Callable[..., StateStore]


@pytest.fixture
async def stores(db_url: str, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Makes opened stores on one state database (each like a separate process); closes them."""
    made: list[StateStore] = []

    def make(**kw: object) -> StateStore:
        ds = create_datasource("state", db_url, base_dir=tmp_path, max_size=3)
        store = StateStore(ds, **kw)  # type: ignore[arg-type]
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close(timeout=1)
    # Module-scoped PostgreSQL database: leave it empty for the next test.
    if db_url.startswith("postgresql"):
        cleaner = create_datasource("state", db_url, base_dir=tmp_path)
        await cleaner.open()
        await cleaner.execute("DELETE FROM cronstack_runs", [])
        await cleaner.execute("DELETE FROM cronstack_task_state", [])
        await cleaner.execute("DELETE FROM cronstack_instances", [])
        await cleaner.close()


def claim(task: str, slot: int, *, attempt: int = 1, skip: bool = True, run_id: str = "") -> Claim:
    trigger = "schedule" if attempt == 1 else "retry"
    rid = run_id or f"{task}-{slot}-{attempt}-{time.monotonic_ns()}"
    return Claim(rid, task, f"{task}@{slot}", slot, trigger, attempt, skip)


def outcome(c: Claim, status: str = "succeeded", **kw: object) -> Outcome:
    now = int(time.time() * 1000)
    fields: dict[str, object] = {
        "task": c.task,
        "run_id": c.run_id,
        "slot_id": c.slot_id,
        "status": status,
        "trigger": c.trigger,
        "attempt": c.attempt,
        "scheduled_at": c.scheduled_at,
        "started_at": now - 5,
        "finished_at": now,
    }
    fields.update(kw)
    return Outcome(**fields)  # type: ignore[arg-type]


async def test_migrations_are_safe_to_run_concurrently(stores: StoreFactory) -> None:
    """Several processes starting at once all migrate without error; one row per version."""
    many = [stores() for _ in range(4)]
    await asyncio.gather(*(s.open() for s in many))
    rows = await many[0].ds.fetch("SELECT version FROM cronstack_schema_version", [])
    assert sorted(r["version"] for r in rows) == [1, 2]


async def test_a_slot_is_won_by_exactly_one_process(stores: StoreFactory) -> None:
    """Two processes claiming the same 200 slots at once: each slot won exactly once."""
    a, b = stores(instance="a"), stores(instance="b")
    await a.open()
    await b.open()
    slots = range(1_000, 1_200)
    ca = [claim("t", s, skip=False, run_id=f"a{s}") for s in slots]
    cb = [claim("t", s, skip=False, run_id=f"b{s}") for s in slots]
    ra, rb = await asyncio.gather(a.claim_many(ca), b.claim_many(cb))
    for s in slots:
        assert sorted([ra[f"a{s}"], rb[f"b{s}"]]) == [LOST, WON]
    rows = await a.ds.fetch("SELECT count(*) AS n FROM cronstack_runs", [])
    assert rows[0]["n"] == 200


async def test_skip_overlap_holds_across_processes(stores: StoreFactory) -> None:
    """A live running row of the task elsewhere makes the next slot `skipped` (BUSY), once."""
    a, b = stores(instance="a"), stores(instance="b")
    await a.open()
    await b.open()
    first = claim("t", 1000)
    assert (await a.claim_many([first]))[first.run_id] == WON
    nxt_b, nxt_a = claim("t", 2000), claim("t", 2000)
    assert (await b.claim_many([nxt_b]))[nxt_b.run_id] == BUSY
    assert (await a.claim_many([nxt_a]))[nxt_a.run_id] == LOST  # the slot already has its row
    rows = await a.queries.runs("t")
    assert [(r["scheduled_at"], r["status"]) for r in rows] == [
        (2000, "skipped"),
        (1000, "running"),
    ]


async def test_final_state_write_behind_and_history(stores: StoreFactory) -> None:
    """A final state goes through the queue, lands within a second, and reads back newest first."""
    s = stores()
    await s.open()
    s.start()
    c = claim("t", 5000)
    assert await s.claim(c) == WON
    err = {"type": "StepError", "message": "boom", "step": "function_stack[0]"}
    await s.record(outcome(c, "failed", error=err))
    deadline = time.monotonic() + 1.0
    while (await s.queries.runs("t"))[0]["status"] == "running":
        assert time.monotonic() < deadline, "final state not written within 1 s"
        await asyncio.sleep(0.02)
    row = (await s.queries.runs("t"))[0]
    assert row["status"] == "failed" and row["error"] == err and row["duration_ms"] == 5
    # The task's latest slot is saved on its own schedule (SLOTS_INTERVAL) and at close.
    assert (await s.last_slots()) == {}
    await s.flush(slots=True)
    assert (await s.last_slots()) == {"t": 5000}


async def test_expired_lease_is_interrupted_and_fenced(stores: StoreFactory) -> None:
    """A run whose lease expired is marked interrupted by a survivor; its owner's late final
    state is refused (fencing)."""
    dead = stores(instance="dead", lease_timeout=0.2)
    survivor = stores(instance="survivor", lease_timeout=0.2)
    await dead.open()
    await survivor.open()
    c = claim("t", 7000)
    assert (await dead.claim_many([c]))[c.run_id] == WON
    await asyncio.sleep(0.3)  # no heartbeat: the lease runs out (database clock)
    assert await survivor.reap() == 1
    dead.enqueue(outcome(c, "succeeded"))
    await dead.flush()
    row = (await survivor.queries.runs("t"))[0]
    assert row["status"] == "interrupted"
    assert row["error"]["type"] == "Interrupted" and "lease expired" in row["reason"]
    # The task is free again: the next slot is claimed normally.
    nxt = claim("t", 8000)
    assert (await survivor.claim_many([nxt]))[nxt.run_id] == WON


async def test_heartbeat_keeps_the_lease(stores: StoreFactory) -> None:
    """Renewed leases do not expire: the reaper leaves the run alone."""
    a = stores(lease_timeout=0.3)
    await a.open()
    c = claim("t", 9000)
    await a.claim_many([c])
    for _ in range(4):
        await asyncio.sleep(0.12)
        assert await a.heartbeat() == 1
        assert await a.reap() == 0


async def test_pause_resume_persisted(stores: StoreFactory) -> None:
    """Pause flags live in the store: another process (the daemon) reads them."""
    cli, daemon = stores(), stores()
    await cli.open()
    await daemon.open()
    await cli.set_paused("t", True)
    await cli.set_paused("u", True)
    await cli.set_paused("u", False)
    assert await daemon.paused_tasks() == {"t"}


async def test_retention_by_age_and_count(stores: StoreFactory) -> None:
    """Rows beyond a task's max_runs or older than its retention are pruned; running rows stay."""
    s = stores()
    await s.open()
    s.configure({"t": TaskPolicy(retention=3600, max_runs=5), "old": TaskPolicy(retention=10)})
    now = int(time.time() * 1000)
    for i in range(12):
        c = claim("t", now - i * 1000)
        s.enqueue(outcome(c, "succeeded"))
    for i in range(3):
        s.enqueue(outcome(claim("old", now - 60_000 - i), "succeeded"))
    s.enqueue(outcome(claim("old", now), "succeeded"))
    await s.flush()
    await s.claim_many([claim("t", now - 100_000)])  # running: never pruned
    assert await s.prune(now) == 7 + 3
    rows = await s.queries.runs("t", limit=100)
    assert len(rows) == 6 and rows[-1]["status"] == "running"
    assert len(await s.queries.runs("old", limit=100)) == 1


async def test_retention_rounds_visit_every_task_once_and_then_new_ones(
    stores: StoreFactory,
) -> None:
    """The daemon's retention loop prunes a few tasks per call, going round all of them; a task
    that appears mid-round is pruned from the next round on."""
    s = stores()
    await s.open()
    s.configure({name: TaskPolicy(retention=3600, max_runs=1) for name in "abcde"})
    now = int(time.time() * 1000)

    async def two_rows_each(names: str) -> None:
        for name in names:
            for i in range(2):
                s.enqueue(outcome(claim(name, now - i * 1000), "succeeded"))
        await s.flush()

    await two_rows_each("abcde")
    assert [await s.prune(now, tasks=2) for _ in range(3)] == [2, 2, 1]  # a b | c d | e
    s.configure({name: TaskPolicy(retention=3600, max_runs=1) for name in "abcdef"})
    await two_rows_each("af")  # a is pruned again, f is new
    assert await s.prune(now, tasks=2) == 1  # the next round: a (and b, with one row)
    assert await s.prune(now, tasks=10) == 1  # c d e f: only f has a row too many
    for name in "abcdef":
        assert len(await s.queries.runs(name, limit=10)) == 1


async def test_write_failures_stay_queued(stores: StoreFactory) -> None:
    """A failed flush keeps its rows queued; the next flush writes them."""
    s = stores()
    await s.open()
    s.enqueue(outcome(claim("t", 1), "missed", started_at=None, finished_at=None))
    real = s.ds
    s.ds = create_datasource("broken", "sqlite:////nonexistent/dir/x.db", base_dir=Path("/"))
    with pytest.raises(Exception):  # noqa: B017 - any store error
        await s.flush()
    assert s.queued == 2  # the row and the task's last slot
    s.ds = real
    await s.flush()
    assert [r["status"] for r in await s.queries.runs("t")] == ["missed"]


async def test_sqlite_store_admits_one_daemon(tmp_path: Path) -> None:
    """A second daemon on the same SQLite file refuses to start with a clear message."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    first = StateStore(create_datasource("s", url, base_dir=tmp_path))
    second = StateStore(create_datasource("s", url, base_dir=tmp_path))
    await first.open(exclusive=True)
    try:
        with pytest.raises(StoreLockedError, match="in use by another cronstack process"):
            await second.open(exclusive=True)
        # One-shot commands (history, pause) share the file with the daemon.
        cli = StateStore(create_datasource("s", url, base_dir=tmp_path))
        await cli.open()
        await cli.close()
    finally:
        await first.close()
    await second.open(exclusive=True)  # the lock went with the first daemon
    await second.close()


# --- the database clock -------------------------------------------------------------------------


async def test_claim_refuses_a_slot_ahead_of_the_database_clock(
    pg_url: str, tmp_path: Path
) -> None:
    """On PostgreSQL a slot > 1 s ahead of now() is EARLY: no row, no last slot; manual runs and
    slots within the tolerance are claimed."""
    s = StateStore(create_datasource("state", pg_url, base_dir=tmp_path, max_size=3))
    await s.open()
    try:
        now = int(time.time() * 1000)
        ahead, near = claim("t", now + 90_000), claim("t", now + 500)
        manual = Claim("m1", "t", "m1", now + 90_000, "manual", 1)
        got = await s.claim_many([ahead, near, manual])
        assert got == {ahead.run_id: EARLY, near.run_id: WON, "m1": WON}
        assert {r["run_id"] for r in await s.queries.runs("t")} == {near.run_id, "m1"}
        await s.flush(slots=True)
        assert await s.last_slots() == {"t": now + 500}
    finally:
        await s.ds.execute("DELETE FROM cronstack_runs", [])
        await s.ds.execute("DELETE FROM cronstack_task_state", [])
        await s.close(timeout=1)


async def test_clock_offset_is_measured_against_the_process_clock(stores: StoreFactory) -> None:
    """A process clock 90 s fast measures about -90 s on PostgreSQL (0 on SQLite) at open, and
    hands it to the clock, which then reads the database's time."""
    clock = SystemClock(offset=90.0)
    s = stores()
    s.clock.local_time = clock.local_time
    s.clock.on_offset = clock.set_correction
    await s.open(exclusive=True)
    if s.dialect.name == "postgresql":
        assert abs(s.clock.offset + 90) < 0.5
        assert abs(clock.now().timestamp() - time.time()) < 0.5
    else:
        assert s.clock.offset == 0.0
        assert abs(clock.now().timestamp() - time.time() - 90) < 0.5
    assert clock.correction == s.clock.offset
    # Later measurements are smoothed; a step of the process clock is taken at once.
    clock.offset = 95.0
    await s.clock.sync()
    expected = -95 if s.dialect.name == "postgresql" else 0
    assert abs(s.clock.offset - expected) < 0.5


async def test_clock_correction_wakes_sleepers() -> None:
    """A new correction wakes a sleeper so the scheduler recomputes its deadline."""
    clock = SystemClock()
    wake = asyncio.Event()
    far = datetime.now(UTC) + timedelta(seconds=20)
    sleeper = asyncio.create_task(clock.sleep_until(far, wake))
    await asyncio.sleep(0.01)
    clock.set_correction(-3.0)
    await asyncio.wait_for(sleeper, 1)
    assert abs(clock.now().timestamp() - (time.time() - 3.0)) < 0.1


class EarlyClaims:
    """A claimer that answers EARLY for one slot a few times, then WON; WON for all others."""

    exclusive = False
    behind = False
    partition = (0, 1)

    async def unclaimed(self, slots: list[tuple[int, str]]) -> set[str]:
        return {slot_id for _, slot_id in slots}

    def __init__(self, slot_ms: int, refusals: int) -> None:
        self.slot_ms = slot_ms
        self.refusals = refusals
        self.claims: Counter[int] = Counter()

    async def claim(self, claim: Claim) -> str:
        self.claims[claim.scheduled_at] += 1
        if claim.scheduled_at == self.slot_ms and self.refusals:
            self.refusals -= 1
            return EARLY
        return WON


class Outcomes:
    def __init__(self) -> None:
        self.got: list[Outcome] = []

    async def record(self, outcome: Outcome) -> None:
        self.got.append(outcome)


async def test_scheduler_rearms_an_early_fire() -> None:
    """An EARLY answer neither runs nor records the fire; it is claimed again later (backing
    off) and runs once, and every other slot runs once on time."""
    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    clock = FakeClock(start)
    first = int(start.timestamp() * 1000) + 1000
    claims, outcomes, run = EarlyClaims(first, refusals=2), Outcomes(), FakeRun(clock)
    sched = Scheduler(
        [make_task("t", inline=False)],
        Resources(),
        clock=clock,
        run=run,
        recorder=outcomes,
        claims=claims,
    )
    loop_task = asyncio.create_task(sched.serve())
    await sched.armed.wait()
    for _ in range(100):
        await clock.advance(0.05)
    sched.stop_firing()
    await loop_task
    await sched.cancel_all()
    slots = [first + i * 1000 for i in range(5)]
    assert sorted(c.scheduled_at for c in run.calls) == slots
    assert sorted(o.scheduled_at for o in outcomes.got) == slots
    assert {o.status for o in outcomes.got} == {"succeeded"}
    assert claims.claims[first] == 3 and all(claims.claims[s] == 1 for s in slots[1:])
    started = {c.scheduled_at: c.started.timestamp() * 1000 for c in run.calls}
    # Refused twice: retried after 0.25 s, then 0.5 s more.
    assert started[first] - first == pytest.approx(750, abs=60)
    assert all(started[s] - s < 60 for s in slots[1:])


async def test_unclaimed_names_only_the_slots_without_a_row(stores: StoreFactory) -> None:
    """The replicas' probe: of a batch of first-attempt slots, only those nobody claimed or
    recorded come back — not the taken ones (50,000 rows to decode in a burst)."""
    owner, other = stores(instance="owner"), stores(instance="other")
    await owner.open()
    await other.open()
    claimed = [claim(f"t{i}", 60_000) for i in range(4)]
    assert set((await owner.claim_many(claimed)).values()) == {WON}
    recorded = claim("t4", 60_000)
    owner.enqueue(outcome(recorded, "missed", started_at=None, finished_at=None))
    await owner.flush()
    probe = [(60_000, f"t{i}@60000") for i in range(7)] + [(120_000, "t0@120000")]
    assert await other.unclaimed(probe) == {"t5@60000", "t6@60000", "t0@120000"}
    assert await other.unclaimed([]) == set()


async def test_last_success_is_the_newest_successful_slots_finish(stores: StoreFactory) -> None:
    """For the dead-man's switch at start: per asked task, the finish of its newest successful
    slot (a failure after it does not count); tasks never successful, or not asked, are absent."""
    s = stores()
    await s.open()
    for task, slot, status, finished in (
        ("a", 1000, "succeeded", 1500),
        ("a", 2000, "succeeded", 2500),
        ("a", 3000, "failed", 3500),
        ("b", 1000, "failed", 1500),
        ("c", 1000, "succeeded", 1500),
    ):
        s.enqueue(
            outcome(claim(task, slot), status, started_at=finished - 10, finished_at=finished)
        )
    await s.flush()
    assert await s.queries.last_success(["a", "b", "missing"]) == {"a": 2500}
    assert await s.queries.last_success([]) == {}
