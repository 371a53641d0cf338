"""Control flow: Conditional, Loop, Try-Catch, Throw Error, Return, Sleep and Log."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import structlog

from daemon.core.errors import BreakSignal, ContinueSignal, ReturnSignal, RunError, StepError
from daemon.core.secrets import mask_value
from daemon.core.text import type_name
from daemon.expr.parser import is_template
from daemon.expr.values import truthy
from steps._values import seconds, to_text
from steps.base import Evaluator, Step, StepCompiler, StepContext, StepSpec

_log = structlog.get_logger("cronstack.task")


class Conditional(Step):
    """Run `true_steps` when `condition` is truthy, else `false_steps`."""

    waits = False

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        condition: Any
        true_steps: list[Any] = []
        false_steps: list[Any] = []

    function = "conditional"
    display_name = "Conditional"

    __slots__ = ("_cond", "_false", "_true")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        self._cond = c.template(spec.condition, "condition")
        self._true = c.steps(spec.true_steps, "true_steps")
        self._false = c.steps(spec.false_steps, "false_steps")
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        branch = self._true if truthy(self._cond(ctx)) else self._false
        for step in branch:
            await ctx.run_step(step)
        return None

    def children(self) -> Sequence[Sequence[Step]]:
        return (self._true, self._false)


class Loop(Step):
    """Run `steps` once per item of `input_array`, `concurrency` iterations at a time.

    The item (and optional index) variable is visible only inside the loop; other variables the
    body sets land in the run's one scope. With concurrency > 1 the first failing iteration
    cancels the others and its error fails the loop.
    """

    waits = False  # unless iterations run concurrently (a task group): see may_wait

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        input_array: Any
        loop_item_variable: str = "item"
        index_variable: str | None = None
        steps: list[Any] = []
        concurrency: int = 1

    function = "loop"
    display_name = "Loop"

    __slots__ = ("_concurrency", "_index_var", "_input", "_item_var", "_steps")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        self._input = c.template(spec.input_array, "input_array")
        for fld, name in (
            ("loop_item_variable", spec.loop_item_variable),
            ("index_variable", spec.index_variable),
        ):
            if name is not None and not name.isidentifier():
                c.error(fld, f'variable name "{name}" must be a plain identifier')
        if spec.concurrency < 1:
            c.error("concurrency", "concurrency must be at least 1")
        self._item_var = spec.loop_item_variable
        self._index_var = spec.index_variable
        self._concurrency = max(1, spec.concurrency)
        scoped = [spec.loop_item_variable]
        if spec.index_variable:
            scoped.append(spec.index_variable)
        self._steps = c.steps(spec.steps, "steps", scoped=scoped)
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        items = self._input(ctx)
        if items is None:
            return None
        if not isinstance(items, list | tuple):
            raise StepError(f"Loop input_array must be a list, got {type_name(items)}")
        if not items or not self._steps:
            return None
        if self._concurrency == 1 or len(items) == 1:
            await self._sequence(ctx, enumerate(items))
        else:
            await self._concurrent(ctx, items)
        return None

    async def _sequence(self, ctx: StepContext, work: Iterator[tuple[int, Any]]) -> None:
        # One child context per worker, its overlay updated in place per item: building a
        # context per item would cost more than a cheap step itself.
        overlay: dict[str, Any] = {}
        child = ctx.child(overlay)
        item_var = self._item_var
        index_var = self._index_var
        steps = self._steps
        for index, item in work:
            overlay[item_var] = item
            if index_var:
                overlay[index_var] = index
            try:
                for step in steps:
                    await child.run_step(step)
            except ContinueSignal:
                continue
            except BreakSignal:
                for _ in work:  # other workers of a concurrent loop find nothing left
                    pass
                break

    async def _concurrent(self, ctx: StepContext, items: Sequence[Any]) -> None:
        # A fixed pool of workers pulling from one shared iterator: at most `concurrency` tasks
        # exist, however long the list. The TaskGroup cancels the other workers on the first
        # failure.
        work = iter(enumerate(items))
        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(self._concurrency, len(items))):
                    tg.create_task(self._sequence(ctx, work))
        except BaseExceptionGroup as group:
            # The group lists errors in the order they happened; the first one is the cause,
            # later ones (if any) raced it before the cancellation landed.
            raise group.exceptions[0] from None

    def children(self) -> Sequence[Sequence[Step]]:
        return (self._steps,)

    def may_wait(self) -> bool:
        return self._concurrency > 1 or super().may_wait()


class TryCatch(Step):
    """Run `try_steps`; on a step error run `catch_steps` with `error` bound; then `finally_steps`.

    Return and cancellation pass through uncaught. `finally_steps` run after success, after a
    caught error, after an error in catch (which then propagates) and after Return; they are
    skipped when the run is cancelled (timeout, shutdown), which must stop promptly.
    """

    waits = False

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        try_steps: list[Any] = []
        catch_steps: list[Any] = []
        finally_steps: list[Any] = []

    function = "try_catch"
    display_name = "Try-Catch"
    aliases = ("Try-Catch-Finally", "try_catch_finally")

    __slots__ = ("_catch", "_finally", "_try")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        self._try = c.steps(spec.try_steps, "try_steps")
        self._catch = c.steps(spec.catch_steps, "catch_steps", scoped=("error",))
        self._finally = c.steps(spec.finally_steps, "finally_steps")
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        try:
            for step in self._try:
                await ctx.run_step(step)
        except RunError as err:
            saved = ctx.error
            # Masked here, for every error type: catch steps may write `error.message` to a
            # table or an outgoing request, where no later redaction reaches it.
            ctx.error = mask_value(err.as_dict())
            try:
                for step in self._catch:
                    await ctx.run_step(step)
            except (RunError, ReturnSignal):
                ctx.error = saved
                await self._run_finally(ctx)
                raise
            finally:
                ctx.error = saved
        except ReturnSignal:
            await self._run_finally(ctx)
            raise
        await self._run_finally(ctx)
        return None

    async def _run_finally(self, ctx: StepContext) -> None:
        for step in self._finally:
            await ctx.run_step(step)

    def children(self) -> Sequence[Sequence[Step]]:
        return (self._try, self._catch, self._finally)


class ThrowError(Step):
    """Fail with a StepError carrying `message` and `type` (what `error.type` shows in catch)."""

    waits = False

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        message: Any = "error"
        type: str = "StepError"

    function = "throw_error"
    display_name = "Throw Error"

    __slots__ = ("_message", "_type")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        if not spec.type.strip():
            c.error("type", "error type must not be empty")
        self._message = c.template(spec.message, "message")
        self._type = spec.type
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        raise StepError(to_text(self._message(ctx)), type_name=self._type)


class Return(Step):
    """End the whole stack successfully with `value` as the run's result."""

    waits = False

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        value: Any = None

    function = "return"
    display_name = "Return"

    __slots__ = ("_value",)

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        self._value = c.template(spec.value, "value")
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        raise ReturnSignal(self._value(ctx))


class Sleep(Step):
    """Pause the run for `duration` ("500ms", "2s", or a number of seconds; templates allowed)."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        duration: Any

    function = "sleep"
    display_name = "Sleep"

    __slots__ = ("_duration", "_seconds")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        self._seconds: float | None = None
        self._duration: Evaluator | None = None
        if is_template(spec.duration):
            self._duration = c.template(spec.duration, "duration")
        else:
            try:
                self._seconds = seconds(spec.duration, "duration")
            except ValueError as exc:
                c.error("duration", str(exc))
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        delay = self._seconds
        if delay is None:
            assert self._duration is not None  # a literal duration was parsed at load time
            try:
                delay = seconds(self._duration(ctx), "Sleep duration")
            except ValueError as exc:
                raise StepError(str(exc)) from None
        await asyncio.sleep(delay)
        return None


_LEVELS = ("debug", "info", "warning", "error")


class Log(Step):
    """Emit a structured `task_log` event with `message` (any value) at `level`."""

    waits = False

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        message: Any = None
        level: str = "info"

    function = "log"
    display_name = "Log"

    __slots__ = ("_level", "_message")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        level = spec.level.strip().lower()
        if level == "warn":
            level = "warning"
        if level not in _LEVELS:
            c.error(
                "level", f'unknown log level "{spec.level}"; expected one of {", ".join(_LEVELS)}'
            )
            level = "info"
        self._level = level
        self._message = c.template(spec.message, "message")
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        # The run binds task/run_id through contextvars; the step path says where this came from.
        # Looked up per call, not at load time, so a later structlog.configure() still applies.
        getattr(_log, self._level)("task_log", message=self._message(ctx), step=self.path)
        return None


async def run_steps_keeping_signals(ctx: StepContext, steps: Sequence[Step]) -> ReturnSignal | None:
    """Run steps; a Return, Break or Continue among them is returned instead of raised, for a
    block that must finish its own work (commit a transaction) before passing it on."""
    try:
        for step in steps:
            await ctx.run_step(step)
    except ReturnSignal as signal:
        return signal
    return None


CONTROL_STEPS: tuple[type[Step], ...] = (
    Conditional,
    Loop,
    TryCatch,
    ThrowError,
    Return,
    Sleep,
    Log,
)
