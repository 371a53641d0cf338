"""Math: aggregates over a list (count sum avg min max) and arithmetic on one or two numbers.

Aggregates skip nulls (a plucked column like `{{orders.total}}` holds null for rows without
one), except `count`, which counts every item. Over no numbers, `sum` is 0 and `avg`, `min`
and `max` are null. Numbers are ints, floats, decimals (from database numeric columns) or
strings holding a number; anything else fails the step with a StepError naming the operation.
Results that are whole numbers come back as ints (`avg([1, 2, 3])` is 2), as a JS runtime would
print them; `round` rounds half away from zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from daemon.core.errors import StepError
from daemon.core.text import type_name
from steps.base import Evaluator, Step, StepCompiler, StepContext, StepSpec

Number = int | float

_AGGREGATES = ("count", "sum", "avg", "min", "max")
_BINARY = ("add", "subtract", "multiply", "divide", "modulo")
_UNARY = ("round", "floor", "ceil", "abs")
OPERATIONS = _AGGREGATES + _BINARY + _UNARY

# Beyond 2**53 floats stop being exact integers; keep those as floats rather than invent digits.
_EXACT = 2**53


def _tidy(x: Number) -> Number:
    if type(x) is float and x.is_integer() and -_EXACT <= x <= _EXACT:
        return int(x)
    return x


def to_number(value: Any, op: str, what: str) -> Number:
    """Coerce one operand; the error says which operation and which operand was wrong."""
    tv = type(value)
    if tv is int or tv is float:
        return value
    if isinstance(value, Decimal):
        return _tidy(float(value))
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise StepError(f"Math {op}: {what} must be a number, got {type_name(value)} {value!r:.80}")


def _list(values: Any, op: str) -> list[Any]:
    if isinstance(values, list):
        return values
    if isinstance(values, tuple):
        return list(values)
    raise StepError(f"Math {op}: values must be a list, got {type_name(values)}")


def _numbers(values: Any, op: str) -> list[Number]:
    out: list[Number] = []
    for i, v in enumerate(_list(values, op)):
        tv = type(v)
        if tv is int or tv is float:  # the common case, without a function call per item
            out.append(v)
        elif v is not None:
            out.append(to_number(v, op, f"values[{i}]"))
    return out


def _count(values: Any) -> int:
    if values is None:
        return 0
    if isinstance(values, dict):
        return len(values)
    return len(_list(values, "count"))


def _sum(values: Any) -> Number:
    if values is None:
        return 0
    return _tidy(sum(_numbers(values, "sum")))


def _avg(values: Any) -> Number | None:
    nums = [] if values is None else _numbers(values, "avg")
    return _tidy(sum(nums) / len(nums)) if nums else None


def _min(values: Any) -> Number | None:
    nums = [] if values is None else _numbers(values, "min")
    return min(nums) if nums else None


def _max(values: Any) -> Number | None:
    nums = [] if values is None else _numbers(values, "max")
    return max(nums) if nums else None


def _divide(a: Number, b: Number) -> Number:
    if b == 0:
        raise StepError("Math divide: division by zero")
    return _tidy(a / b)


def _modulo(a: Number, b: Number) -> Number:
    if b == 0:
        raise StepError("Math modulo: division by zero")
    # The result takes the sign of the dividend (JS/PHP `%`), not of the divisor (Python `%`).
    if type(a) is int and type(b) is int:
        r = abs(a) % abs(b)
        return r if a >= 0 else -r
    return _tidy(math.fmod(a, b))


def _round(x: Number, digits: Number | None) -> Number:
    places = 0 if digits is None else digits
    if type(places) is not int:
        if isinstance(places, float) and places.is_integer():
            places = int(places)
        else:
            raise StepError(f"Math round: operand (digits) must be a whole number, got {digits!r}")
    if type(x) is int and places >= 0:
        return x
    try:
        rounded = Decimal(repr(x)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise StepError(f"Math round: cannot round {x!r} to {places} digits") from None
    return _tidy(float(rounded)) if places > 0 else int(rounded)


def _finite(x: Number, op: str) -> Number:
    if type(x) is float and not math.isfinite(x):
        raise StepError(f"Math {op}: result is not a finite number")
    return x


_AGGREGATE_FNS: dict[str, Callable[[Any], Any]] = {
    "count": _count,
    "sum": _sum,
    "avg": _avg,
    "min": _min,
    "max": _max,
}
_BINARY_FNS: dict[str, Callable[[Number, Number], Number]] = {
    "add": lambda a, b: _tidy(a + b),
    "subtract": lambda a, b: _tidy(a - b),
    "multiply": lambda a, b: _tidy(a * b),
    "divide": _divide,
    "modulo": _modulo,
}
_UNARY_FNS: dict[str, Callable[[Number], Number]] = {
    "floor": lambda x: math.floor(x),
    "ceil": lambda x: math.ceil(x),
    "abs": lambda x: abs(x),
}


class MathStep(Step):
    waits = False  # arithmetic only

    """One arithmetic operation; which fields it reads depends on `operation`."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        operation: str
        values: Any = None
        value: Any = None
        operand: Any = None

    function = "math"
    display_name = "Math"

    __slots__ = ("_a", "_aggregate", "_b", "_fn", "_op")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        op = spec.operation.strip().lower()
        self._op = op
        self._aggregate = op in _AGGREGATES
        self._a: Evaluator | None = None
        self._b: Evaluator | None = None
        self._fn: Callable[..., Any] | None = None
        if op in _AGGREGATES:
            # `value` is accepted for a list too: authors mix the two up and the intent is clear.
            source, name = (
                (spec.values, "values") if spec.values is not None else (spec.value, "value")
            )
            if source is None:
                c.error("values", f'Math {op} needs "values" (a list or a template yielding one)')
            self._a = c.template(source, name)
            self._fn = _AGGREGATE_FNS[op]
        elif op in _BINARY:
            if spec.value is None:
                c.error("value", f'Math {op} needs "value"')
            if spec.operand is None:
                c.error("operand", f'Math {op} needs "operand"')
            self._a = c.template(spec.value, "value")
            self._b = c.template(spec.operand, "operand")
            self._fn = _BINARY_FNS[op]
        elif op in _UNARY:
            if spec.value is None:
                c.error("value", f'Math {op} needs "value"')
            self._a = c.template(spec.value, "value")
            if spec.operand is not None:
                if op != "round":
                    c.error("operand", f"Math {op} takes no operand")
                self._b = c.template(spec.operand, "operand")
            self._fn = _round if op == "round" else _UNARY_FNS[op]
        else:
            c.error(
                "operation",
                f'unknown Math operation "{spec.operation}"; '
                f"expected one of {', '.join(OPERATIONS)}",
            )
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        op = self._op
        fn = self._fn
        assert fn is not None and self._a is not None  # compile errors stop the stack loading
        if self._aggregate:
            return fn(self._a(ctx))
        a = to_number(self._a(ctx), op, "value")
        if self._b is None:
            return _finite(fn(a, None) if op == "round" else fn(a), op)
        b = self._b(ctx)
        if op == "round":
            return fn(a, None if b is None else to_number(b, op, "operand"))
        return _finite(fn(a, to_number(b, op, "operand")), op)


MATH_STEPS: tuple[type[Step], ...] = (MathStep,)
