"""Dead-man's switch: alert when a task has not succeeded in its window; heartbeat pings out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from daemon.core.runs import SUCCEEDED, Outcome
from daemon.core.secrets import mask
from daemon.engine.runner import run_alert

if TYPE_CHECKING:
    from daemon.core.abc import Clock
    from daemon.engine.compiler import CompiledTask
    from daemon.ops.metrics import Metrics
    from daemon.resources.bundle import Resources

log = structlog.get_logger("cronstack.deadman")

# The switch looks at most this often: an alert arrives within this much of the deadline.
MAX_CHECK_INTERVAL = 60.0
MIN_CHECK_INTERVAL = 1.0
HEARTBEAT_INTERVAL = 60.0
HEARTBEAT_TIMEOUT = 10.0

AlertFn = Callable[["CompiledTask", dict[str, Any]], Awaitable[None]]


class DeadMansSwitch:
    """Watches `expect_success_within` per task, on the scheduler's clock.

    Each task's window starts at its last success (from the state store at start, then from
    outcomes as they are recorded — it is an OutcomeListener) or, never having succeeded, when
    the daemon started: a fresh install does not alert at once. When the window passes with no
    success, the task's `on_failure` stack runs with `error` bound (type `DeadMansSwitch`), once
    per window: it alerts again only after another full window without success.
    """

    def __init__(
        self,
        tasks: Callable[[], list[CompiledTask]],
        resources: Callable[[], Resources | None],
        clock: Clock,
        *,
        last_success: Mapping[str, int] | None = None,
        metrics: Metrics | None = None,
        alert: AlertFn | None = None,
    ) -> None:
        self._tasks = tasks
        self._resources = resources
        self.clock = clock
        self.metrics = metrics
        self._alert_fn = alert or self._run_on_failure
        self.started_ms = self._now_ms()
        self.last_success: dict[str, int] = dict(last_success or {})
        self.alerted_at: dict[str, int] = {}
        self.alerts = 0
        self._wake = asyncio.Event()

    def _now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    def observe(self, outcome: Outcome) -> None:
        """OutcomeListener: a success restarts the task's window."""
        if outcome.status == SUCCEEDED and outcome.final:
            at = outcome.finished_at or self._now_ms()
            if at > self.last_success.get(outcome.task, 0):
                self.last_success[outcome.task] = at
            self.alerted_at.pop(outcome.task, None)

    def due(self, task: CompiledTask, now_ms: int) -> bool:
        window = task.expect_success_within
        if not window:
            return False
        since = max(
            self.last_success.get(task.name, 0),
            self.alerted_at.get(task.name, 0),
            self.started_ms,
        )
        return now_ms - since > window * 1000

    async def check(self) -> list[str]:
        """Alert for every task past its window now; returns their names."""
        now = self._now_ms()
        fired = []
        for task in self._tasks():
            if task.status != "active" or not self.due(task, now):
                continue
            self.alerted_at[task.name] = now
            last = self.last_success.get(task.name)
            window = task.expect_success_within or 0
            error = {
                "type": "DeadMansSwitch",
                "message": (
                    f'task "{task.name}" has not succeeded within {_span(window)}'
                    + (
                        f" (last success {_span((now - last) / 1000)} ago)"
                        if last
                        else " (no success recorded since the daemon started)"
                    )
                ),
                "step": None,
                "last_success": last,
            }
            log.error("deadman_alert", task=task.name, message=error["message"])
            self.alerts += 1
            if self.metrics is not None:
                self.metrics.deadman.labels(task.name).inc()
            fired.append(task.name)
            try:
                await self._alert_fn(task, error)
            except Exception:
                log.exception("deadman_alert_failed", task=task.name)
        return fired

    def interval(self) -> float:
        windows = [t.expect_success_within for t in self._tasks() if t.expect_success_within]
        if not windows:
            return MAX_CHECK_INTERVAL
        return max(MIN_CHECK_INTERVAL, min(MAX_CHECK_INTERVAL, min(windows) / 10))

    async def serve(self) -> None:
        """Check forever on the injected clock (tests advance it)."""
        while True:
            await self.clock.sleep(self.interval())
            await self.check()

    async def _run_on_failure(self, task: CompiledTask, error: dict[str, Any]) -> None:
        """The alert: the task's `on_failure` stack with `error` bound, as after a failed run."""
        resources = self._resources()
        if not task.on_failure or resources is None:
            log.warning(
                "deadman_no_alert_stack",
                task=task.name,
                hint="give the task an on_failure stack to be alerted",
            )
            return
        await run_alert(task, resources, error)


def _span(seconds: float) -> str:
    seconds = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


class Heartbeat:
    """Pings `[daemon] heartbeat_url` every interval (healthchecks.io style): when the pings stop,
    the monitor on the other end notices that the daemon (or its loop) died."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        interval: float = HEARTBEAT_INTERVAL,
        healthy: Callable[[], bool] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.url = url
        self.clock = clock
        self.interval = interval
        self.healthy = healthy or (lambda: True)
        self.metrics = metrics
        self.sent = 0
        self.failed = 0
        self._session: aiohttp.ClientSession | None = None

    async def ping(self) -> bool:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=HEARTBEAT_TIMEOUT)
            )
        started = time.monotonic()
        try:
            async with self._session.get(self.url) as resp:
                await resp.read()
                ok = resp.status < 400
                problem = f"HTTP {resp.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            ok, problem = False, f"{type(exc).__name__}: {exc}"
        if self.metrics is not None:
            self.metrics.heartbeats.labels("ok" if ok else "failed").inc()
        if ok:
            self.sent += 1
        else:
            self.failed += 1
            log.warning(
                "heartbeat_failed",
                url=mask(self.url),
                error=mask(problem),
                took_s=round(time.monotonic() - started, 3),
            )
        return ok

    async def serve(self) -> None:
        """Ping at once, then every interval, while the daemon reports itself healthy."""
        while True:
            if self.healthy():
                await self.ping()
            await self.clock.sleep(self.interval)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


__all__ = ["DeadMansSwitch", "Heartbeat"]
