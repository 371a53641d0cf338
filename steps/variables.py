"""Create Variable and Update Variable: set a name in the run's single variable scope."""

from __future__ import annotations

from typing import Any

from steps.base import Step, StepCompiler, StepContext, StepSpec


class CreateVariable(Step):
    """Evaluate `value` and bind it to `name`; later steps (anywhere in the run) can read it."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        name: str
        value: Any = None

    function = "create_variable"
    waits = False
    display_name = "Create Variable"

    __slots__ = ("_name", "_value")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        if not spec.name.isidentifier():
            c.error("name", f'variable name "{spec.name}" must be a plain identifier')
        # The value is compiled before the name is defined, so `x = x + 1` on a fresh `x`
        # is still reported as a reference to an undefined variable.
        self._value = c.template(spec.value, "value")
        c.define(spec.name)
        self._name = spec.name
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        value = self._value(ctx)
        ctx.set_var(self._name, value)
        return value


class UpdateVariable(CreateVariable):
    """Same as Create Variable; kept as its own type because the seed's editor has both."""

    function = "update_variable"
    display_name = "Update Variable"

    __slots__ = ()


VARIABLE_STEPS: tuple[type[Step], ...] = (CreateVariable, UpdateVariable)
