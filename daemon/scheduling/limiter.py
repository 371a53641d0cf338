"""`max_concurrent_runs`: how many runs may execute at once, across all tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class ConcurrencyLimit:
    """`max_concurrent_runs`: a counter, with FIFO waiters only once it is exhausted.

    Unlike `asyncio.Semaphore.acquire`, taking a free slot is a plain call, not a coroutine:
    it sits on the path of every fire.
    """

    __slots__ = ("free", "waiters")

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiters: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed a slot just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(fut)
            raise

    def release(self) -> None:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.free += 1
