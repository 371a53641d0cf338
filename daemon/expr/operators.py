"""Operators of the expression language: arithmetic, equality and ordering on JSON values."""

from __future__ import annotations

import operator
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from daemon.core.errors import ExpressionError
from daemon.core.text import type_name
from daemon.expr.values import check_int, is_number, render, sized_list, sized_str

# --- operators -------------------------------------------------------------------------------


def num_pair(a: Any, b: Any, op: str, column: int) -> tuple[Any, Any]:
    """Check both operands are numbers; mixes Decimal (from NUMERIC columns) with float."""
    if a is None or b is None:
        raise ExpressionError(f'arithmetic on null ("{op}")', column=column)
    if not is_number(a) or not is_number(b):
        raise ExpressionError(
            f'"{op}" needs numbers, got {type_name(a)} and {type_name(b)}', column=column
        )
    if type(a) is float and isinstance(b, Decimal):
        return a, float(b)
    if type(b) is float and isinstance(a, Decimal):
        return float(a), b
    return a, b


def int_result(value: Any, column: int) -> Any:
    if type(value) is int:
        return check_int(value, column)
    return value


def op_add(a: Any, b: Any, column: int) -> Any:
    ta, tb = type(a), type(b)
    if ta is str or tb is str:
        if a is None or b is None:
            raise ExpressionError('arithmetic on null ("+")', column=column)
        sa = a if ta is str else render(a, column)
        sb = b if tb is str else render(b, column)
        sized_str(len(sa) + len(sb), column)
        return sa + sb
    if (ta is list or ta is tuple) and (tb is list or tb is tuple):
        sized_list(len(a) + len(b), column)
        return [*a, *b]
    a, b = num_pair(a, b, "+", column)
    return int_result(a + b, column)


def op_sub(a: Any, b: Any, column: int) -> Any:
    a, b = num_pair(a, b, "-", column)
    return int_result(a - b, column)


def op_mul(a: Any, b: Any, column: int) -> Any:
    ta, tb = type(a), type(b)
    # Repetition: "ab" * 3, [0] * 3 (either order); the size is checked before allocating.
    if tb is int and (ta is str or ta is list or ta is tuple):
        seq, count = a, b
    elif ta is int and (tb is str or tb is list or tb is tuple):
        seq, count = b, a
    else:
        a, b = num_pair(a, b, "*", column)
        return int_result(a * b, column)
    size = len(seq) * max(count, 0)
    if type(seq) is str:
        sized_str(size, column)
        return seq * count
    sized_list(size, column)
    return list(seq) * count


def div_nums(a: Any, b: Any, column: int) -> Any:
    if b == 0:
        raise ExpressionError("division by zero", column=column)
    if isinstance(a, int) and isinstance(b, int):  # Millis too (num_pair refused bools)
        q, r = divmod(a, b)
        return q if r == 0 else a / b  # 10 / 2 is 5, 7 / 2 is 3.5
    try:
        return a / b
    except (OverflowError, InvalidOperation) as exc:
        raise ExpressionError(f"division failed: {exc}", column=column) from None


def op_div(a: Any, b: Any, column: int) -> Any:
    a, b = num_pair(a, b, "/", column)
    return div_nums(a, b, column)


def op_mod(a: Any, b: Any, column: int) -> Any:
    a, b = num_pair(a, b, "%", column)
    if b == 0:
        raise ExpressionError("division by zero (modulo)", column=column)
    try:
        return a % b  # Python's rule: the result has the divisor's sign
    except (OverflowError, InvalidOperation) as exc:
        raise ExpressionError(f"modulo failed: {exc}", column=column) from None


def equals(a: Any, b: Any) -> bool:
    if a is b:
        return True
    # true == 1 would be True in Python; booleans only equal booleans here.
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    try:
        return bool(a == b)
    except Exception:  # exotic values from drivers; unequal is the only safe answer
        return False


COMPARISONS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compare(op: str, a: Any, b: Any, column: int) -> bool:
    if a is None or b is None:
        raise ExpressionError(f'comparison with null ("{op}")', column=column)
    fn = COMPARISONS[op]
    if is_number(a) and is_number(b):
        return bool(fn(a, b))
    if type(a) is str and type(b) is str:
        return bool(fn(a, b))
    if type(a) is type(b) and type(a) is not bool:
        try:  # dates and datetimes from database rows compare with their own kind
            return bool(fn(a, b))
        except TypeError:
            pass
    raise ExpressionError(
        f'cannot compare {type_name(a)} and {type_name(b)} with "{op}"', column=column
    )
