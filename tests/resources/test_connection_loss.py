"""A PostgreSQL connection cut mid-query (fault proxy): the error says the connection was lost."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from daemon.core.errors import DatabaseError
from daemon.engine.runner import run_stack
from daemon.resources.bundle import Resources
from daemon.resources.db import create_datasource
from daemon.resources.db.base import DataSource
from tests.steps.helpers import compile_steps
from tests.support.faultproxy import FaultProxy

LOST = 'data source "primary": the connection to the database was lost during the query ('


async def wait_active(pg_url: str, marker: str) -> None:
    """Until the server runs a statement containing `marker` (it was sent, it is executing)."""
    conn = await asyncpg.connect(pg_url)
    try:
        async with asyncio.timeout(5):
            while not await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1",
                f"%{marker}%",
            ):
                await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def proxied(pg_url: str, proxy: FaultProxy, tmp_path: Path) -> DataSource:
    ds = create_datasource("primary", proxy.url_for(pg_url), base_dir=tmp_path, max_size=2)
    await ds.open()
    return ds


CALLS: dict[str, Callable[[DataSource, str], Awaitable[Any]]] = {
    "fetch": lambda ds, sql: ds.fetch(sql, []),
    "fetch_raw": lambda ds, sql: ds.fetch_raw(sql, []),
    "fetchrow": lambda ds, sql: ds.fetchrow(sql, []),
    "execute": lambda ds, sql: ds.execute(sql, []),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
async def test_cut_mid_query_is_a_lost_connection_error(
    pg_url: str, fault_proxy: Callable[[str], Awaitable[FaultProxy]], tmp_path: Path, call: Any
) -> None:
    """Cut during `SELECT pg_sleep(…)`: DatabaseError "…was lost during the query (…)", and
    the data source works again on the next statement (the pool replaces the connection)."""
    proxy = await fault_proxy(pg_url)
    ds = await proxied(pg_url, proxy, tmp_path)
    try:
        marker = secrets.token_hex(6)
        query = asyncio.ensure_future(call(ds, f"SELECT pg_sleep(5) /* {marker} */"))
        await wait_active(pg_url, marker)
        assert proxy.cut() >= 1
        with pytest.raises(DatabaseError) as info:
            await query
        assert info.value.message.startswith(LOST), info.value.message
        assert "reset" not in info.value.message
        assert await ds.fetch("SELECT 1 AS one", []) == [{"one": 1}]
    finally:
        await ds.close()


async def test_direct_database_query_step_reports_the_lost_connection(
    pg_url: str, fault_proxy: Callable[[str], Awaitable[FaultProxy]], tmp_path: Path
) -> None:
    """Through the runner: the run fails with a DatabaseError naming the lost connection."""
    proxy = await fault_proxy(pg_url)
    ds = await proxied(pg_url, proxy, tmp_path)
    try:
        marker = secrets.token_hex(6)
        steps = compile_steps(
            [{"function": "Direct Database Query", "sql": f"SELECT pg_sleep(5) /* {marker} */"}]
        )
        resources = Resources(datasources={"primary": ds}, default_datasource="primary")
        run = asyncio.ensure_future(run_stack(steps, resources=resources))
        await wait_active(pg_url, marker)
        proxy.cut()
        result = await run
        assert result.status == "failed" and result.error is not None
        assert result.error["type"] == "DatabaseError"
        assert result.error["message"].startswith(LOST)
        assert result.error["step"] == "function_stack[0]"
    finally:
        await ds.close()
