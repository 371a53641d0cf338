"""The cyclic garbage collector paused around work that only builds objects which live on."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Final


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic GC off for the block, then back as it was. Reference counting still frees
    everything short-lived meanwhile; only cycles wait for the next collection.

    Used where a burst allocates objects that survive it (loading a configuration, starting a
    batch of runs): every collection meanwhile would walk all of them again for nothing.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# Collection thresholds for the daemon's process (Python's defaults: 700, 10, 10). A burst of
# runs keeps tens of thousands of young objects alive at once (tasks, coroutines, futures,
# results) and the default young generation collects every 700 allocations, walking them over
# and over: 19 % of the loop's CPU with 100,000 claimed runs due at one minute. Cycles (an
# exception's traceback) still go within 50,000 allocations, a fraction of a second under load.
DAEMON_THRESHOLDS: Final = (50_000, 20, 20)


def tune_for_daemon() -> None:
    """Set the daemon's collection thresholds (a long-lived process with bursts of runs)."""
    gc.set_threshold(*DAEMON_THRESHOLDS)
