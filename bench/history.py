"""Run history cost: run-row writes per run (PostgreSQL, SQLite) and fire throughput with history
on vs off (run by hand; needs PostgreSQL).

    .venv/bin/python bench/history.py [--runs 2000] [--tasks 2000] [--repeat 3]

(a) Row overhead: N runs each claimed (`running` row), then given a final state through the
    write-behind queue, until flushed. Two shapes: all N due together (one claim statement per
    batch, as the scheduler sends them) and one at a time (a claim round trip each).
(b) Throughput: T tasks due in the same second through the real scheduler with a no-op run;
    time from the slot until every run finished, without a store and with one (claims and
    final states flushed). Best of `--repeat`. Set CRONSTACK_BENCH_PG for another server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon.core.cron import CronSchedule
from daemon.core.runs import Claim, Outcome, RunResult
from daemon.engine.compiler import CompiledTask
from daemon.ops import logs
from daemon.resources.bundle import Resources
from daemon.resources.db import create_datasource
from daemon.scheduling.scheduler import Scheduler
from daemon.state.store import StateStore
from daemon.testing import FakeClock, settle

ADMIN = os.environ.get("CRONSTACK_BENCH_PG", "postgresql://root@127.0.0.1:5432/postgres")
START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def task(name: str) -> CompiledTask:
    zone = ZoneInfo("UTC")
    return CompiledTask(
        name=name, file="", status="active", description="", tags=[], request_history=True,
        data_source=None, tz=zone, cron="* * * * * *",
        schedule=CronSchedule("* * * * * *", zone), steps=[], on_failure=None, timeout=None,
        retry=None, overlap="skip", jitter=0.0, misfire_grace=60.0, catch_up="none",
        expect_success_within=None, fingerprint=name.encode(),
    )  # fmt: skip


async def make_store(url: str, base: Path) -> StateStore:
    store = StateStore(create_datasource("state", url, base_dir=base, max_size=3))
    await store.open()
    await store.ds.execute("DELETE FROM cronstack_runs", [])
    await store.ds.execute("DELETE FROM cronstack_task_state", [])
    return store


def final(c: Claim) -> Outcome:
    now = int(time.time() * 1000)
    return Outcome(c.task, c.run_id, c.slot_id, "succeeded", c.trigger, c.attempt,
                   c.scheduled_at, now, now)  # fmt: skip


async def row_overhead(store: StateStore, runs: int, batched: bool) -> float:
    """Seconds per run for claim + final state + flush."""
    base = int(time.time() * 1000)
    claims = [Claim(f"r{base}-{i}", f"t{i % 50}", f"t@{base + i}", base + i, "schedule", 1)
              for i in range(runs)]  # fmt: skip
    t0 = time.perf_counter()
    if batched:
        await asyncio.gather(*(store.claim(c) for c in claims))
    else:
        for c in claims:
            await store.claim(c)
    for c in claims:
        store.enqueue(final(c))
    await store.flush()
    return (time.perf_counter() - t0) / runs


class NoopRun:
    def __init__(self) -> None:
        self.done = 0

    async def __call__(self, task: CompiledTask, resources: Resources, **kw: object) -> RunResult:
        self.done += 1
        now = int(time.time() * 1000)
        return RunResult(task.name, str(kw["run_id"]), str(kw["slot_id"]), "succeeded",
                         str(kw["trigger"]), 1, int(kw["scheduled_at"]), now, now)  # type: ignore[call-overload]  # fmt: skip


class NullRecorder:
    async def record(self, outcome: Outcome) -> None:
        return None


async def throughput(ntasks: int, store: StateStore | None) -> float:
    """Seconds from the slot until every run of `ntasks` tasks finished (and was flushed)."""
    clock = FakeClock(START)
    run = NoopRun()
    sched = Scheduler(
        [task(f"t{i}") for i in range(ntasks)],
        Resources(),
        clock=clock,
        run=run,
        recorder=store or NullRecorder(),
        claims=store,
    )
    loop_task = asyncio.create_task(sched.serve())
    await sched.armed.wait()
    t0 = time.perf_counter()
    await clock.advance(1.0)
    while run.done < ntasks:
        await asyncio.sleep(0)
        if store is not None and store.claiming:
            await asyncio.sleep(0.0005)
    await settle()
    if store is not None:
        await store.flush()
    elapsed = time.perf_counter() - t0
    sched.stop_firing()
    await loop_task
    await sched.cancel_all()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    # Per-fire info logs cost the same with and without history; keep them out of both.
    logs.configure(level="warning", fmt="json", stream=sys.stderr)
    name = f"cronstack_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    pg_url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    tmp = Path(tempfile.mkdtemp())
    try:
        for label, url in (("postgresql", pg_url), ("sqlite", f"sqlite:///{tmp / 'h.db'}")):
            store = await make_store(url, tmp)
            try:
                for batched, shape in ((True, "batched"), (False, "one at a time")):
                    n = args.runs if batched else max(1, args.runs // 4)
                    best = min([await row_overhead(store, n, batched) for _ in range(args.repeat)])
                    print(f"row overhead  {label:<10} {shape:<14} {best * 1e6:8.1f} us/run")
                off = min([await throughput(args.tasks, None) for _ in range(args.repeat)])
                on = []
                for _ in range(args.repeat):
                    await store.ds.execute("DELETE FROM cronstack_runs", [])
                    on.append(await throughput(args.tasks, store))
                print(
                    f"throughput    {label:<10} {args.tasks} fires: history off {off * 1e3:7.1f} ms"
                    f" ({args.tasks / off:,.0f}/s), on {min(on) * 1e3:7.1f} ms"
                    f" ({args.tasks / min(on):,.0f}/s), ratio {min(on) / off:.2f}x"
                )
            finally:
                await store.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
