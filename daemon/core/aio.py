"""A set of long-lived background asyncio tasks: kept referenced, failures logged, cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger("cronstack")


class BackgroundTasks:
    """Owns background tasks (flushers, pollers, heartbeats): each is referenced until it ends
    (never fire-and-forget), a crash is logged with the task's name (`event`), and `cancel`
    stops and awaits them all."""

    def __init__(self, event: str = "background_task_failed") -> None:
        self.event = event
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(self.event, name=task.get_name(), exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def cancel(self) -> None:
        """Cancel every task and wait until all have ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
