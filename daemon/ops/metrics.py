"""Prometheus metrics: run outcomes (a recorder wrapper), service events, scrape-time gauges."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from daemon.core.abc import OutcomeListener, RunRecorder
from daemon.core.runs import MISSED, SKIPPED, SUCCEEDED, Outcome

if TYPE_CHECKING:
    from daemon.resources.bundle import Resources
    from daemon.resources.db.base import DataSource

log = structlog.get_logger("cronstack.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Runs last from milliseconds (cache warming) to an hour (monthly reports).
RUN_BUCKETS = (0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 60, 300, 900, 3600)
# Fire lag is interesting at the millisecond scale; seconds mean something is wrong.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
HTTP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# How often the event-loop monitor wakes; its oversleep is the loop lag.
LOOP_LAG_INTERVAL = 0.5


class ObservingRecorder:
    """A RunRecorder that shows each outcome to listeners, then hands it to the real recorder.

    Listeners run synchronously and must be cheap; one that raises is logged and skipped, so
    a metrics bug can never lose a history row.
    """

    def __init__(self, inner: RunRecorder, listeners: Sequence[OutcomeListener]) -> None:
        self.inner = inner
        self.listeners = list(listeners)

    async def record(self, outcome: Outcome) -> None:
        for listener in self.listeners:
            try:
                listener.observe(outcome)
            except Exception:
                log.exception("outcome_listener_failed", listener=type(listener).__name__)
        await self.inner.record(outcome)


def missed_reason(reason: str | None) -> str:
    """A bounded label for a free-text missed reason (labels must not be unbounded)."""
    text = (reason or "").lower()
    if text == "paused":
        return "paused"
    if "not running" in text:
        return "daemon_down"
    if "late" in text or "superseded" in text:
        return "late"
    if "state store" in text:
        return "store_unavailable"
    if "stopping" in text or "removed" in text:
        return "shutdown_or_reload"
    return "other"


class _ScrapeCollector(Collector):
    """Gauges read at scrape time from live objects: nothing to keep in sync."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        m = self.metrics
        inflight = GaugeMetricFamily("cronstack_runs_in_flight", "Runs executing right now")
        inflight.add_metric([], float(m.running() if m.running else 0))
        yield inflight
        size = GaugeMetricFamily(
            "cronstack_db_pool_connections",
            "Database connections by data source and state (in_use, idle, max)",
            labels=["datasource", "state"],
        )
        for name, ds in m.datasources() if m.datasources else []:
            for state, value in pool_usage(ds).items():
                size.add_metric([name, state], float(value))
        yield size
        shipped = GaugeMetricFamily(
            "cronstack_log_ship_lines", "Log lines shipped, dropped and queued", labels=["state"]
        )
        if m.shipper_stats is not None:
            for state, value in m.shipper_stats().items():
                shipped.add_metric([state], float(value))
        yield shipped
        yield from m.outcomes.families()


class _Histogram:
    """Bucket counts and a sum in plain Python: an observation is a bisection and two adds
    (prometheus_client takes a lock per bucket value; at 10,000 runs a second that showed)."""

    __slots__ = ("buckets", "count", "counts", "sum")

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.count += 1
        self.sum += value

    def exposition(self) -> list[tuple[str, float]]:
        out, total = [], 0
        for bound, n in zip(
            [*map(floatToGoString, self.buckets), "+Inf"], self.counts, strict=True
        ):
            total += n
            out.append((bound, float(total)))
        return out


class _Outcomes:
    """Counts per outcome, kept as plain numbers and turned into metric families at scrape time:
    runs by task and status, run durations by task, and the fire lag."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], int] = {}
        self.durations: dict[str, _Histogram] = {}
        self.lag = _Histogram(LAG_BUCKETS)

    def families(self) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "cronstack_runs", "Finished runs and fires that did not run", labels=["task", "status"]
        )
        for (task, status), n in list(self.runs.items()):
            runs.add_metric([task, status], float(n))
        yield runs
        durations = HistogramMetricFamily(
            "cronstack_run_duration_seconds", "Run duration", labels=["task"]
        )
        for task, h in list(self.durations.items()):
            durations.add_metric([task], h.exposition(), h.sum)
        yield durations
        lag = HistogramMetricFamily(
            "cronstack_fire_lag_seconds",
            "Scheduled fires: start of the run minus its slot (includes jitter)",
        )
        lag.add_metric([], self.lag.exposition(), self.lag.sum)
        yield lag


def pool_usage(ds: DataSource) -> dict[str, int]:
    """In-use, idle and max connections of a data source (SQLite: one connection)."""
    pool = getattr(ds, "_pool", None)
    if pool is not None:
        total = int(pool.get_size())
        idle = int(pool.get_idle_size())
        return {"in_use": total - idle, "idle": idle, "max": int(pool.get_max_size())}
    if getattr(ds, "_conn", None) is not None:
        return {"in_use": 0, "idle": 1, "max": 1}
    return {"in_use": 0, "idle": 0, "max": 0}


class Metrics:
    """The daemon's instruments, in a registry of their own (tests make one each)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.outcomes = _Outcomes()
        self.skipped = Counter(
            "cronstack_fires_skipped", "Fires skipped (overlap)", ["task"], registry=r
        )
        self.missed = Counter(
            "cronstack_fires_missed", "Fires missed", ["task", "reason"], registry=r
        )
        self.step_errors = Counter(
            "cronstack_step_errors", "Failed steps by function", ["function"], registry=r
        )
        self.reloads = Counter("cronstack_reloads", "Reloads", ["result"], registry=r)
        self.loop_lag = Histogram(
            "cronstack_event_loop_lag_seconds",
            "How late the event loop woke a timer (a blocked loop delays every fire)",
            buckets=LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.http = Histogram(
            "cronstack_http_request_duration_seconds",
            "External API requests by host and outcome (status code or error)",
            ["host", "outcome"], buckets=HTTP_BUCKETS, registry=r,
        )  # fmt: skip
        self.admin = Histogram(
            "cronstack_admin_request_duration_seconds",
            "Admin listener requests by route",
            ["method", "route", "status"], buckets=LAG_BUCKETS, registry=r,
        )  # fmt: skip
        self.deadman = Counter(
            "cronstack_deadman_alerts", "Dead-man's switch alerts", ["task"], registry=r
        )
        self.heartbeats = Counter(
            "cronstack_heartbeat_pings", "Heartbeat pings", ["result"], registry=r
        )
        # Scrape-time sources, set by the service.
        self.running: Callable[[], int] | None = None
        self.datasources: Callable[[], Iterator[tuple[str, DataSource]]] | None = None
        self.shipper_stats: Callable[[], dict[str, int]] | None = None
        r.register(_ScrapeCollector(self))
        for result in ("ok", "rejected"):
            self.reloads.labels(result)  # present from the start, at 0

    # --- outcomes -------------------------------------------------------------------------------

    def observe(self, outcome: Outcome) -> None:
        """OutcomeListener: count the outcome, its duration, lag and failed steps."""
        task = outcome.task
        status = outcome.status
        counts = self.outcomes
        key = (task, status)
        counts.runs[key] = counts.runs.get(key, 0) + 1
        if status == SKIPPED:
            self.skipped.labels(task).inc()
            return
        if status == MISSED:
            self.missed.labels(task, missed_reason(outcome.reason)).inc()
            return
        started, finished = outcome.started_at, outcome.finished_at
        if started is not None and finished is not None:
            histogram = counts.durations.get(task)
            if histogram is None:
                histogram = counts.durations[task] = _Histogram(RUN_BUCKETS)
            histogram.observe((finished - started) / 1000)
            if outcome.trigger == "schedule" and outcome.attempt == 1:
                counts.lag.observe(max(0.0, (started - outcome.scheduled_at) / 1000))
        result = outcome.result
        if result is not None and status != SUCCEEDED:
            for rec in result.trace:
                if rec.status == "failed":
                    self.step_errors.labels(rec.function).inc()

    def observe_reload(self, ok: bool) -> None:
        self.reloads.labels("ok" if ok else "rejected").inc()

    def observe_http(self, host: str, seconds: float, outcome: str) -> None:
        self.http.labels(host, outcome).observe(seconds)

    def instrument(self, resources: Resources) -> None:
        """Time the External API requests made with these resources."""
        if resources.http is not None:
            resources.http.observer = self.observe_http

    # --- exposition and the loop monitor --------------------------------------------------------

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def watch_loop(self, interval: float = LOOP_LAG_INTERVAL) -> None:
        """Measure how late the loop wakes a sleeping timer, forever."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(interval)
            self.loop_lag.observe(max(0.0, loop.time() - start - interval))


def value(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    """A sample's current value (0 if absent): for tests and the bench."""
    got = registry.get_sample_value(name, labels or {})
    return 0.0 if got is None else got


__all__ = ["CONTENT_TYPE", "Metrics", "ObservingRecorder", "missed_reason"]
