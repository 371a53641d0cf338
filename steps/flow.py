"""Xano's flow steps: Switch, For Loop, While Loop, Break Out, Continue, Precondition, Group and
Call Function (a function stack run in a fresh scope with `input`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from daemon.core.errors import BreakSignal, ContinueSignal, ReturnSignal, StepError
from daemon.core.text import type_name
from daemon.expr.filters import loose_equals
from daemon.expr.operators import equals
from daemon.expr.values import truthy
from steps._values import to_text
from steps.base import Evaluator, Function, Step, StepCompiler, StepContext, StepSpec

MAX_ITERATIONS = 100_000

# Precondition `error_type` -> the code `$error.code` shows (XANOSCRIPT.md §4.8, §4.9).
ERROR_CODES = {
    "standard": "ERROR_FATAL",
    "notfound": "ERROR_CODE_NOT_FOUND",
    "accessdenied": "ERROR_CODE_ACCESS_DENIED",
    "unauthorized": "ERROR_CODE_UNAUTHORIZED",
    "toomanyrequests": "ERROR_CODE_TOO_MANY_REQUESTS",
    "badrequest": "ERROR_CODE_BAD_REQUEST",
    "inputerror": "ERROR_CODE_INPUT_ERROR",
}


class CaseSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    value: Any
    steps: list[Any] = []


class Switch(Step):
    """Run the steps of the first case whose `value` equals `value` (no fall-through), else
    `default_steps`. `loose: true` compares as XanoScript does (`5 == "5"`)."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        value: Any
        cases: list[CaseSpec] = []
        default_steps: list[Any] = []
        loose: bool = False

    function = "switch"
    display_name = "Switch"

    __slots__ = ("_cases", "_default", "_equal", "_value")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        self._value = c.template(spec.value, "value")
        self._cases: list[tuple[Evaluator, list[Step]]] = [
            (
                c.template(case.value, f"cases[{i}].value"),
                c.steps(case.steps, f"cases[{i}].steps"),
            )
            for i, case in enumerate(spec.cases)
        ]
        self._default = c.steps(spec.default_steps, "default_steps")
        self._equal = loose_equals if spec.loose else equals
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        value = self._value(ctx)
        chosen = self._default
        for case_value, steps in self._cases:
            if self._equal(value, case_value(ctx)):
                chosen = steps
                break
        for step in chosen:
            await ctx.run_step(step)
        return None

    def children(self) -> Sequence[Sequence[Step]]:
        return (*(steps for _, steps in self._cases), self._default)


async def _iteration(ctx: StepContext, steps: Sequence[Step]) -> bool:
    """One loop body; False when it ran Break Out."""
    try:
        for step in steps:
            await ctx.run_step(step)
    except ContinueSignal:
        pass
    except BreakSignal:
        return False
    return True


class ForLoop(Step):
    """Run `steps` `iterations` times with `index_variable` = 0, 1, …"""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        iterations: Any
        index_variable: str = "index"
        steps: list[Any] = []

    function = "for_loop"
    display_name = "For Loop"

    __slots__ = ("_count", "_index", "_steps")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        if not spec.index_variable.isidentifier():
            c.error("index_variable", f'"{spec.index_variable}" must be a plain identifier')
        self._count = c.template(spec.iterations, "iterations")
        self._index = spec.index_variable
        self._steps = c.steps(spec.steps, "steps", scoped=[spec.index_variable])
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        count = self._count(ctx)
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        if isinstance(count, str) and count.strip().isdigit():
            count = int(count)
        if type(count) is not int:
            raise StepError(f"For Loop iterations must be a whole number, got {count!r:.80}")
        if count > MAX_ITERATIONS * 100:
            raise StepError(f"For Loop iterations {count} is over the limit {MAX_ITERATIONS * 100}")
        overlay: dict[str, Any] = {}
        child = ctx.child(overlay)
        for index in range(count):
            overlay[self._index] = index
            if not await _iteration(child, self._steps):
                break
        return None

    def children(self) -> Sequence[Sequence[Step]]:
        return (self._steps,)


class WhileLoop(Step):
    """Run `steps` while `condition` holds (checked before each pass); more than
    `max_iterations` passes fail the step rather than loop forever."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        condition: Any
        steps: list[Any] = []
        max_iterations: int = MAX_ITERATIONS

    function = "while_loop"
    display_name = "While Loop"

    __slots__ = ("_cond", "_max", "_steps")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        if spec.max_iterations < 1:
            c.error("max_iterations", "max_iterations must be at least 1")
        self._cond = c.template(spec.condition, "condition")
        self._steps = c.steps(spec.steps, "steps")
        self._max = spec.max_iterations
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        passes = 0
        while truthy(self._cond(ctx)):
            if passes == self._max:
                raise StepError(f"While Loop ran {self._max} times (max_iterations); stopped")
            passes += 1
            if not await _iteration(ctx, self._steps):
                break
        return None

    def children(self) -> Sequence[Sequence[Step]]:
        return (self._steps,)


class BreakOut(Step):
    """Leave the innermost loop now."""

    function = "break_out"
    display_name = "Break Out"
    aliases = ("break",)

    __slots__ = ()

    async def run(self, ctx: StepContext) -> Any:
        raise BreakSignal()


class Continue(Step):
    """Go on with the next iteration of the innermost loop."""

    function = "continue"
    display_name = "Continue"

    __slots__ = ()

    async def run(self, ctx: StepContext) -> Any:
        raise ContinueSignal()


class Precondition(Step):
    """Fail the step with `error` as its message unless `condition` holds; `error_type` is
    Xano's (standard, notfound, accessdenied, unauthorized, toomanyrequests, badrequest,
    inputerror), `payload` rides along as the error's `result`."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        condition: Any
        error: Any = "Precondition failed."
        error_type: str = "standard"
        payload: Any = None

    function = "precondition"
    display_name = "Precondition"

    __slots__ = ("_cond", "_error", "_kind", "_payload")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        if spec.error_type not in ERROR_CODES:
            known = ", ".join(ERROR_CODES)
            c.error("error_type", f'unknown error_type "{spec.error_type}" (known: {known})')
        self._cond = c.template(spec.condition, "condition")
        self._error = c.template(spec.error, "error")
        self._payload = c.template(spec.payload, "payload")
        self._kind = spec.error_type
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        if truthy(self._cond(ctx)):
            return None
        err = StepError(to_text(self._error(ctx)))
        err.extra.update(
            code=ERROR_CODES.get(self._kind, "ERROR_FATAL"),
            name=self._kind,
            result=self._payload(ctx),
        )
        raise err


class Group(Step):
    """A named block of steps, run in order in the same scope."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        steps: list[Any] = []

    function = "group"
    display_name = "Group"

    __slots__ = ("_steps",)

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        self._steps = c.steps(spec.steps, "steps")
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        for step in self._steps:
            await ctx.run_step(step)
        return None

    def children(self) -> Sequence[Sequence[Step]]:
        return (self._steps,)


class CallFunction(Step):
    """Run a function (a XanoScript `function`, or a JSON/TOML function file) in a fresh scope
    holding only `input`; its result is its `response` (or the value of a Return inside)."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        name: str
        input: Any = None

    function = "call_function"
    display_name = "Call Function"
    aliases = ("Custom Function", "function_run")

    __slots__ = ("_fn", "_input")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        self._fn: Function | None = c.function(spec.name)
        if self._fn is None:
            c.error("name", f'unknown function "{spec.name}"{c.function_hint(spec.name)}')
        self._input = c.template(spec.input, "input")
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        fn = self._fn
        assert fn is not None  # an unknown name is a load error
        given = self._input(ctx)
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise StepError(f'function "{fn.name}" input must be an object, got {type_name(given)}')
        inner = ctx.function_scope({"input": fn.prepare(given)})
        try:
            for step in fn.steps:
                await inner.run_step(step)
        except ReturnSignal as ret:
            return ret.value
        return None if fn.response is None else fn.response(inner)


FLOW_STEPS: tuple[type[Step], ...] = (
    Switch,
    ForLoop,
    WhileLoop,
    BreakOut,
    Continue,
    Precondition,
    Group,
    CallFunction,
)
