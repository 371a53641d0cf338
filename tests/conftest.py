"""Shared fixtures: a throwaway PostgreSQL database per test module, a SQLite file per test."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import structlog

from tests.support.faultproxy import FaultProxy, address_of

T = TypeVar("T")

# A server where the test user may CREATE DATABASE; override for CI with CRONSTACK_TEST_PG.
PG_ADMIN_URL = os.environ.get("CRONSTACK_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a private loop in another thread.

    Sync fixtures use this so they never touch the event loop pytest-asyncio gives each test.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def fresh_pg_database(prefix: str = "cronstack_test") -> Iterator[str]:
    """Create an empty PostgreSQL database, yield its URL, drop it (skip if no server)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        run_sync(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL not available at {PG_ADMIN_URL}: {exc}")
    try:
        yield _with_database(PG_ADMIN_URL, name)
    finally:
        run_sync(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(autouse=True)
def _structlog_as_found() -> Iterator[None]:
    """Whatever a test configured (a harness's bootstrap, the log tests) does not outlive it.

    A filtering logger left at "info" by one test would hide the debug lines another test
    captures with `structlog.testing.capture_logs`, so results would depend on test order.
    """
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped when the test module ends."""
    yield from fresh_pg_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file in the test's tmp_path (absolute form, `sqlite:////...`)."""
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on PostgreSQL and once on SQLite."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return str(request.getfixturevalue("sqlite_url"))


CliRun = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRun:
    """Run `cronstack ARGS...` in-process; returns (exit code, stdout, stderr)."""
    from daemon.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
async def fault_proxy() -> AsyncIterator[Callable[[str], Awaitable[FaultProxy]]]:
    """Start FaultProxies on the test's loop in front of a URL's server; closed at the end.

    `proxy = await fault_proxy(pg_url)`, then connect to `proxy.url_for(pg_url)`."""
    started: list[FaultProxy] = []

    async def start(url: str) -> FaultProxy:
        proxy = await FaultProxy(address_of(url)).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in reversed(started):
        await proxy.close()
