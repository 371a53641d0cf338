"""Log shipping to a loopback collector: batches, bounded loss in an outage, no fire-lag cost."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson
import pytest
import structlog
from aiohttp import web

from daemon.core.runs import RunResult
from daemon.engine.compiler import CompiledTask
from daemon.ops import logs
from daemon.ops.logship import LogShipper
from daemon.resources.bundle import Resources
from daemon.scheduling.scheduler import Scheduler
from tests.scheduling.test_scheduler import make_task


@dataclass
class Collector:
    """A loopback log collector; `down` makes it answer 503 (an outage)."""

    url: str = ""
    down: bool = False
    batches: list[list[bytes]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)

    @property
    def lines(self) -> list[bytes]:
        return [line for batch in self.batches for line in batch]

    async def handle(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503)
        body = await request.read()
        self.content_types.append(request.content_type)
        self.batches.append([line for line in body.split(b"\n") if line])
        return web.Response(status=204)


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    c = Collector()
    app = web.Application()
    app.router.add_post("/ingest", c.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    c.url = f"http://127.0.0.1:{port}/ingest"
    yield c
    await runner.cleanup()


async def _until(predicate: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_batches_arrive_by_size_and_by_time(collector: Collector) -> None:
    """Full batches go at once; a partial batch goes after flush_interval; order is kept."""
    shipper = LogShipper(collector.url, batch_size=10, flush_interval=0.2, queue_size=100)
    shipper.start()
    try:
        for i in range(25):
            shipper.put(orjson.dumps({"event": "e", "i": i}))
        await _until(lambda: len(collector.lines) >= 20, 1.0)
        assert [len(b) for b in collector.batches[:2]] == [10, 10]
        await _until(lambda: len(collector.lines) == 25)
        assert [orjson.loads(x)["i"] for x in collector.lines] == list(range(25))
        assert collector.content_types[0] == "application/x-ndjson"
    finally:
        await shipper.close()
    assert shipper.stats() == {"shipped": 25, "dropped": 0, "queued": 0}


async def test_outage_loses_at_most_the_queue_and_counts_drops(collector: Collector) -> None:
    """While the collector is down the queue keeps the newest lines; drops are counted exactly."""

    async def quick(_delay: float) -> None:
        await asyncio.sleep(0.01)

    shipper = LogShipper(
        collector.url, batch_size=10, flush_interval=0.05, queue_size=50, sleep=quick
    )
    shipper.start()
    try:
        collector.down = True
        for i in range(500):
            shipper.put(orjson.dumps({"i": i}))
            if i % 50 == 0:
                await asyncio.sleep(0)
        assert shipper.queued <= 50 + 10  # the queue plus the one batch being retried
        collector.down = False
        await _until(lambda: shipper.queued == 0)
    finally:
        await shipper.close()
    got = [orjson.loads(x)["i"] for x in collector.lines]
    assert len(got) + shipper.dropped == 500  # every line shipped or counted
    assert shipper.dropped <= 500 - 50
    assert len(got) >= 50 and got[-1] == 499  # the newest lines survive
    assert got == sorted(got)


async def test_close_flushes_what_is_queued(collector: Collector) -> None:
    """On shutdown the queue is shipped before exit."""
    shipper = LogShipper(collector.url, batch_size=1000, flush_interval=60, queue_size=5000)
    shipper.start()
    for i in range(300):
        shipper.put(orjson.dumps({"i": i}))
    await shipper.close(timeout=5)
    assert len(collector.lines) == 300 and shipper.dropped == 0


def test_loki_and_elastic_bodies() -> None:
    """Loki gets a push document with one stream; Elastic gets _bulk create actions."""
    lines = [b'{"event":"a"}', b'{"event":"b"}']
    body, ctype = LogShipper("http://x", fmt="loki").body(lines)
    doc = orjson.loads(body)
    assert ctype == "application/json"
    assert [v[1] for v in doc["streams"][0]["values"]] == ['{"event":"a"}', '{"event":"b"}']
    assert doc["streams"][0]["stream"] == {"service": "cronstack"}
    body, ctype = LogShipper("http://x", fmt="elastic").body(lines)
    assert body.split(b"\n")[:4] == [b'{"create":{}}', lines[0], b'{"create":{}}', lines[1]]


# --- fire lag with shipping on, to a collector that is down -----------------------------------


class LagRun:
    """A run function that records how late each scheduled fire started, and logs a line."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.log = structlog.get_logger("lagtest")

    async def __call__(self, task: CompiledTask, resources: Resources, **kw: object) -> RunResult:
        now = time.time()
        scheduled = int(kw["scheduled_at"])  # type: ignore[call-overload]
        self.lags.append(now - scheduled / 1000)
        for i in range(5):  # a chatty task: the shipper sees plenty
            self.log.info("step_done", task=task.name, i=i, payload="x" * 200)
        ms = int(now * 1000)
        return RunResult(
            task.name, str(kw["run_id"]), str(kw["slot_id"]), "succeeded", "schedule", 1,
            scheduled, ms, ms,
        )  # fmt: skip


async def _lags(seconds: float) -> list[float]:
    run = LagRun()
    tasks = [make_task(f"t{i}") for i in range(50)]
    scheduler = Scheduler(tasks, Resources(), run=run)
    serve = asyncio.create_task(scheduler.serve())
    await asyncio.sleep(seconds)
    scheduler.stop_firing()
    await serve
    await scheduler.drain(2)
    return sorted(run.lags)


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))]


async def test_fire_lag_is_unaffected_by_shipping_to_a_dead_collector(
    collector: Collector,
) -> None:
    """Measured: p99 fire lag with every log line shipped to a failing collector ≈ without."""
    collector.down = True
    sink = io.StringIO()
    shipper = LogShipper(collector.url, batch_size=100, flush_interval=0.05, queue_size=1000)
    try:
        logs.configure(level="info", fmt="json", stream=sink)
        baseline = await _lags(2.2)
        shipper.start()
        logs.configure(level="info", fmt="json", stream=sink, ship=shipper.processor)
        shipped = await _lags(2.2)
    finally:
        structlog.reset_defaults()
        await shipper.close(timeout=0.5)
    assert len(baseline) >= 50 and len(shipped) >= 50
    assert shipper.dropped > 0  # the collector really was down and the queue overflowed
    p99_base, p99_ship = _p99(baseline), _p99(shipped)
    print(f"fire lag p99: baseline {p99_base * 1000:.2f} ms, shipping {p99_ship * 1000:.2f} ms")
    assert p99_ship < p99_base + 0.025
