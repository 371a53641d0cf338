"""The fixed set of pure functions expressions may call (`round`, `join`, `date`, ...)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any, Final, TypeAlias
from zoneinfo import ZoneInfo

from daemon.core.errors import ExpressionError
from daemon.core.text import type_name
from daemon.expr.nodes import Node, combine
from daemon.expr.operators import div_nums, equals, int_result
from daemon.expr.values import check_int, is_number, render, sized_list, sized_str, to_json

# --- functions -------------------------------------------------------------------------------
# Each takes (ctx, args, column). ctx is None while folding, so only functions marked
# foldable below may be folded: they must not read it (`now` is impure, `date`/`timestamp`
# default to the task's timezone).

_Func: TypeAlias = Callable[[Any, list[Any], int], Any]
_DEC = Context(prec=400, Emax=999_999, Emin=-999_999)


def _num_arg(fname: str, value: Any, column: int) -> Any:
    if value is None:
        raise ExpressionError(f"arithmetic on null ({fname})", column=column)
    if not is_number(value):
        raise ExpressionError(f"{fname}() needs a number, got {type_name(value)}", column=column)
    return value


def _str_arg(fname: str, value: Any, column: int) -> str:
    if type(value) is not str:
        raise ExpressionError(f"{fname}() needs a string, got {type_name(value)}", column=column)
    return value


def _list_arg(fname: str, value: Any, column: int) -> list[Any] | tuple[Any, ...]:
    if value is None:
        return []
    if type(value) is list or type(value) is tuple:
        return value
    raise ExpressionError(f"{fname}() needs a list, got {type_name(value)}", column=column)


def _f_now(ctx: Any, args: list[Any], column: int) -> Any:
    return time.time_ns() // 1_000_000


def _f_round(ctx: Any, args: list[Any], column: int) -> Any:
    x = _num_arg("round", args[0], column)
    digits = 0
    if len(args) > 1:
        digits = args[1]
        if type(digits) is not int or not -20 <= digits <= 20:
            raise ExpressionError("round() digits must be an integer from -20 to 20", column=column)
    if type(x) is float and not math.isfinite(x):
        return x
    # Half away from zero on the decimal text (2.675 -> 2.68), not binary banker's rounding.
    d = Decimal(repr(x)) if type(x) is float else Decimal(x)
    try:
        q = d.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP, context=_DEC)
    except InvalidOperation:
        return x
    if digits <= 0:
        return int(q)
    return q if isinstance(x, Decimal) else float(q)


def _rounder(fname: str, fn: Callable[[Any], int]) -> _Func:
    def impl(ctx: Any, args: list[Any], column: int) -> Any:
        x = _num_arg(fname, args[0], column)
        try:
            return fn(x)
        except (OverflowError, ValueError):
            raise ExpressionError(f"{fname}() of {x!r}", column=column) from None

    return impl


def _f_abs(ctx: Any, args: list[Any], column: int) -> Any:
    return abs(_num_arg("abs", args[0], column))


def _minmax(fname: str, pick: Callable[[list[Any]], Any]) -> _Func:
    def impl(ctx: Any, args: list[Any], column: int) -> Any:
        values: Any = args
        if len(args) == 1:
            if args[0] is None:
                return None
            values = args[0] if type(args[0]) in (list, tuple) else args
        present = [v for v in values if v is not None]  # like SQL, nulls are skipped
        if not present:
            return None
        if all(is_number(v) for v in present) or all(type(v) is str for v in present):
            return pick(present)
        kinds = sorted({type_name(v) for v in present})
        raise ExpressionError(f"{fname}() cannot mix {' and '.join(kinds)}", column=column)

    return impl


def _numbers(fname: str, value: Any, column: int) -> list[Any]:
    present = [v for v in _list_arg(fname, value, column) if v is not None]
    for v in present:
        if not is_number(v):
            raise ExpressionError(f"{fname}() needs numbers, got {type_name(v)}", column=column)
    if any(type(v) is float for v in present):
        present = [float(v) if isinstance(v, Decimal) else v for v in present]
    return present


def _sum(values: list[Any], column: int) -> Any:
    total: Any = 0
    for v in values:
        total += v
    return int_result(total, column)


def _f_sum(ctx: Any, args: list[Any], column: int) -> Any:
    return _sum(_numbers("sum", args[0], column), column)


def _f_avg(ctx: Any, args: list[Any], column: int) -> Any:
    values = _numbers("avg", args[0], column)
    if not values:
        return None
    return div_nums(_sum(values, column), len(values), column)


def _f_count(ctx: Any, args: list[Any], column: int) -> Any:
    value = args[0]
    if value is None:
        return 0
    if type(value) in (list, tuple) or isinstance(value, Mapping):
        return len(value)
    raise ExpressionError(f"count() needs a list, got {type_name(value)}", column=column)


def _f_lower(ctx: Any, args: list[Any], column: int) -> Any:
    out = _str_arg("lower", args[0], column).lower()
    sized_str(len(out), column)
    return out


def _f_upper(ctx: Any, args: list[Any], column: int) -> Any:
    out = _str_arg("upper", args[0], column).upper()  # "ß" grows to "SS": check after
    sized_str(len(out), column)
    return out


def _f_trim(ctx: Any, args: list[Any], column: int) -> Any:
    return _str_arg("trim", args[0], column).strip()


def _f_join(ctx: Any, args: list[Any], column: int) -> Any:
    items = _list_arg("join", args[0], column)
    sep = _str_arg("join", args[1], column) if len(args) > 1 else ","
    parts = [render(v, column) for v in items]
    sized_str(sum(map(len, parts)) + len(sep) * max(len(parts) - 1, 0), column)
    return sep.join(parts)


def _f_split(ctx: Any, args: list[Any], column: int) -> Any:
    text = _str_arg("split", args[0], column)
    sep = _str_arg("split", args[1], column) if len(args) > 1 else ","
    if sep == "":
        sized_list(len(text), column)
        return list(text)
    return text.split(sep)


def _f_contains(ctx: Any, args: list[Any], column: int) -> Any:
    hay, needle = args[0], args[1]
    if hay is None:
        return False
    if type(hay) is str:
        return (needle if type(needle) is str else render(needle, column)) in hay
    if type(hay) in (list, tuple):
        return any(equals(item, needle) for item in hay)
    if isinstance(hay, Mapping):
        try:
            return needle in hay
        except TypeError:
            return False
    raise ExpressionError(
        f"contains() needs a list, string or object, got {type_name(hay)}", column=column
    )


def _mapping_arg(fname: str, value: Any, column: int) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return value
    raise ExpressionError(f"{fname}() needs an object, got {type_name(value)}", column=column)


def _f_keys(ctx: Any, args: list[Any], column: int) -> Any:
    return list(_mapping_arg("keys", args[0], column).keys())


def _f_values(ctx: Any, args: list[Any], column: int) -> Any:
    return list(_mapping_arg("values", args[0], column).values())


_NUMBER_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _f_number(ctx: Any, args: list[Any], column: int) -> Any:
    value = args[0]
    if type(value) is bool:
        return int(value)
    if is_number(value):
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        return value
    if type(value) is str:
        text = value.strip()
        # Our own grammar, not float(): that would also take "nan", "inf" and "1_000".
        if len(text) <= 400 and _NUMBER_RE.fullmatch(text):
            if any(ch in text for ch in ".eE"):
                result = float(text)
                if math.isfinite(result):
                    return result
            else:
                return check_int(int(text), column)
    raise ExpressionError(
        f"cannot convert {type_name(value)} {value!r:.40} to a number", column=column
    )


def _f_string(ctx: Any, args: list[Any], column: int) -> Any:
    return render(args[0], column)


def _f_json(ctx: Any, args: list[Any], column: int) -> Any:
    return to_json(args[0], column)


def _zone(ctx: Any, name: Any, column: int) -> Any:
    if name is None:
        return ctx.tz
    if type(name) is not str:
        raise ExpressionError(f"timezone must be a string, got {type_name(name)}", column=column)
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ExpressionError(f'unknown timezone "{name:.60}"', column=column) from None


def _f_date(ctx: Any, args: list[Any], column: int) -> Any:
    value = args[0]
    fmt = args[1] if len(args) > 1 and args[1] is not None else "%Y-%m-%d"
    if type(fmt) is not str or len(fmt) > 1000:
        raise ExpressionError(
            "date() format must be a string of at most 1000 characters", column=column
        )
    tz = _zone(ctx, args[2] if len(args) > 2 else None, column)
    try:
        if isinstance(value, datetime):
            moment = value.astimezone(tz) if value.tzinfo else value.replace(tzinfo=tz)
        else:
            ms = _num_arg("date", value, column)
            moment = datetime.fromtimestamp(float(ms) / 1000, tz)
        return moment.strftime(fmt)
    except (OverflowError, OSError, ValueError) as exc:
        raise ExpressionError(f"date() failed: {exc}", column=column) from None


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _f_timestamp(ctx: Any, args: list[Any], column: int) -> Any:
    value = args[0]
    if is_number(value):
        return value
    try:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        elif type(value) is str and len(value) <= 64:
            # Accepts "2026-03-08", "2026-03-08T10:00:00Z", offsets; naive is local time.
            moment = datetime.fromisoformat(value.strip())
        else:
            raise ValueError
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ctx.tz)
        return (moment - _EPOCH) // timedelta(milliseconds=1)
    except (ValueError, OverflowError):
        raise ExpressionError(
            f"timestamp() cannot read {type_name(value)} {value!r:.60} as a date", column=column
        ) from None


# name -> (implementation, min args, max args or None, foldable)
FUNCTIONS: Final[dict[str, tuple[_Func, int, int | None, bool]]] = {
    "now": (_f_now, 0, 0, False),
    "round": (_f_round, 1, 2, True),
    "floor": (_rounder("floor", math.floor), 1, 1, True),
    "ceil": (_rounder("ceil", math.ceil), 1, 1, True),
    "abs": (_f_abs, 1, 1, True),
    "min": (_minmax("min", min), 1, None, True),
    "max": (_minmax("max", max), 1, None, True),
    "sum": (_f_sum, 1, 1, True),
    "count": (_f_count, 1, 1, True),
    "avg": (_f_avg, 1, 1, True),
    "lower": (_f_lower, 1, 1, True),
    "upper": (_f_upper, 1, 1, True),
    "trim": (_f_trim, 1, 1, True),
    "join": (_f_join, 1, 2, True),
    "split": (_f_split, 1, 2, True),
    "contains": (_f_contains, 2, 2, True),
    "keys": (_f_keys, 1, 1, True),
    "values": (_f_values, 1, 1, True),
    "number": (_f_number, 1, 1, True),
    "string": (_f_string, 1, 1, True),
    "json": (_f_json, 1, 1, True),
    "date": (_f_date, 1, 3, False),
    "timestamp": (_f_timestamp, 1, 1, False),
}

FUNCTION_NAMES: Final = frozenset(FUNCTIONS)


def call_node(name: str, args: list[Node], column: int) -> Node:
    impl, lo, hi, foldable = FUNCTIONS[name]
    if len(args) < lo or (hi is not None and len(args) > hi):
        want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        raise ExpressionError(
            f"{name}() takes {want} argument{'s' if want != '1' else ''}, got {len(args)}",
            column=column,
        )
    fns = tuple(a.fn for a in args)
    if len(fns) == 1:
        (f0,) = fns

        def call1(ctx: Any) -> Any:
            return impl(ctx, [f0(ctx)], column)

        return combine(call1, args, column, foldable)

    def call(ctx: Any) -> Any:
        return impl(ctx, [f(ctx) for f in fns], column)

    return combine(call, args, column, foldable)
