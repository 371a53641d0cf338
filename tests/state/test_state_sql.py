"""The state store's named statements: translated once per dialect, each valid on its database."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from daemon.resources.db import create_datasource
from daemon.resources.db.postgres import PostgresDataSource
from daemon.resources.db.sqlite import SqliteDataSource
from daemon.state.migrations import migrate
from daemon.state.sql import POSTGRESQL, SQLITE, Dialect, statements


@pytest.mark.parametrize("dialect", [POSTGRESQL, SQLITE], ids=lambda d: d.name)
def test_every_statement_is_translated(dialect: Dialect) -> None:
    """No marker survives translation; SQLite statements use ?NNN, PostgreSQL ones $n."""
    for name, text in statements(dialect).items():
        assert "{NOW}" not in text and "{TRUE}" not in text and "{JSON}" not in text, name
        if dialect is SQLITE:
            assert not re.search(r"\$\d", text), name
            assert "::" not in text, name  # no PostgreSQL casts
        else:
            assert not re.search(r"\?\d", text), name


@pytest.mark.parametrize(
    ("dialect", "rows", "expected"),
    [
        (POSTGRESQL, [("a", 1), ("b", 2)], [["a", "b"], [1, 2]]),
        (SQLITE, [("a", 1), ("b", 2)], ['[["a",1],["b",2]]']),
    ],
    ids=["postgresql", "sqlite"],
)
def test_a_batch_binds_as_arrays_or_one_json_text(
    dialect: Dialect, rows: list[tuple[object, ...]], expected: list[object]
) -> None:
    """PostgreSQL takes one array per column, SQLite one JSON array of rows."""
    assert dialect.batch(rows) == expected


@pytest.mark.parametrize(
    ("dialect", "expected"), [(POSTGRESQL, ["a", "b"]), (SQLITE, '["a","b"]')], ids=["pg", "sqlite"]
)
def test_one_column_binds_as_an_array_or_one_json_text(dialect: Dialect, expected: object) -> None:
    """A list of names (recent runs, last success) is one parameter in either dialect."""
    assert dialect.array(("a", "b")) == expected


@contextlib.asynccontextmanager
async def state_connection(
    pg_url: str, tmp_path: Path, *, store: bool = False
) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the migrated state tables — one of the state store's own when `store`
    (with its session settings) — emptied of run rows afterwards."""
    from daemon.state.store import StateStore, open_state_datasource

    ds = open_state_datasource(pg_url, base_dir=tmp_path) if store else None
    opened = StateStore(ds) if ds is not None else None
    if opened is not None:
        await opened.open()
    else:
        ds = create_datasource("state", pg_url, base_dir=tmp_path)
        await ds.open()
        await migrate(ds)
    assert isinstance(ds, PostgresDataSource)
    try:
        async with ds.pool.acquire() as conn:
            try:
                yield conn
            finally:
                await conn.execute("DELETE FROM cronstack_runs")
    finally:
        await (opened.close(timeout=1) if opened is not None else ds.close())


async def plan_of(conn: asyncpg.Connection, name: str, params: list[object]) -> str:
    """The PostgreSQL plan of a state statement for these parameters, as JSON text."""
    found = await conn.fetchval("EXPLAIN (FORMAT JSON) " + statements(POSTGRESQL)[name], *params)
    return found if isinstance(found, str) else json.dumps(found)  # the pool may decode JSON


def rows_sql(n: int, status: str, lease: str = "NULL") -> str:
    """n run rows of 500 tasks, all with this status and lease expiry (SQL)."""
    return (
        "INSERT INTO cronstack_runs (run_id, task, slot_id, scheduled_at, trigger, instance,"
        " status, lease_token, lease_expires_at) SELECT 'r' || i, 't' || (i % 500), 't' || i,"
        f" i, 'schedule', 'x', '{status}', 'token', {lease} FROM generate_series(1, {n}) AS i"
    )


async def test_every_statement_prepares_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """Each PostgreSQL statement parses and plans against the migrated tables."""
    async with state_connection(pg_url, tmp_path) as conn:
        for name, text in statements(POSTGRESQL).items():
            try:
                await conn.prepare(text)
            except Exception as exc:  # pragma: no cover - the assertion message is the point
                pytest.fail(f"{name}: {exc}")


async def test_final_states_do_not_read_the_index_of_running_rows_on_postgresql(
    pg_url: str, tmp_path: Path
) -> None:
    """A batch of final states does not go through the partial index of running rows: fenced
    on `status = 'running'` it did, since ANALYZE finds that index empty — yet it holds an
    entry for every run finished since the last vacuum: 100 µs a row in a burst."""
    n = 1000
    async with state_connection(pg_url, tmp_path) as conn:
        await conn.execute(rows_sql(20_000, "succeeded"))
        await conn.execute("ANALYZE cronstack_runs")
        ids = [f"r{i}" for i in range(n)]
        final = [["succeeded"] * n, *[[1] * n] * 3, *[[None] * n] * 3]
        plan = await plan_of(conn, "finish_runs", [ids, ["token"] * n, *final])
    # (A table this small is read whole into a hash; a big one by primary key: either is fine.)
    assert "cronstack_runs_running" not in plan, plan


async def test_the_store_joins_batches_to_its_rows_through_indexes_on_postgresql(
    pg_url: str, tmp_path: Path
) -> None:
    """On the store's own connections a batch (final states, the replicas' slot probe) is
    joined to the run rows by index lookups, never by reading the whole table into a hash
    per batch — which the planner chose when the table was small at the last ANALYZE: in a
    100,000-run burst that grew quadratic."""
    n = 1000
    async with state_connection(pg_url, tmp_path, store=True) as conn:
        assert await conn.fetchval("SHOW enable_seqscan") == "off"
        await conn.execute("ANALYZE cronstack_runs")  # empty, as at the start of a burst
        await conn.execute(rows_sql(20_000, "running", "9e15::bigint"))
        plans = {
            "finish_runs": await plan_of(
                conn, "finish_runs", [[f"r{i}" for i in range(n)], ["token"] * n, *[[None] * n] * 7]
            ),
            "slots_free": await plan_of(
                conn, "slots_free", [list(range(n)), [f"t{i}" for i in range(n)]]
            ),
        }
    for name, plan in plans.items():
        assert '"Node Type": "Seq Scan"' not in plan, (name, plan)
        assert '"Node Type": "Hash Join"' not in plan, (name, plan)
        assert '"Index Name": "cronstack_runs_' in plan, (name, plan)


async def test_every_statement_prepares_on_sqlite(tmp_path: Path) -> None:
    """Each SQLite statement compiles (EXPLAIN with every parameter bound to NULL)."""
    ds = create_datasource("state", "sqlite:///state.db", base_dir=tmp_path)
    await ds.open()
    try:
        await migrate(ds)
        assert isinstance(ds, SqliteDataSource)
        for name, text in statements(SQLITE).items():
            count = max((int(n) for n in re.findall(r"\?(\d+)", text)), default=0)
            try:
                await ds.conn.execute_fetchall("EXPLAIN " + text, [None] * count)
            except Exception as exc:  # pragma: no cover
                pytest.fail(f"{name}: {exc}")
    finally:
        await ds.close()
