"""Clocks for the scheduler: the system clock, and a fake one that tests advance by hand."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

# The longest single sleep on the system clock. Sleeps use the monotonic timer, so a wall clock
# that jumps forward (NTP step, resume from suspend) is noticed at the latest after this long.
MAX_SLEEP = 30.0


class Clock(Protocol):
    """What the scheduler needs from time: the wall clock, a monotonic clock, and sleeping."""

    def now(self) -> datetime:
        """The current wall-clock time, aware, in UTC."""
        ...

    def monotonic(self) -> float: ...

    async def sleep_until(self, deadline: datetime | None, wake: asyncio.Event) -> None:
        """Return at `deadline` (wall clock), when `wake` is set, or earlier; callers re-check."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock. `sleep_until` may return early (timer resolution, capped sleeps).

    `offset` (seconds) shifts the wall clock: tests use it to run a replica whose clock is wrong
    (`CRONSTACK_CLOCK_OFFSET`), as a host without NTP would be. `correction` (seconds, set by
    the state store) brings this clock to the shared database's: replicas with a PostgreSQL
    state store fire on the database clock, whatever their hosts' clocks say.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.correction = 0.0
        self._shift = offset  # offset + correction, added to every reading
        self._sleeping: set[asyncio.Event] = set()  # wake events of sleepers, to re-plan them

    def local_time(self) -> float:
        """This process's own idea of the time (epoch seconds), without the correction: what
        the state store measures the database clock against."""
        return time.time() + self.offset

    def set_correction(self, seconds: float) -> None:
        """Adopt a new database-clock correction; sleepers wake to recompute their deadlines."""
        changed = abs(seconds - self.correction) >= 0.001
        self.correction = seconds
        self._shift = self.offset + seconds
        if changed:
            for wake in self._sleeping:
                wake.set()

    def now(self) -> datetime:
        if self._shift:
            return datetime.fromtimestamp(time.time() + self._shift, UTC)
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline: datetime | None, wake: asyncio.Event) -> None:
        if wake.is_set():
            return
        delay = MAX_SLEEP
        if deadline is not None:
            delay = min(delay, deadline.timestamp() - time.time() - self._shift)
            if delay <= 0:
                return
        self._sleeping.add(wake)
        try:
            async with asyncio.timeout(delay):
                await wake.wait()
        except TimeoutError:
            pass
        finally:
            self._sleeping.discard(wake)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


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
