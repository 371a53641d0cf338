"""Runs a task once: run context, timeout, on_failure, and the step trace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog

from daemon.core.errors import ReturnSignal, RunError
from daemon.core.runs import (
    CANCELLED,
    CURRENT_RUN,
    DEADMAN,
    FAILED,
    SUCCEEDED,
    TIMED_OUT,
    RunResult,
    attach_partial,
    new_run_id,
    slot_id_for,
)
from daemon.core.secrets import mask_value
from daemon.engine.context import RunContext, TaskInfo
from daemon.resources.bundle import Resources

if TYPE_CHECKING:
    from daemon.engine.compiler import CompiledTask
    from steps.base import Step

log = structlog.get_logger("cronstack.runner")


async def run_stack(
    steps: Sequence[Step],
    *,
    resources: Resources,
    task_name: str = "t",
    tz: str | ZoneInfo = "UTC",
    data_source: str | None = None,
    timeout: float | None = None,
    on_failure: Sequence[Step] | None = None,
    trigger: str = "manual",
    attempt: int = 1,
    scheduled_at: int | None = None,
    run_id: str | None = None,
    slot_id: str | None = None,
) -> RunResult:
    """Run a compiled stack to its end and report the outcome; never raises a step's error.

    Cancellation of the caller is re-raised, carrying the `cancelled` result with the trace so
    far (`daemon.core.runs.partial_result`).
    """
    started = int(time.time() * 1000)
    run_id = run_id or new_run_id()
    scheduled = started if scheduled_at is None else scheduled_at
    if slot_id is None:
        slot_id = slot_id_for(task_name, scheduled) if trigger != "manual" else run_id
    info = TaskInfo(
        name=task_name,
        run_id=run_id,
        slot_id=slot_id,
        scheduled_at=scheduled,
        attempt=attempt,
        trigger=trigger,
    )
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    ctx = RunContext(
        task=info, resources=resources, tz=zone, data_source=data_source, started_ms=started
    )
    result = RunResult(
        task=task_name,
        run_id=run_id,
        slot_id=slot_id,
        status=SUCCEEDED,
        trigger=trigger,
        attempt=attempt,
        scheduled_at=scheduled,
        started_at=started,
        finished_at=started,
        trace=ctx.trace,
    )
    bound = CURRENT_RUN.set((task_name, run_id))
    try:
        try:
            if timeout is None:
                # No timeout context: asyncio.timeout binds to the current task, which a run the
                # scheduler starts inline does not have.
                await ctx.run_steps(steps)
            else:
                async with asyncio.timeout(timeout):
                    await ctx.run_steps(steps)
        except ReturnSignal as ret:
            result.value = ret.value
        except RunError as exc:
            result.status = FAILED
            # Masked here, once, so history, logs and `trigger` never see a secret an
            # exception message picked up (a response echoing a token, a DSN in a driver error).
            result.error = mask_value(exc.as_dict())
        except TimeoutError:
            result.status = TIMED_OUT
            running = next((r.path for r in reversed(ctx.trace) if r.status == "cancelled"), None)
            result.error = {
                "type": "TimeoutError",
                "message": f"run exceeded its timeout of {timeout:g}s",
                "step": running,
            }
        except asyncio.CancelledError as exc:
            # The trace so far goes with the exception (the step that was running is marked
            # `cancelled` by the run context); the scheduler records it as the run's outcome.
            result.status = CANCELLED
            running = next((r.path for r in reversed(ctx.trace) if r.status == "cancelled"), None)
            result.error = {"type": "CancelledError", "message": "run cancelled", "step": running}
            result.finished_at = int(time.time() * 1000)
            attach_partial(exc, result)
            raise
        if result.status != SUCCEEDED and on_failure:
            await _run_on_failure(ctx, on_failure, result.error)
        result.finished_at = int(time.time() * 1000)
        return result
    finally:
        CURRENT_RUN.reset(bound)


async def _run_on_failure(
    ctx: RunContext, steps: Sequence[Step], error: dict[str, Any] | None
) -> None:
    """The alert stack: the only place an `on_failure` stack runs (after a run's last failed
    attempt, and for the dead-man's switch); its own failure is logged, never raised."""
    ctx.error = error
    try:
        await ctx.run_steps(steps)
    except ReturnSignal:
        pass
    except RunError as exc:
        log.warning("on_failure_failed", error=mask_value(exc.as_dict()))


async def run_alert(task: CompiledTask, resources: Resources, error: dict[str, Any]) -> None:
    """Run a task's `on_failure` stack on its own, with `error` bound (the dead-man's switch):
    a context of its own, trigger `deadman`, no history row."""
    run_id = new_run_id()
    now = int(time.time() * 1000)
    ctx = RunContext(
        task=TaskInfo(task.name, run_id, run_id, now, 1, DEADMAN),
        resources=resources,
        tz=task.tz,
        data_source=task.data_source,
        started_ms=now,
    )
    bound = CURRENT_RUN.set((task.name, run_id))
    try:
        await _run_on_failure(ctx, task.on_failure or (), error)
    finally:
        CURRENT_RUN.reset(bound)


async def run_task(
    task: CompiledTask,
    resources: Resources,
    *,
    trigger: str = "manual",
    attempt: int = 1,
    scheduled_at: int | None = None,
    run_id: str | None = None,
    slot_id: str | None = None,
    with_on_failure: bool = True,
) -> RunResult:
    """Run a compiled task once with its timeout (and on_failure unless told otherwise)."""
    return await run_stack(
        task.steps,
        resources=resources,
        task_name=task.name,
        tz=task.tz,
        data_source=task.data_source,
        timeout=task.timeout,
        on_failure=task.on_failure if with_on_failure else None,
        trigger=trigger,
        attempt=attempt,
        scheduled_at=scheduled_at,
        run_id=run_id,
        slot_id=slot_id,
    )
