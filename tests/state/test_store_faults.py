"""The state store between a lost reply and a slow link: claims resolved, nothing left running."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from daemon.core.runs import WON, Claim, Outcome
from daemon.resources.db import create_datasource
from daemon.state.store import StateStore, open_state_datasource
from tests.support.faultproxy import FaultProxy

Proxies = Callable[[str], Awaitable[FaultProxy]]


def claims_for(task: str, slot: int, n: int) -> list[Claim]:
    stamp = time.monotonic_ns()
    return [
        Claim(f"{task}-{stamp}-{i}", f"{task}{i}", f"{task}{i}@{slot}", slot, "schedule", 1)
        for i in range(n)
    ]


def finished(c: Claim, status: str = "succeeded") -> Outcome:
    now = int(time.time() * 1000)
    started = None if status == "missed" else now - 5
    return Outcome(
        c.task, c.run_id, c.slot_id, status, c.trigger, c.attempt, c.scheduled_at, started, now
    )


async def wait_rows(direct: StateStore, run_ids: list[str], want: int) -> None:
    """Until the database itself holds `want` of these runs (read around the proxy)."""
    deadline = time.monotonic() + 5
    while True:
        rows = await direct.ds.fetch(
            "SELECT count(*) AS n FROM cronstack_runs WHERE run_id = ANY($1::text[])", [run_ids]
        )
        if rows[0]["n"] >= want:
            return
        assert time.monotonic() < deadline, "the claim never reached the database"
        await asyncio.sleep(0.02)


def one_connection(proxy: FaultProxy, pg_url: str, tmp_path: Path) -> StateStore:
    """A store on one pooled connection through the proxy: the claim statement prepared on it
    once goes out as bind-and-execute, so the server commits before it answers."""
    ds = create_datasource("state", proxy.url_for(pg_url), base_dir=tmp_path, max_size=1)
    return StateStore(ds)


async def warm(store: StateStore) -> None:
    """Prepare the claim statement on the store's connection (and finish that claim)."""
    done = claims_for("warm", 1, 1)
    assert set((await store.claim_many(done)).values()) == {WON}
    store.enqueue(finished(done[0]))
    await store.flush()


@pytest.fixture
async def direct(pg_url: str, tmp_path: Path) -> StateStore:
    """The store's tables, read without a proxy in the way (and emptied afterwards)."""
    store = StateStore(create_datasource("direct", pg_url, base_dir=tmp_path))
    await store.open()
    yield store  # type: ignore[misc]
    for table in ("cronstack_runs", "cronstack_task_state", "cronstack_instances"):
        await store.ds.execute(f"DELETE FROM {table}", [])
    await store.close(timeout=1)


async def test_a_claim_whose_reply_was_lost_is_won_by_its_token(
    pg_url: str, tmp_path: Path, fault_proxy: Proxies, direct: StateStore
) -> None:
    """The claim's INSERT commits, its reply is lost, the retry finds the rows taken: they carry
    our owner and token, so the claims are WON, and their final states land — none is left
    running, none is recorded twice."""
    proxy = await fault_proxy(pg_url)
    store = one_connection(proxy, pg_url, tmp_path)
    await store.open()
    try:
        await warm(store)
        claims = claims_for("lost", 10_000, 20)
        proxy.hold_replies()
        claiming = asyncio.create_task(store.claim_many(claims))
        await wait_rows(direct, [c.run_id for c in claims], 20)
        proxy.cut()  # the connection dies with the reply in it; the retry gets a new one
        answers = await asyncio.wait_for(claiming, 10)
        assert set(answers.values()) == {WON}
        for c in claims:
            store.enqueue(finished(c))
        await store.flush()
        rows = await direct.ds.fetch(
            "SELECT status FROM cronstack_runs WHERE task LIKE 'lost%'", []
        )
        assert [r["status"] for r in rows] == ["succeeded"] * 20
    finally:
        await store.close(timeout=1)


async def test_a_claim_that_failed_after_committing_ends_missed_not_running(
    pg_url: str, tmp_path: Path, fault_proxy: Proxies, direct: StateStore
) -> None:
    """Reply lost and the retry refused too: the fires are recorded missed — as an update of the
    rows the first try wrote, so no row stays running; slots whose claim never landed get
    their missed row inserted. The outage is one error line when it starts."""
    proxy = await fault_proxy(pg_url)
    store = one_connection(proxy, pg_url, tmp_path)
    await store.open()
    try:
        await warm(store)
        landed = claims_for("half", 20_000, 5)
        proxy.hold_replies()
        futures = [store.claim(c) for c in landed]
        await wait_rows(direct, [c.run_id for c in landed], 5)
        await proxy.refuse()
        proxy.cut()
        for fut in futures:
            with pytest.raises(Exception):  # noqa: B017 - the store error, whatever it is
                await fut
        assert store.outage.down
        await proxy.resume()
        for c in landed:
            store.enqueue(finished(c, "missed"))
        never = claims_for("never", 20_000, 3)  # a claim the store never saw, same handling
        store._ambiguous.update({c.run_id: "0" * 16 for c in never})
        for c in never:
            store.enqueue(finished(c, "missed"))
        await store.flush()
        rows = await direct.ds.fetch(
            "SELECT status FROM cronstack_runs WHERE task NOT LIKE 'warm%'", []
        )
        assert sorted(r["status"] for r in rows) == ["missed"] * 8
    finally:
        await store.close(timeout=1)


async def test_a_slow_link_keeps_claims_off_the_retention_queue(
    pg_url: str, tmp_path: Path, fault_proxy: Proxies, direct: StateStore
) -> None:
    """With 100 ms each way between the daemon and PostgreSQL, a claim never waits for a
    connection behind retention and flushes: a batch is answered in a couple of round trips
    while the pool is busy pruning."""
    proxy = await fault_proxy(pg_url)
    store = StateStore(open_state_datasource(proxy.url_for(pg_url), base_dir=tmp_path))
    await store.open()
    try:
        tasks = [f"r{i}" for i in range(200)]
        store.configure({})
        for name in tasks:  # tasks known to retention: a round trip or two each
            await direct.set_paused(name, False)
        proxy.delay(100)
        pruning = asyncio.create_task(store.prune(tasks=200))
        flushing = [asyncio.create_task(store.flush()) for _ in range(2)]
        await asyncio.sleep(0.3)  # retention holds its connection, statement after statement
        claims = claims_for("slow", 30_000, 100)
        started = time.monotonic()
        answers = await asyncio.gather(*(store.claim(c) for c in claims))
        took = time.monotonic() - started
        assert set(answers) == {WON}
        # A few round trips of the slow link (each chunk of a reply is held 100 ms by the
        # proxy), not the prune's 400 statements behind which it used to queue.
        assert took < 3.0, f"claims waited {took:.2f} s"
        assert not pruning.done()
        pruning.cancel()
        await asyncio.gather(pruning, *flushing, return_exceptions=True)
    finally:
        proxy.delay(0)
        await store.close(timeout=2)
