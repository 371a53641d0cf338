"""The cyclic garbage collector paused around work that only builds objects which live on."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


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
