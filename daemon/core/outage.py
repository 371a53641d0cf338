"""An outage of a server, logged twice: an error when it starts, and when it ends (its length)."""

from __future__ import annotations

import time

import structlog

from daemon.core.secrets import mask

log = structlog.get_logger("cronstack")


class Outage:
    """Tracks whether something (the state store) is reachable. Every failure calls `failed`,
    every success `recovered`; the log gets one line when the outage starts and one when it
    ends — not one per fire or per retry (a 5 s outage at 100 fires a second was 500 lines)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.event = what.replace(" ", "_")
        self.since: float | None = None  # monotonic start of the current outage
        self.failures = 0  # failed operations during it
        self.outages = 0  # outages so far

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            self.outages += 1
            log.error(f"{self.event}_unavailable", error=mask(str(exc) or type(exc).__name__))

    def recovered(self) -> None:
        if self.since is None:
            return
        down_s = time.monotonic() - self.since
        log.error(
            f"{self.event}_recovered", down_s=round(down_s, 3), failed_operations=self.failures
        )
        self.since = None
        self.failures = 0
