"""Prometheus metrics: the exposition parses, counters move with runs, HTTP timing by host."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from daemon.ops.metrics import Metrics, missed_reason
from daemon.resources.bundle import Resources
from daemon.resources.http.client import HttpClient
from tests.web.admin_harness import Harness, harness


async def _scrape(h: Harness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = await h.get("/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _get(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_parse_and_counters_move_after_runs(tmp_path: Path) -> None:
    """Runs by task and status, step errors by function, fire lag and missed counters move."""
    async with harness(tmp_path) as h:
        before = await _scrape(h)
        assert _get(before, "cronstack_runs_in_flight") == 0
        assert _get(before, "cronstack_reloads_total", result="ok") == 0
        for task in ("hello", "hello", "broken"):
            _, body = await h.post(f"/api/tasks/{task}/run")
            await h.wait_run(body["run_id"])
        await h.clock.advance(10)  # one scheduled fire of "hello"
        await h.post("/api/tasks/hello/pause")
        await h.clock.advance(10)  # one missed (paused)
        after = await _scrape(h)
        assert _get(after, "cronstack_runs_total", task="hello", status="succeeded") >= 3
        assert _get(after, "cronstack_runs_total", task="broken", status="failed") == 1
        assert _get(after, "cronstack_step_errors_total", function="throw_error") == 1
        assert _get(after, "cronstack_fires_missed_total", task="hello", reason="paused") == 1
        assert _get(after, "cronstack_fire_lag_seconds_count") >= 1
        assert _get(after, "cronstack_run_duration_seconds_count", task="hello") >= 3
        assert _get(after, "cronstack_db_pool_connections", datasource="(state)", state="max") >= 1
        assert any(k[0] == "cronstack_admin_request_duration_seconds_count" for k in after)


async def test_http_requests_are_timed_by_host() -> None:
    """External API requests through an instrumented client land in the histogram by host."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    metrics = Metrics()
    client = HttpClient(block_private_networks=False)
    metrics.instrument(Resources(http=client))
    try:
        await client.request("GET", f"http://127.0.0.1:{port}/")
        await client.request("GET", f"http://127.0.0.1:{port}/missing")
    finally:
        await client.close()
        await runner.cleanup()
    reg = metrics.registry
    get = reg.get_sample_value
    name = "cronstack_http_request_duration_seconds_count"
    assert get(name, {"host": "127.0.0.1", "outcome": "200"}) == 1
    assert get(name, {"host": "127.0.0.1", "outcome": "404"}) == 1


def test_reloads_and_missed_reasons() -> None:
    """Reload results are counted; free-text missed reasons map to a bounded label set."""
    metrics = Metrics()
    metrics.observe_reload(True)
    metrics.observe_reload(False)
    metrics.observe_reload(False)
    get = metrics.registry.get_sample_value
    assert get("cronstack_reloads_total", {"result": "ok"}) == 1
    assert get("cronstack_reloads_total", {"result": "rejected"}) == 2
    assert missed_reason("paused") == "paused"
    assert missed_reason("fire was 90.000s late (misfire_grace 60s)") == "late"
    assert missed_reason("the daemon was not running at this time") == "daemon_down"
    assert missed_reason("something new") == "other"
