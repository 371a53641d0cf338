"""A cancelled run (shutdown, overlap `replace`) is recorded with its trace so far."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.web.admin_harness import Harness, harness


class Hanging:
    """A loopback endpoint that never answers; `entered` is set by each request that arrives."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.hits = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.entered.set()
        await asyncio.Event().wait()  # until the client goes away
        raise AssertionError("unreachable")


@pytest.fixture
async def hanging() -> AsyncIterator[Hanging]:
    endpoint = Hanging()
    app = web.Application()
    app.router.add_get("/", endpoint.handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    endpoint.url = f"http://127.0.0.1:{port}/"
    yield endpoint
    await runner.cleanup()


def task(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "long",
        "function_stack": [
            {"function": "Create Variable", "name": "greeting", "value": "hello"},
            {"function": "External API Request", "url": url, "timeout": "300s"},
            {"function": "Create Variable", "name": "never", "value": 1},
        ],
        **extra,
    }


ALLOW_LOOPBACK = '[http]\nallow_hosts = ["127.0.0.0/8"]\n'


async def recorded(h: Harness, run_id: str) -> dict[str, Any]:
    run = await h.wait_run(run_id)
    assert run["status"] == "cancelled", run
    return run


def assert_trace_to_the_cancelled_step(run: dict[str, Any]) -> None:
    assert [(s["path"], s["function"], s["status"]) for s in run["steps"]] == [
        ("function_stack[0]", "create_variable", "succeeded"),
        ("function_stack[1]", "external_api_request", "cancelled"),
    ]
    assert run["error"]["type"] == "CancelledError"
    assert run["error"]["step"] == "function_stack[1]"
    assert run["started_at"] is not None and run["finished_at"] is not None


@pytest.mark.parametrize("store", ["postgresql", "sqlite"])
async def test_shutdown_keeps_the_trace_of_a_cancelled_run(
    tmp_path: Path, hanging: Hanging, store: str, request: pytest.FixtureRequest
) -> None:
    """Cancelled by shutdown in its second step: the row is `cancelled` with reason `shutdown`
    and the trace holds the first step (succeeded) and the second (cancelled), not the third."""
    url = request.getfixturevalue("pg_url") if store == "postgresql" else None
    async with harness(
        tmp_path, tasks=[task(hanging.url)], state_url=url, extra=ALLOW_LOOPBACK
    ) as h:
        run_id = h.scheduler.trigger("long")
        await asyncio.wait_for(hanging.entered.wait(), 5)
        assert await h.scheduler.cancel_all("shutdown") == 1
        run = await recorded(h, run_id)
        assert run["reason"] == "shutdown"
        assert_trace_to_the_cancelled_step(run)


async def test_overlap_replace_keeps_the_trace_of_the_replaced_run(
    tmp_path: Path, hanging: Hanging
) -> None:
    """overlap `replace`: the next fire cancels the running one, whose row keeps its trace."""
    spec = task(hanging.url, schedule="* * * * * *", overlap="replace")
    async with harness(tmp_path, tasks=[spec], extra=ALLOW_LOOPBACK) as h:
        await h.clock.advance(1)
        await asyncio.wait_for(hanging.entered.wait(), 5)
        hanging.entered.clear()
        first = await wait_for_runs(h, 1)
        await h.clock.advance(1)
        await asyncio.wait_for(hanging.entered.wait(), 5)
        run = await recorded(h, first[0]["run_id"])
        assert "replace" in run["reason"]
        assert_trace_to_the_cancelled_step(run)
        await h.scheduler.cancel_all()  # the replacing run hangs too


async def wait_for_runs(h: Harness, n: int) -> list[dict[str, Any]]:
    """Until the store lists `n` runs (the running row is written at the claim)."""
    async with asyncio.timeout(5):
        while True:
            status, body = await h.get("/api/runs?task=long")
            if status == 200 and len(body["runs"]) >= n:
                return list(body["runs"])
            await asyncio.sleep(0.02)
