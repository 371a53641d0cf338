"""The system clock the scheduler fires on, corrected to the state store's database clock."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

# The longest single sleep on the system clock. Sleeps use the monotonic timer, so a wall clock
# that jumps forward (NTP step, resume from suspend) is noticed at the latest after this long.
MAX_SLEEP = 30.0


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
