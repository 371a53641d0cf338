"""Database steps vs hand-written asyncpg on the same pool (run by hand; needs PostgreSQL).

    .venv/bin/python bench/engine_db.py [--rows 10000] [--repeat 3]

(a) Query All Records of N rows + Loop (the real Loop step) of Add Record + Delete Record, against
    a loop issuing the same INSERT ... RETURNING * / DELETE statements through the same pool.
    Budget: <= 1.3x.
(b) Bulk Add Records of N rows against copy_records_to_table on the same pool. Budget: <= 1.2x.

Both sides start from the same JSON-shaped input (times as ms since the epoch), so the baseline
also converts ms to datetime: that is work any caller has to do. Best of `--repeat` runs each,
alternating engine and baseline so drift hits both. Set CRONSTACK_BENCH_PG for another server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon.engine.compiler import compile_stack
from daemon.engine.context import RunContext, TaskInfo
from daemon.resources.bundle import Resources
from daemon.resources.db import create_datasource
from daemon.resources.db.postgres import PostgresDataSource
from steps import build_registry

ADMIN = os.environ.get("CRONSTACK_BENCH_PG", "postgresql://root@127.0.0.1:5432/postgres")
T0 = 1772964000000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SCHEMA = """
DROP TABLE IF EXISTS sessions, archived;
CREATE TABLE sessions (id serial PRIMARY KEY, user_id int NOT NULL,
                       created_at timestamptz NOT NULL, payload text);
CREATE TABLE archived (id int PRIMARY KEY, user_id int NOT NULL,
                       created_at timestamptz NOT NULL, payload text);
"""

LOOP_STACK = [
    {
        "function": "Query All Records",
        "table": "sessions",
        "filter": {"created_at": {"<": "{{timestamp}}"}},
        "return_variable": "old",
    },
    {
        "function": "Loop",
        "input_array": "{{old}}",
        "loop_item_variable": "session",
        "steps": [
            {"function": "Add Record", "table": "archived", "data": "{{session}}"},
            {"function": "Delete Record", "table": "sessions", "record_id": "{{session.id}}"},
        ],
    },
]
BULK_STACK = [{"function": "Bulk Add Records", "table": "sessions", "items": "{{items}}"}]


def items(n: int) -> list[dict[str, Any]]:
    return [{"user_id": i, "created_at": T0 - i * 1000, "payload": f"p{i}"} for i in range(n)]


async def reset(pool: asyncpg.Pool, n: int) -> None:
    await pool.execute("TRUNCATE sessions, archived RESTART IDENTITY")
    records = [(i, EPOCH + timedelta(milliseconds=T0 - i * 1000), f"p{i}") for i in range(n)]
    await pool.copy_records_to_table(
        "sessions", records=records, columns=["user_id", "created_at", "payload"]
    )
    await pool.execute("VACUUM ANALYZE sessions")


def context(resources: Resources) -> RunContext:
    return RunContext(
        task=TaskInfo(name="bench", run_id="r", slot_id="s", scheduled_at=T0),
        resources=resources,
        tz=ZoneInfo("UTC"),
        started_ms=T0 + 1,
    )


async def engine_loop(steps: list[Any], resources: Resources) -> float:
    ctx = context(resources)
    start = time.perf_counter()
    for step in steps:
        await ctx.run_step(step)
    return time.perf_counter() - start


async def baseline_loop(pool: asyncpg.Pool) -> float:
    start = time.perf_counter()
    cutoff = EPOCH + timedelta(milliseconds=T0 + 1)
    rows = await pool.fetch('SELECT * FROM "sessions" WHERE "created_at" < $1', cutoff)
    insert = (
        'INSERT INTO "archived" ("id", "user_id", "created_at", "payload")'
        " VALUES ($1, $2, $3, $4) RETURNING *"
    )
    delete = 'DELETE FROM "sessions" WHERE "id" = $1'
    for row in rows:
        await pool.fetchrow(insert, row["id"], row["user_id"], row["created_at"], row["payload"])
        await pool.execute(delete, row["id"])
    return time.perf_counter() - start


async def engine_bulk(steps: list[Any], resources: Resources, data: list[dict[str, Any]]) -> float:
    ctx = context(resources)
    ctx.set_var("items", data)
    start = time.perf_counter()
    count = await ctx.run_step(steps[0])
    elapsed = time.perf_counter() - start
    assert count == len(data), count
    return elapsed


async def baseline_bulk(pool: asyncpg.Pool, data: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    records = [
        (d["user_id"], EPOCH + timedelta(0, 0, 0, d["created_at"]), d["payload"]) for d in data
    ]
    await pool.copy_records_to_table(
        "sessions", records=records, columns=["user_id", "created_at", "payload"]
    )
    return time.perf_counter() - start


def report(label: str, engine: float, base: float, budget: float) -> bool:
    ratio = engine / base
    ok = ratio <= budget
    print(
        f"{label}: engine {engine * 1000:8.1f} ms  baseline {base * 1000:8.1f} ms  "
        f"ratio {ratio:.3f}  budget <= {budget:.1f}x  {'OK' if ok else 'OVER BUDGET'}"
    )
    return ok


async def main(n: int, repeat: int) -> int:
    name = f"cronstack_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    # Without per-commit fsync the figures measure our overhead, not the disk's flush latency.
    await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "schema.sql").write_text(SCHEMA)
            url = ADMIN.rpartition("/")[0] + "/" + name
            ds = create_datasource(
                "primary", url, base_dir=Path(tmp), init_sql=[Path("schema.sql")]
            )
            assert isinstance(ds, PostgresDataSource)
            await ds.open()
            try:
                return await measure(ds, n, repeat)
            finally:
                await ds.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def measure(ds: PostgresDataSource, n: int, repeat: int) -> int:
    resources = Resources(datasources={"primary": ds}, default_datasource="primary")
    registry = build_registry()
    loop_steps = compile_stack(LOOP_STACK, registry=registry, resources=resources).steps
    bulk_steps = compile_stack(BULK_STACK, registry=registry, resources=resources).steps
    pool = ds.pool
    data = items(n)

    # Warm up: prepared statements, pool connections, code paths.
    await reset(pool, 200)
    await engine_loop(loop_steps, resources)
    await reset(pool, 200)
    await baseline_loop(pool)

    loop_engine, loop_base = [], []
    for _ in range(repeat):
        await reset(pool, n)
        loop_engine.append(await engine_loop(loop_steps, resources))
        assert await pool.fetchval("SELECT count(*) FROM archived") == n
        await reset(pool, n)
        loop_base.append(await baseline_loop(pool))

    bulk_engine, bulk_base = [], []
    for _ in range(bulk_runs := repeat * 3):
        await pool.execute("TRUNCATE sessions, archived RESTART IDENTITY")
        bulk_engine.append(await engine_bulk(bulk_steps, resources, data))
        await pool.execute("TRUNCATE sessions, archived RESTART IDENTITY")
        bulk_base.append(await baseline_bulk(pool, data))

    print(f"PostgreSQL, {n} rows, best of {repeat} (loop) / {bulk_runs} (bulk) runs")
    print("(a) uses the real Loop step; baseline: pool.fetch + pool.fetchrow/pool.execute per row")
    ok = report("(a) query + loop(add, delete)", min(loop_engine), min(loop_base), 1.3)
    ok &= report("(b) bulk add records        ", min(bulk_engine), min(bulk_base), 1.2)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.rows, args.repeat)))
