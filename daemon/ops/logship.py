"""Log shipping: log lines POSTed in batches (NDJSON, Loki or Elastic bulk) from a bounded queue."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import aiohttp
import orjson
import structlog

from daemon.core.secrets import mask

log = structlog.get_logger("cronstack.logship")

ShipFormat = Literal["ndjson", "loki", "elastic"]
MAX_BACKOFF = 30.0
POST_TIMEOUT = 10.0


def _dumps(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event, default=str)


class LogShipper:
    """Queue log events and POST them in batches, never blocking whoever logs.

    The queue holds at most `queue_size` lines; when the collector is down and it fills, the
    oldest lines go and are counted (`dropped`), so memory stays bounded and the newest lines —
    the ones explaining the outage — survive. A batch that fails is retried with exponential
    backoff (plus jitter) while new lines keep queueing behind it. `close()` flushes what is
    left within a timeout. Every line is accounted for: shipped + dropped + queued = accepted.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        queue_size: int = 10_000,
        fmt: ShipFormat = "ndjson",
        labels: dict[str, str] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.url = url
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self.queue_size = max(1, queue_size)
        self.fmt = fmt
        self.labels = labels or {"service": "cronstack"}
        self._sleep = sleep
        self._queue: deque[bytes] = deque()
        self._lock = threading.Lock()  # logging may happen off the loop (aiosqlite's thread)
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._inflight: list[bytes] = []
        self._closing = False
        self.accepted = 0
        self.shipped = 0
        self.dropped = 0
        self.batches = 0
        self.failures = 0
        self._down_since: float | None = None

    # --- the structlog side: cheap, never blocks ----------------------------------------------

    def processor(self, _logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        """structlog processor (after masking, before rendering): queue a copy of the event."""
        self.put(_dumps(event_dict))
        return event_dict

    def put(self, line: bytes) -> None:
        with self._lock:
            self.accepted += 1
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(line)
            full = len(self._queue) >= self.batch_size
        if full and self._wake is not None and self._loop is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                self._wake.set()
            else:
                self._loop.call_soon_threadsafe(self._wake.set)

    @property
    def queued(self) -> int:
        return len(self._queue) + len(self._inflight)

    def stats(self) -> dict[str, int]:
        return {"shipped": self.shipped, "dropped": self.dropped, "queued": self.queued}

    # --- the loop side --------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="log-ship")

    def _take(self) -> list[bytes]:
        with self._lock:
            n = min(self.batch_size, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def body(self, lines: list[bytes]) -> tuple[bytes, str]:
        """The request body and content type for a batch, in the configured format."""
        if self.fmt == "loki":
            now = time.time_ns()
            values = [[str(now + i), line.decode()] for i, line in enumerate(lines)]
            doc = {"streams": [{"stream": self.labels, "values": values}]}
            return orjson.dumps(doc), "application/json"
        if self.fmt == "elastic":
            action = b'{"create":{}}\n'
            return b"".join(action + line + b"\n" for line in lines), "application/x-ndjson"
        return b"\n".join(lines) + b"\n", "application/x-ndjson"

    async def _post(self, lines: list[bytes]) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT),
                headers={"User-Agent": "cronstack-logship"},
            )
        data, content_type = self.body(lines)
        async with self._session.post(
            self.url, data=data, headers={"Content-Type": content_type}
        ) as resp:
            await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"collector answered HTTP {resp.status}")

    async def _ship(self, lines: list[bytes]) -> bool:
        try:
            await self._post(lines)
        except Exception as exc:
            self.failures += 1
            if self._down_since is None:
                self._down_since = time.monotonic()
                # Once per outage: this line is queued too and shipped after recovery.
                log.warning("log_ship_failed", url=mask(self.url), error=mask(str(exc)))
            return False
        self.shipped += len(lines)
        self.batches += 1
        if self._down_since is not None:
            log.info(
                "log_ship_recovered",
                down_s=round(time.monotonic() - self._down_since, 3),
                dropped=self.dropped,
            )
            self._down_since = None
        return True

    async def _run(self) -> None:
        assert self._wake is not None
        delay = 0.0
        while True:
            if not self._inflight:
                if len(self._queue) < self.batch_size and not self._closing:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.flush_interval):
                            await self._wake.wait()
                self._wake.clear()
                self._inflight = self._take()
                if not self._inflight:
                    if self._closing:
                        return
                    continue
            if await self._ship(self._inflight):
                self._inflight = []
                delay = 0.0
                continue
            if self._closing:
                return
            delay = min(MAX_BACKOFF, max(0.5, delay * 2))
            await self._sleep(delay * (0.5 + random.random() / 2))

    async def close(self, timeout: float = 5.0) -> None:
        """Ship what is queued (up to `timeout`), then count the rest as dropped."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None and self._wake is not None:
            self._wake.set()
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            except Exception:
                log.exception("log_ship_close_failed")
        lost = self.queued
        if lost:
            self.dropped += lost
            self._queue.clear()
            self._inflight = []
        if self._session is not None:
            await self._session.close()


__all__ = ["LogShipper", "ShipFormat"]
