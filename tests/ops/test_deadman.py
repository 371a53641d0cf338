"""Dead-man's switch and heartbeat on the injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from daemon.bootstrap import Loaded, close_resources, load
from daemon.core.runs import Outcome
from daemon.ops.deadman import DeadMansSwitch, Heartbeat
from daemon.ops.metrics import Metrics
from daemon.testing import FakeClock
from tests.web.admin_harness import write_config

WATCHED = {
    "name": "nightly",
    "schedule": "0 2 * * *",
    "expect_success_within": "26h",
    "function_stack": [{"function": "Create Variable", "name": "x", "value": 1}],
    "on_failure": [
        {
            "function": "Data Caching (Redis)",
            "operation": "increment",
            "key": "alerts:{{task.name}}",
        },
        {
            "function": "Data Caching (Redis)",
            "operation": "set",
            "key": "last_alert",
            "value": "{{error.type}}: {{error.message}}",
        },
    ],
}
UNWATCHED = {"name": "free", "schedule": "0 2 * * *", "function_stack": []}
HOUR = 3600.0


@pytest.fixture
async def loaded(tmp_path: Path) -> AsyncIterator[Loaded]:
    result = await load(write_config(tmp_path, [WATCHED, UNWATCHED]), {})
    assert not result.errors, result.errors
    yield result
    await close_resources(result.resources)


def _success(clock: FakeClock, task: str = "nightly") -> Outcome:
    ms = int(clock.now().timestamp() * 1000)
    return Outcome(task, "r", "s", "succeeded", "schedule", 1, ms, ms, ms)


async def test_alert_runs_on_failure_once_per_window(loaded: Loaded) -> None:
    """No success for 26h → the on_failure stack runs with error bound; then once per window."""
    clock = FakeClock()
    metrics = Metrics()
    switch = DeadMansSwitch(lambda: loaded.tasks, lambda: loaded.resources, clock, metrics=metrics)
    serve = asyncio.create_task(switch.serve())
    cache = loaded.resources.cache
    assert cache is not None
    try:
        await clock.advance(25 * HOUR)
        assert await cache.get("alerts:nightly") is None
        await clock.advance(1.5 * HOUR)  # past 26h since start
        assert await cache.get("alerts:nightly") == 1
        message = await cache.get("last_alert")
        assert message.startswith('DeadMansSwitch: task "nightly" has not succeeded within 1d2h')
        await clock.advance(10 * HOUR)  # same window: no repeat
        assert await cache.get("alerts:nightly") == 1
        await clock.advance(17 * HOUR)  # a whole further window without success
        assert await cache.get("alerts:nightly") == 2
        assert await cache.get("alerts:free") is None
        assert (
            metrics.registry.get_sample_value("cronstack_deadman_alerts_total", {"task": "nightly"})
            == 2
        )
    finally:
        serve.cancel()


async def test_a_success_restarts_the_window(loaded: Loaded) -> None:
    """Successes inside the window keep the switch quiet; it fires 26h after the last one."""
    clock = FakeClock()
    switch = DeadMansSwitch(lambda: loaded.tasks, lambda: loaded.resources, clock)
    for _ in range(3):
        await clock.advance(20 * HOUR)
        switch.observe(_success(clock))
        assert await switch.check() == []
    await clock.advance(25 * HOUR)
    assert await switch.check() == []
    await clock.advance(1.01 * HOUR)
    assert await switch.check() == ["nightly"]


async def test_last_success_from_history_counts(loaded: Loaded) -> None:
    """A success recorded before the daemon started (from the store) starts the window."""
    clock = FakeClock()
    long_ago = int(clock.now().timestamp() * 1000) - int(30 * HOUR * 1000)
    switch = DeadMansSwitch(
        lambda: loaded.tasks, lambda: loaded.resources, clock, last_success={"nightly": long_ago}
    )
    assert await switch.check() == []  # the window counts from start when that is later
    await clock.advance(26.5 * HOUR)
    assert await switch.check() == ["nightly"]


async def test_heartbeat_pings_every_interval() -> None:
    """The heartbeat URL is hit at start and every interval on the clock; failures are counted."""
    hits: list[str] = []
    status = {"code": 200}

    async def ping(request: web.Request) -> web.Response:
        hits.append(request.method)
        return web.Response(status=status["code"])

    app = web.Application()
    app.router.add_get("/ping/abc", ping)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    clock = FakeClock()
    beat = Heartbeat(f"http://127.0.0.1:{port}/ping/abc", clock, interval=60)
    serve = asyncio.create_task(beat.serve())
    try:
        async with asyncio.timeout(5):
            while beat.sent < 1:
                await asyncio.sleep(0.01)
        for expected in (2, 3):
            await clock.advance(60)
            async with asyncio.timeout(5):
                while beat.sent < expected:
                    await asyncio.sleep(0.01)
        status["code"] = 500
        await clock.advance(60)
        async with asyncio.timeout(5):
            while beat.failed < 1:
                await asyncio.sleep(0.01)
        assert hits == ["GET"] * 4 and beat.sent == 3
    finally:
        serve.cancel()
        await beat.close()
        await runner.cleanup()
