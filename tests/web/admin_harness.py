"""A real admin listener over a real scheduler (fake clock) and SQLite state store, for tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from daemon.bootstrap import Loaded, close_resources, load, store_from_config
from daemon.ops.metrics import Metrics, ObservingRecorder
from daemon.scheduling.scheduler import Scheduler
from daemon.state.store import StateStore
from daemon.testing import FakeClock
from daemon.web.server import AdminContext, AdminServer

TOKEN = "s3cret-admin-token-for-tests"

# Two small tasks: one that succeeds with a two-step trace, one that fails.
TASKS: list[dict[str, Any]] = [
    {
        "name": "hello",
        "description": "says hello",
        "schedule": {"cron_expression": "*/10 * * * * *", "timezone": "Europe/Paris"},
        "function_stack": [
            {"function": "Create Variable", "name": "greeting", "value": "hello"},
            {
                "function": "Math",
                "operation": "add",
                "value": 1,
                "operand": 2,
                "return_variable": "three",
            },
        ],
    },
    {
        "name": "broken",
        "schedule": "0 3 * * *",
        "function_stack": [{"function": "Throw Error", "message": "boom"}],
    },
]


def write_config(
    tmp: Path,
    tasks: list[dict[str, Any]] | None = None,
    extra: str = "",
    state_url: str | None = None,
) -> Path:
    """A config whose state store is SQLite in `tmp`, or `state_url` (PostgreSQL)."""
    (tmp / "tasks").mkdir(exist_ok=True)
    for i, task in enumerate(tasks if tasks is not None else TASKS):
        (tmp / "tasks" / f"t{i}.json").write_text(json.dumps(task))
    path = tmp / "config.toml"
    url = state_url or f"sqlite:///{tmp}/state.db"
    path.write_text(
        '[daemon]\ntasks = ["tasks/*.json"]\nstate = "primary"\n'
        f'[datasources.primary]\nurl = "{url}"\n{extra}'
    )
    return path


@dataclass
class Harness:
    loaded: Loaded
    store: StateStore
    scheduler: Scheduler
    clock: FakeClock
    metrics: Metrics
    server: AdminServer
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.server.base_url

    async def get(self, path: str, token: str | None = TOKEN) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(self.url + path, headers=headers) as resp:
            return resp.status, await _body(resp)

    async def post(self, path: str, token: str | None = TOKEN) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.post(self.url + path, headers=headers) as resp:
            return resp.status, await _body(resp)

    async def wait_run(self, run_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """Poll /api/runs/{id} until the run is final (the store writes behind, ~0.2 s)."""
        async with asyncio.timeout(timeout):
            while True:
                status, body = await self.get(f"/api/runs/{run_id}")
                if status == 200 and body["status"] != "running":
                    return dict(body)
                await asyncio.sleep(0.05)


async def _body(resp: aiohttp.ClientResponse) -> Any:
    if resp.content_type == "application/json":
        return await resp.json()
    return await resp.text()


@asynccontextmanager
async def harness(
    tmp: Path,
    *,
    token: str | None = TOKEN,
    tasks: list[dict[str, Any]] | None = None,
    state_url: str | None = None,
    extra: str = "",
    config: Path | None = None,
) -> AsyncIterator[Harness]:
    """`config` (written by the caller) replaces the one made from `tasks`, `extra` and
    `state_url`."""
    loaded = await load(config or write_config(tmp, tasks, extra, state_url=state_url), {})
    assert not loaded.errors, loaded.errors
    store = store_from_config(loaded.config)
    assert store is not None
    await store.open(exclusive=True)
    store.start()
    clock = FakeClock()
    metrics = Metrics()
    scheduler = Scheduler(
        loaded.tasks,
        loaded.resources,
        clock=clock,
        recorder=ObservingRecorder(store, [metrics]),
        claims=store,
    )
    metrics.running = lambda: scheduler.running_count
    metrics.datasources = lambda: iter([("(state)", store.ds)])
    serve = asyncio.create_task(scheduler.serve())
    await scheduler.armed.wait()
    server = AdminServer(AdminContext(scheduler, store, metrics), listen="127.0.0.1:0", token=token)
    await server.start()
    session = aiohttp.ClientSession()
    try:
        yield Harness(loaded, store, scheduler, clock, metrics, server, session)
    finally:
        await session.close()
        await server.close()
        scheduler.stop_firing()
        await serve
        await scheduler.drain(2)
        await scheduler.cancel_all()
        await store.close(timeout=2)
        await close_resources(loaded.resources)
