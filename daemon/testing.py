"""Test doubles for the seams in `daemon.core.abc`: a clock that moves only when told to."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any


async def settle(max_rounds: int = 10_000) -> None:
    """Let every ready callback and task run until the loop has nothing left to do right now."""
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    for _ in range(max_rounds if ready is not None else 100):
        await asyncio.sleep(0)
        if ready is not None and not ready:
            return


class FakeClock:
    """A clock that only moves when a test says so; `advance` wakes sleepers in deadline order."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)).astimezone(UTC)
        self._mono = 1000.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def _wait_until_ts(self, ts: float) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (ts, next(self._seq), fut))
        return fut

    async def sleep_until(self, deadline: datetime | None, wake: asyncio.Event) -> None:
        if wake.is_set() or (deadline is not None and deadline <= self._now):
            return
        waiter: asyncio.Future[Any] = asyncio.ensure_future(wake.wait())
        waits: set[asyncio.Future[Any]] = {waiter}
        fut = None
        if deadline is not None:
            fut = self._wait_until_ts(deadline.timestamp())
            waits.add(fut)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if fut is not None and not fut.done():
                fut.cancel()

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await self._wait_until_ts(self._now.timestamp() + seconds)

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def _set(self, ts: float) -> None:
        delta = ts - self._now.timestamp()
        self._now = datetime.fromtimestamp(ts, UTC)
        self._mono += max(0.0, delta)

    async def advance(self, seconds: float) -> None:
        """Move time forward step by step, waking each sleeper at its deadline and letting the
        loop settle before the next one, so everything happens as if time had really passed."""
        target = self._now.timestamp() + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            ts, _, fut = heapq.heappop(self._sleepers)
            if fut.done():
                continue
            if ts > self._now.timestamp():
                self._set(ts)
            fut.set_result(None)
            await settle()
        self._set(target)
        await settle()

    async def jump(self, seconds: float) -> None:
        """Move the wall clock at once (a suspend, an NTP step; negative goes back); sleepers now
        due wake together afterwards, as timers do after a resume."""
        self._now = self._now + timedelta(seconds=seconds)
        now = self._now.timestamp()
        await settle()
        while self._sleepers and self._sleepers[0][0] <= now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
        await settle()
