"""The database clock: how far it is from this process's clock, so replicas fire on one clock."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from daemon.resources.db import as_postgres
from daemon.resources.db.base import DataSource

log = structlog.get_logger("cronstack.store")

# Round trips per measurement (the fastest one is used), the weight of a new measurement
# against the running value, and the change taken at once (a clock was stepped).
CLOCK_SAMPLES = 3
CLOCK_SMOOTHING = 0.3
CLOCK_STEP = 1.0
# An offset this large (s) is logged as a warning: the host's clock needs NTP.
CLOCK_WARN = 2.0


class DatabaseClock:
    """Measures the shared database's clock against `local_time` and reports the offset.

    `local_time` is the process clock the scheduler fires on (`SystemClock.local_time`);
    `on_offset` is who applies a change (the scheduler clock's `set_correction`). SQLite shares
    this host's clock and serves one process: its offset is always 0 and never logged.
    """

    def __init__(self, ds: DataSource, clock_sql: str) -> None:
        self.ds = ds
        self.clock_sql = clock_sql
        self.local_time: Callable[[], float] = time.time
        self.on_offset: Callable[[float], None] | None = None
        self.offset = 0.0  # database clock minus local_time, seconds, smoothed
        self._logged: float | None = None

    async def measure(self) -> tuple[float, float]:
        """(database clock minus `local_time`, round trip), both in seconds, from the fastest of
        a few round trips: the database read its clock about halfway through it."""
        pg = as_postgres(self.ds)
        if pg is None:
            return 0.0, 0.0
        best: tuple[float, float] | None = None
        # One connection for all samples: waiting for a pooled one must not count as transit.
        async with pg.pool.acquire() as conn:
            for _ in range(CLOCK_SAMPLES):
                t0 = self.local_time()
                db = await conn.fetchval(self.clock_sql)
                t1 = self.local_time()
                sample = (float(db) - (t0 + t1) / 2, t1 - t0)
                if best is None or sample[1] < best[1]:
                    best = sample
        assert best is not None
        return best

    async def sync(self) -> float:
        """Measure and adopt the offset (smoothed; a step is taken at once), tell `on_offset`,
        and log it when first measured or when it moved. Returns the offset."""
        measured, rtt = await self.measure()
        previous = self.offset
        if self._logged is None or abs(measured - previous) > CLOCK_STEP:
            offset = measured
        else:
            offset = previous + CLOCK_SMOOTHING * (measured - previous)
        self.offset = offset
        shared = self.ds.dialect == "postgresql"
        if shared and (self._logged is None or abs(offset - self._logged) > 0.5):
            # Negative: this process's clock is ahead of the database's (it would fire early).
            level = log.warning if abs(offset) > CLOCK_WARN else log.info
            level(
                "clock_offset",
                offset_s=round(offset, 4),
                rtt_ms=round(rtt * 1000, 2),
                first=self._logged is None,
            )
            self._logged = offset
        if self.on_offset is not None:
            self.on_offset(offset)
        return offset
