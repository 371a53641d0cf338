"""Template and expression language: tokenizer, Pratt parser, and compiler to Python closures."""

from __future__ import annotations

import math
import operator
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from zoneinfo import ZoneInfo

import orjson

from daemon.core.errors import ExpressionError

if TYPE_CHECKING:
    from daemon.engine.context import RunContext

__all__ = [
    "BUILTIN_NAMES",
    "FUNCTION_NAMES",
    "MISSING",
    "Reference",
    "Template",
    "compile_expression",
    "compile_template",
    "compile_value",
    "render",
    "truthy",
]


class _Missing:
    """Marks "no such variable" in `ctx.vars.get(name, MISSING)` (None is a real value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()

BUILTIN_NAMES: Final = frozenset(
    {
        "timestamp",
        "current_date",
        "start_of_day",
        "end_of_day",
        "task",
        "env",
        "error",
        "execution_duration",
    }
)

# --- limits ----------------------------------------------------------------------------------
# Expressions come from task files; these bounds keep a typo or a hostile file from exhausting
# memory, the stack or the CPU. Every size is checked before the big value is allocated.
MAX_STRING: Final = 1_000_000
MAX_LIST: Final = 1_000_000
MAX_INT: Final = 2**63
MAX_DEPTH: Final = 64  # parser nesting and depth of the compiled closure tree
MAX_EXPRESSION: Final = 10_000  # characters between one "{{" and its "}}"
MAX_TEMPLATE: Final = MAX_STRING

# The compiled closures receive the run context; constant folding calls them with None.
_Fn: TypeAlias = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Reference:
    """A root variable name an expression reads, with its 1-based column in the template text."""

    name: str
    column: int


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template: call `evaluate(ctx)` per run; `references` feed `check` warnings.

    `constant` is true only when the source holds no `{{ }}` at all; `evaluate` then returns
    the source itself for scalars and a fresh deep copy for dicts and lists, so a step that
    mutates its value can never change the loaded task definition.
    """

    source: Any
    evaluate: Callable[[RunContext], Any]
    references: tuple[Reference, ...]
    constant: bool


# --- values ----------------------------------------------------------------------------------


def type_name(value: Any) -> str:
    """The user-facing type name of a value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _is_num(value: Any) -> bool:
    t = type(value)
    return t is int or t is float or (t is not bool and isinstance(value, int | float | Decimal))


def truthy(value: Any) -> bool:
    """null, false, 0, "", [] and {} are false; everything else is true (Python's own rule)."""
    return bool(value)


def _copy(value: Any) -> Any:
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


def _json(value: Any, column: int | None = None) -> str:
    try:
        out = orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError subclasses TypeError
        raise ExpressionError(f"cannot serialize value to JSON: {exc}", column=column) from None
    if len(out) > MAX_STRING:
        raise ExpressionError(f"string longer than {MAX_STRING} characters", column=column)
    return out.decode()


def render(value: Any, column: int | None = None) -> str:
    """How a value reads inside text: null is empty, booleans lowercase, containers as JSON."""
    t = type(value)
    if t is str:
        return value
    if value is None:
        return ""
    if t is bool:
        return "true" if value else "false"
    if t is int:
        if -MAX_INT <= value <= MAX_INT:
            return str(value)
        return _render_big_int(value, column)
    if t is float:
        # 3.0 reads "3", as in JSON-minded languages; huge floats keep their exponent form.
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if t is list or t is dict or t is tuple or isinstance(value, Mapping):
        return _json(value, column)
    if isinstance(value, datetime | date):
        return value.isoformat()
    try:
        return str(value)
    except ValueError as exc:  # int subclasses beyond the digit limit, broken __str__
        raise ExpressionError(f"cannot render value: {exc}", column=column) from None


def _render_big_int(value: int, column: int | None) -> str:
    try:
        return str(value)
    except ValueError:  # Python refuses to print ints over 4300 digits
        raise ExpressionError("number too large to render", column=column) from None


def _check_int(value: int, column: int) -> int:
    if -MAX_INT <= value <= MAX_INT:
        return value
    raise ExpressionError("number too large (limit is 2**63)", column=column)


# --- property and index access ---------------------------------------------------------------


def _get_prop(value: Any, name: str, column: int) -> Any:
    """`value.name`: dict key, list pseudo-property or pluck, string length; null stays null."""
    t = type(value)
    if t is dict or (t is not list and isinstance(value, Mapping)):
        found = value.get(name, MISSING)
        if found is MISSING:
            # A record with its own "length" field keeps it; otherwise it is the key count.
            return len(value) if name == "length" else None
        return found
    if value is None:
        return None
    if t is list or t is tuple:
        if name == "length":
            return len(value)
        if name == "first":
            return value[0] if value else None
        if name == "last":
            return value[-1] if value else None
        # Pluck. Dict items take the short path (`length` never gets here: lists answer it).
        return [
            item.get(name) if type(item) is dict else _get_prop(item, name, column)
            for item in value
        ]
    if t is str and name == "length":
        return len(value)
    raise ExpressionError(f'cannot read property "{name}" of {type_name(value)}', column=column)


def _get_index(value: Any, key: Any, column: int) -> Any:
    """`value[key]`: list/string index (negative from the end), dict key; misses are null."""
    if value is None:
        return None
    t = type(value)
    if t is list or t is tuple or t is str:
        if type(key) is float and key.is_integer():
            key = int(key)
        if type(key) is int:
            try:
                return value[key]
            except IndexError:
                return None
        if type(key) is str and t is not str:
            return _get_prop(value, key, column)
        raise ExpressionError(
            f"{type_name(value)} index must be an integer, got {type_name(key)}", column=column
        )
    if isinstance(value, Mapping):
        try:
            found = value.get(key, MISSING)
        except TypeError:
            raise ExpressionError(
                f"cannot use a {type_name(key)} as a key", column=column
            ) from None
        if found is MISSING and type(key) is int:
            found = value.get(str(key), MISSING)  # JSON objects only have string keys
        return None if found is MISSING else found
    raise ExpressionError(f"cannot index {type_name(value)}", column=column)


# --- operators -------------------------------------------------------------------------------


def _num_pair(a: Any, b: Any, op: str, column: int) -> tuple[Any, Any]:
    """Check both operands are numbers; mixes Decimal (from NUMERIC columns) with float."""
    if a is None or b is None:
        raise ExpressionError(f'arithmetic on null ("{op}")', column=column)
    if not _is_num(a) or not _is_num(b):
        raise ExpressionError(
            f'"{op}" needs numbers, got {type_name(a)} and {type_name(b)}', column=column
        )
    if type(a) is float and isinstance(b, Decimal):
        return a, float(b)
    if type(b) is float and isinstance(a, Decimal):
        return float(a), b
    return a, b


def _sized_str(length: int, column: int) -> None:
    if length > MAX_STRING:
        raise ExpressionError(f"string longer than {MAX_STRING} characters", column=column)


def _sized_list(length: int, column: int) -> None:
    if length > MAX_LIST:
        raise ExpressionError(f"list longer than {MAX_LIST} items", column=column)


def _int_result(value: Any, column: int) -> Any:
    if type(value) is int:
        return _check_int(value, column)
    return value


def _add(a: Any, b: Any, column: int) -> Any:
    ta, tb = type(a), type(b)
    if ta is str or tb is str:
        if a is None or b is None:
            raise ExpressionError('arithmetic on null ("+")', column=column)
        sa = a if ta is str else render(a, column)
        sb = b if tb is str else render(b, column)
        _sized_str(len(sa) + len(sb), column)
        return sa + sb
    if (ta is list or ta is tuple) and (tb is list or tb is tuple):
        _sized_list(len(a) + len(b), column)
        return [*a, *b]
    a, b = _num_pair(a, b, "+", column)
    return _int_result(a + b, column)


def _sub(a: Any, b: Any, column: int) -> Any:
    a, b = _num_pair(a, b, "-", column)
    return _int_result(a - b, column)


def _mul(a: Any, b: Any, column: int) -> Any:
    ta, tb = type(a), type(b)
    # Repetition: "ab" * 3, [0] * 3 (either order); the size is checked before allocating.
    if tb is int and (ta is str or ta is list or ta is tuple):
        seq, count = a, b
    elif ta is int and (tb is str or tb is list or tb is tuple):
        seq, count = b, a
    else:
        a, b = _num_pair(a, b, "*", column)
        return _int_result(a * b, column)
    size = len(seq) * max(count, 0)
    if type(seq) is str:
        _sized_str(size, column)
        return seq * count
    _sized_list(size, column)
    return list(seq) * count


def _div_nums(a: Any, b: Any, column: int) -> Any:
    if b == 0:
        raise ExpressionError("division by zero", column=column)
    if type(a) is int and type(b) is int:
        q, r = divmod(a, b)
        return q if r == 0 else a / b  # 10 / 2 is 5, 7 / 2 is 3.5
    try:
        return a / b
    except (OverflowError, InvalidOperation) as exc:
        raise ExpressionError(f"division failed: {exc}", column=column) from None


def _div(a: Any, b: Any, column: int) -> Any:
    a, b = _num_pair(a, b, "/", column)
    return _div_nums(a, b, column)


def _mod(a: Any, b: Any, column: int) -> Any:
    a, b = _num_pair(a, b, "%", column)
    if b == 0:
        raise ExpressionError("division by zero (modulo)", column=column)
    try:
        return a % b  # Python's rule: the result has the divisor's sign
    except (OverflowError, InvalidOperation) as exc:
        raise ExpressionError(f"modulo failed: {exc}", column=column) from None


def _eq(a: Any, b: Any) -> bool:
    if a is b:
        return True
    # true == 1 would be True in Python; booleans only equal booleans here.
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    try:
        return bool(a == b)
    except Exception:  # exotic values from drivers; unequal is the only safe answer
        return False


_CMP: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare(op: str, a: Any, b: Any, column: int) -> bool:
    if a is None or b is None:
        raise ExpressionError(f'comparison with null ("{op}")', column=column)
    fn = _CMP[op]
    if _is_num(a) and _is_num(b):
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


# --- compiled nodes --------------------------------------------------------------------------


class _Node:
    """A compiled subexpression: its closure, and its value when known at load time."""

    __slots__ = ("const", "depth", "fn", "root", "value")

    def __init__(self, fn: _Fn, depth: int, const: bool = False, value: Any = None) -> None:
        self.fn = fn
        self.depth = depth
        self.const = const
        self.value = value
        self.root: tuple[str, int] | None = None  # (name, column) when this is a bare name


def _const(value: Any) -> _Node:
    if type(value) is dict or type(value) is list:

        def fresh(ctx: Any) -> Any:
            return _copy(value)

        return _Node(fresh, 1, True, value)
    return _Node(lambda ctx: value, 1, True, value)


def _combine(fn: _Fn, children: list[_Node], column: int, foldable: bool = True) -> _Node:
    """Wrap a closure over `children`; fold it to a constant when they all are constants."""
    depth = 1 + max((c.depth for c in children), default=0)
    if depth > MAX_DEPTH:
        raise ExpressionError(f"expression nested too deeply (limit {MAX_DEPTH})", column=column)
    if foldable and all(c.const for c in children):
        try:
            return _const(fn(None))
        except Exception:  # noqa: S110 - e.g. 1/0: leave it to fail when (if) it is evaluated
            pass
    return _Node(fn, depth)


def _name_node(name: str, column: int) -> _Node:
    def lookup(ctx: Any) -> Any:
        value = ctx.vars.get(name, MISSING)
        if value is MISSING:
            return _builtin(ctx, name, column)
        return value

    node = _Node(lookup, 1)
    node.root = (name, column)
    return node


def _builtin(ctx: Any, name: str, column: int) -> Any:
    try:
        return ctx.builtin(name)
    except ExpressionError:
        raise ExpressionError(
            f'undefined variable "{name}"', column=column, variable=name
        ) from None


def _prop_node(obj: _Node, name: str, column: int) -> _Node:
    inner = obj.fn
    if obj.root is not None:
        # `name.prop`, the most common shape: one closure instead of two.
        root, root_column = obj.root

        def root_prop(ctx: Any) -> Any:
            value = ctx.vars.get(root, MISSING)
            if value is MISSING:
                value = _builtin(ctx, root, root_column)
            t = type(value)
            if t is dict:
                found = value.get(name, MISSING)
                if found is not MISSING:
                    return found
            elif t is list and name == "length":
                return len(value)
            return _get_prop(value, name, column)

        return _combine(root_prop, [obj], column)

    if name == "length":

        def length(ctx: Any) -> Any:
            value = inner(ctx)
            if type(value) is list:
                return len(value)
            return _get_prop(value, "length", column)

        return _combine(length, [obj], column)

    def prop(ctx: Any) -> Any:
        value = inner(ctx)
        if type(value) is dict:
            found = value.get(name, MISSING)
            if found is not MISSING:
                return found
        return _get_prop(value, name, column)

    return _combine(prop, [obj], column)


def _index_node(obj: _Node, key: _Node, column: int) -> _Node:
    inner = obj.fn
    if key.const:
        k = key.value

        def index_const(ctx: Any) -> Any:
            return _get_index(inner(ctx), k, column)

        return _combine(index_const, [obj, key], column)
    kf = key.fn

    def index(ctx: Any) -> Any:
        return _get_index(inner(ctx), kf(ctx), column)

    return _combine(index, [obj, key], column)


def _binary_node(op: str, left: _Node, right: _Node, column: int) -> _Node:
    lf, rf = left.fn, right.fn
    fn: _Fn
    if op == "+":
        if right.const:
            c = right.value

            def add_const(ctx: Any) -> Any:
                a = lf(ctx)
                if type(a) is int and type(c) is int:
                    r = a + c
                    if -MAX_INT <= r <= MAX_INT:
                        return r
                return _add(a, c, column)

            fn = add_const
        else:

            def add(ctx: Any) -> Any:
                a = lf(ctx)
                b = rf(ctx)
                if type(a) is int and type(b) is int:
                    r = a + b
                    if -MAX_INT <= r <= MAX_INT:
                        return r
                return _add(a, b, column)

            fn = add
    elif op == "-":

        def sub(ctx: Any) -> Any:
            a = lf(ctx)
            b = rf(ctx)
            if type(a) is int and type(b) is int:
                r = a - b
                if -MAX_INT <= r <= MAX_INT:
                    return r
            return _sub(a, b, column)

        fn = sub
    elif op == "*":
        if right.const and type(right.value) is int:
            c = right.value

            def mul_const(ctx: Any) -> Any:
                a = lf(ctx)
                if type(a) is int:
                    r = a * c
                    if -MAX_INT <= r <= MAX_INT:
                        return r
                return _mul(a, c, column)

            fn = mul_const
        else:

            def mul(ctx: Any) -> Any:
                return _mul(lf(ctx), rf(ctx), column)

            fn = mul
    elif op in ("/", "%"):
        impl = _div if op == "/" else _mod

        def arith(ctx: Any) -> Any:
            return impl(lf(ctx), rf(ctx), column)

        fn = arith
    elif op in _CMP:
        cmp = _CMP[op]

        def compare(ctx: Any) -> Any:
            a = lf(ctx)
            b = rf(ctx)
            ta, tb = type(a), type(b)
            if (ta is int or ta is float) and (tb is int or tb is float):
                return cmp(a, b)
            return _compare(op, a, b, column)

        fn = compare
    elif op in ("==", "==="):
        fn = lambda ctx: _eq(lf(ctx), rf(ctx))  # noqa: E731
    elif op in ("!=", "!=="):
        fn = lambda ctx: not _eq(lf(ctx), rf(ctx))  # noqa: E731
    elif op in ("&&", "and"):
        fn = lambda ctx: bool(lf(ctx)) and bool(rf(ctx))  # noqa: E731
    elif op in ("||", "or"):
        fn = lambda ctx: bool(lf(ctx)) or bool(rf(ctx))  # noqa: E731
    elif op == "??":

        def coalesce(ctx: Any) -> Any:
            value = lf(ctx)
            return rf(ctx) if value is None else value

        fn = coalesce
    else:  # pragma: no cover - the parser only hands over the operators above
        raise ExpressionError(f'unknown operator "{op}"', column=column)
    return _combine(fn, [left, right], column)


def _unary_node(op: str, operand: _Node, column: int) -> _Node:
    f = operand.fn
    if op == "-":

        def neg(ctx: Any) -> Any:
            value = f(ctx)
            if value is None:
                raise ExpressionError('arithmetic on null ("-")', column=column)
            if not _is_num(value):
                raise ExpressionError(f'"-" needs a number, got {type_name(value)}', column=column)
            return -value

        return _combine(neg, [operand], column)
    return _combine(lambda ctx: not f(ctx), [operand], column)


def _ternary_node(cond: _Node, then: _Node, other: _Node, column: int) -> _Node:
    if cond.const:  # pick the branch now; the other one may legitimately fail (1/0)
        chosen = then if cond.value else other
        depth = 1 + max(cond.depth, chosen.depth)
        if depth > MAX_DEPTH:
            raise ExpressionError("expression nested too deeply", column=column)
        return chosen
    cf, tf, of = cond.fn, then.fn, other.fn
    return _combine(lambda ctx: tf(ctx) if cf(ctx) else of(ctx), [cond, then, other], column)


def _list_node(items: list[_Node], column: int) -> _Node:
    fns = tuple(item.fn for item in items)
    return _combine(lambda ctx: [f(ctx) for f in fns], items, column)


def _object_node(keys: list[str], values: list[_Node], column: int) -> _Node:
    pairs = tuple(zip(keys, (v.fn for v in values), strict=True))
    return _combine(lambda ctx: {k: f(ctx) for k, f in pairs}, values, column)


# --- functions -------------------------------------------------------------------------------
# Each takes (ctx, args, column). ctx is None while folding, so only functions marked
# foldable below may be folded: they must not read it (`now` is impure, `date`/`timestamp`
# default to the task's timezone).

_Func: TypeAlias = Callable[[Any, list[Any], int], Any]
_DEC = Context(prec=400, Emax=999_999, Emin=-999_999)


def _num_arg(fname: str, value: Any, column: int) -> Any:
    if value is None:
        raise ExpressionError(f"arithmetic on null ({fname})", column=column)
    if not _is_num(value):
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
        if all(_is_num(v) for v in present) or all(type(v) is str for v in present):
            return pick(present)
        kinds = sorted({type_name(v) for v in present})
        raise ExpressionError(f"{fname}() cannot mix {' and '.join(kinds)}", column=column)

    return impl


def _numbers(fname: str, value: Any, column: int) -> list[Any]:
    present = [v for v in _list_arg(fname, value, column) if v is not None]
    for v in present:
        if not _is_num(v):
            raise ExpressionError(f"{fname}() needs numbers, got {type_name(v)}", column=column)
    if any(type(v) is float for v in present):
        present = [float(v) if isinstance(v, Decimal) else v for v in present]
    return present


def _sum(values: list[Any], column: int) -> Any:
    total: Any = 0
    for v in values:
        total += v
    return _int_result(total, column)


def _f_sum(ctx: Any, args: list[Any], column: int) -> Any:
    return _sum(_numbers("sum", args[0], column), column)


def _f_avg(ctx: Any, args: list[Any], column: int) -> Any:
    values = _numbers("avg", args[0], column)
    if not values:
        return None
    return _div_nums(_sum(values, column), len(values), column)


def _f_count(ctx: Any, args: list[Any], column: int) -> Any:
    value = args[0]
    if value is None:
        return 0
    if type(value) in (list, tuple) or isinstance(value, Mapping):
        return len(value)
    raise ExpressionError(f"count() needs a list, got {type_name(value)}", column=column)


def _f_lower(ctx: Any, args: list[Any], column: int) -> Any:
    out = _str_arg("lower", args[0], column).lower()
    _sized_str(len(out), column)
    return out


def _f_upper(ctx: Any, args: list[Any], column: int) -> Any:
    out = _str_arg("upper", args[0], column).upper()  # "ß" grows to "SS": check after
    _sized_str(len(out), column)
    return out


def _f_trim(ctx: Any, args: list[Any], column: int) -> Any:
    return _str_arg("trim", args[0], column).strip()


def _f_join(ctx: Any, args: list[Any], column: int) -> Any:
    items = _list_arg("join", args[0], column)
    sep = _str_arg("join", args[1], column) if len(args) > 1 else ","
    parts = [render(v, column) for v in items]
    _sized_str(sum(map(len, parts)) + len(sep) * max(len(parts) - 1, 0), column)
    return sep.join(parts)


def _f_split(ctx: Any, args: list[Any], column: int) -> Any:
    text = _str_arg("split", args[0], column)
    sep = _str_arg("split", args[1], column) if len(args) > 1 else ","
    if sep == "":
        _sized_list(len(text), column)
        return list(text)
    return text.split(sep)


def _f_contains(ctx: Any, args: list[Any], column: int) -> Any:
    hay, needle = args[0], args[1]
    if hay is None:
        return False
    if type(hay) is str:
        return (needle if type(needle) is str else render(needle, column)) in hay
    if type(hay) in (list, tuple):
        return any(_eq(item, needle) for item in hay)
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
    if _is_num(value):
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
                return _check_int(int(text), column)
    raise ExpressionError(
        f"cannot convert {type_name(value)} {value!r:.40} to a number", column=column
    )


def _f_string(ctx: Any, args: list[Any], column: int) -> Any:
    return render(args[0], column)


def _f_json(ctx: Any, args: list[Any], column: int) -> Any:
    return _json(args[0], column)


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
    if _is_num(value):
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
_FUNCTIONS: Final[dict[str, tuple[_Func, int, int | None, bool]]] = {
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

FUNCTION_NAMES: Final = frozenset(_FUNCTIONS)


def _call_node(name: str, args: list[_Node], column: int) -> _Node:
    impl, lo, hi, foldable = _FUNCTIONS[name]
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

        return _combine(call1, args, column, foldable)

    def call(ctx: Any) -> Any:
        return impl(ctx, [f(ctx) for f in fns], column)

    return _combine(call, args, column, foldable)


# --- tokenizer -------------------------------------------------------------------------------

_Tok: TypeAlias = tuple[str, Any, int]  # (kind, value, offset in the text); kinds below
_NUM_TOKEN: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NAME_TOKEN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS2: Final = frozenset({"??", "||", "&&", "==", "!=", "<=", ">="})
_OPS1: Final = frozenset("<>+-*/%!?:()[]{},.")
_ESCAPES: Final = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "/": "/",
}


def _tokenize(text: str, start: int, in_template: bool) -> tuple[list[_Tok], int]:
    """Tokens from `start` up to the closing "}}" (in a template) or the end of the text.

    Returns the tokens (ending with an "end" token) and the offset just past them. Inside a
    template, "}}" closes the expression only outside object literals, so `{{ {"a": {}} }}`
    works; a "}}" inside a string literal is part of the string.
    """
    tokens: list[_Tok] = []
    n = len(text)
    limit = start + MAX_EXPRESSION
    i = start
    depth = 0
    while True:
        if i > limit:
            raise ExpressionError(
                f"expression longer than {MAX_EXPRESSION} characters", column=start + 1
            )
        if i >= n:
            if in_template:
                raise ExpressionError('unterminated "{{" (missing "}}")', column=start - 1)
            tokens.append(("end", None, i))
            return tokens, i
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if in_template and depth == 0 and ch == "}" and text.startswith("}}", i):
            tokens.append(("end", None, i))
            return tokens, i + 2
        if "0" <= ch <= "9":
            m = _NUM_TOKEN.match(text, i)
            assert m is not None
            tokens.append(("num", _number_literal(m.group(), i), i))
            i = m.end()
        elif ch in "'\"":
            value, end = _string_literal(text, i)
            tokens.append(("str", value, i))
            i = end
        elif ch == "_" or ("a" <= ch <= "z") or ("A" <= ch <= "Z"):
            m = _NAME_TOKEN.match(text, i)
            assert m is not None
            name = m.group()
            if name.startswith("__"):
                raise ExpressionError(
                    f'names starting with "__" are not allowed: {name}', column=i + 1
                )
            tokens.append(("name", name, i))
            i = m.end()
        elif text.startswith(("===", "!=="), i):
            tokens.append(("op", text[i : i + 2], i))  # JavaScript habits: same as == and !=
            i += 3
        elif text[i : i + 2] in _OPS2:
            tokens.append(("op", text[i : i + 2], i))
            i += 2
        elif ch in _OPS1:
            if ch == "{":
                depth += 1
            elif ch == "}" and depth > 0:
                depth -= 1
            tokens.append(("op", ch, i))
            i += 1
        elif ch == "=":
            raise ExpressionError('unexpected "=" (use "==" to compare)', column=i + 1)
        else:
            raise ExpressionError(f"unexpected character {ch!r}", column=i + 1)


def _number_literal(digits: str, offset: int) -> int | float:
    if "." in digits or "e" in digits or "E" in digits:
        value = float(digits)
        if not math.isfinite(value):
            raise ExpressionError(f"number out of range: {digits:.40}", column=offset + 1)
        return value
    if len(digits) > 19 or int(digits) > MAX_INT:
        raise ExpressionError(f"number too large: {digits:.40}", column=offset + 1)
    return int(digits)


def _string_literal(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= n:
                break
            esc = text[i + 1]
            if esc == "u":
                hexdigits = text[i + 2 : i + 6]
                if len(hexdigits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in hexdigits):
                    raise ExpressionError(r"bad \u escape (need 4 hex digits)", column=i + 1)
                out.append(chr(int(hexdigits, 16)))
                i += 6
                continue
            if esc not in _ESCAPES:
                raise ExpressionError(f"unknown escape \\{esc}", column=i + 1)
            out.append(_ESCAPES[esc])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ExpressionError("unterminated string", column=start + 1)


# --- parser ----------------------------------------------------------------------------------

# Binding powers, low to high: ternary, ??, or, and, equality, ordering, + -, * / %, unary,
# postfix (. [ ]). Unary operators parse their operand at _UNARY so `-a.b * c` is (-(a.b)) * c.
_BINARY_BP: Final = {
    "??": 2,
    "||": 3,
    "or": 3,
    "&&": 4,
    "and": 4,
    "==": 5,
    "!=": 5,
    "<": 6,
    "<=": 6,
    ">": 6,
    ">=": 6,
    "+": 7,
    "-": 7,
    "*": 8,
    "/": 8,
    "%": 8,
}
_TERNARY: Final = 1
_UNARY: Final = 9
_POSTFIX: Final = 10


def _describe(tok: _Tok) -> str:
    kind, value, _ = tok
    if kind == "end":
        return "end of expression"
    if kind == "str":
        return "string"
    return f'"{value}"'


class _Parser:
    __slots__ = ("depth", "pos", "refs", "tokens")

    def __init__(self, tokens: list[_Tok]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.refs: list[Reference] = []

    def parse(self) -> _Node:
        if self.tokens[0][0] == "end":
            raise ExpressionError("empty expression", column=self.tokens[0][2] + 1)
        node = self.expr(0)
        tok = self.tokens[self.pos]
        if tok[0] != "end":
            if tok[1] == "(":
                raise ExpressionError("only named functions can be called", column=tok[2] + 1)
            raise ExpressionError(f"unexpected {_describe(tok)}", column=tok[2] + 1)
        return node

    def advance(self) -> _Tok:
        tok = self.tokens[self.pos]
        if tok[0] != "end":
            self.pos += 1
        return tok

    def expect(self, op: str) -> _Tok:
        tok = self.tokens[self.pos]
        if tok[0] != "op" or tok[1] != op:
            raise ExpressionError(f'expected "{op}", found {_describe(tok)}', column=tok[2] + 1)
        self.pos += 1
        return tok

    def at_op(self, op: str) -> bool:
        tok = self.tokens[self.pos]
        return tok[0] == "op" and tok[1] == op

    def expr(self, rbp: int) -> _Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            tok = self.tokens[self.pos]
            raise ExpressionError(
                f"expression nested too deeply (limit {MAX_DEPTH})", column=tok[2] + 1
            )
        left = self.prefix()
        while True:
            tok = self.tokens[self.pos]
            kind, value, offset = tok
            if kind == "op" and value in (".", "["):
                self.pos += 1
                left = self.postfix(value, left, offset)
                continue
            if kind == "op" and value == "?":
                if rbp >= _TERNARY:
                    break
                self.pos += 1
                then = self.expr(0)
                self.expect(":")
                other = self.expr(0)  # right-associative: a ? b : c ? d : e
                left = _ternary_node(left, then, other, offset + 1)
                continue
            if kind in ("op", "name") and value in _BINARY_BP:
                if kind == "name" and value not in ("and", "or"):
                    break
                bp = _BINARY_BP[value]
                if bp <= rbp:
                    break
                self.pos += 1
                right = self.expr(bp)
                left = _binary_node(value, left, right, offset + 1)
                continue
            break
        self.depth -= 1
        return left

    def postfix(self, op: str, left: _Node, offset: int) -> _Node:
        if op == ".":
            tok = self.tokens[self.pos]
            if tok[0] != "name":
                raise ExpressionError(
                    f'expected a property name after ".", found {_describe(tok)}',
                    column=tok[2] + 1,
                )
            self.pos += 1
            return _prop_node(left, tok[1], tok[2] + 1)
        key = self.expr(0)
        self.expect("]")
        return _index_node(left, key, offset + 1)

    def prefix(self) -> _Node:
        tok = self.advance()
        kind, value, offset = tok
        column = offset + 1
        if kind in ("num", "str"):
            return _const(value)
        if kind == "name":
            if value == "true":
                return _const(True)
            if value == "false":
                return _const(False)
            if value == "null":
                return _const(None)
            if value == "not":
                return _unary_node("!", self.expr(_UNARY), column)
            if value in ("and", "or"):
                raise ExpressionError(f'unexpected "{value}"', column=column)
            if self.at_op("("):
                return self.call(value, column)
            self.refs.append(Reference(value, column))
            return _name_node(value, column)
        if kind == "op":
            if value == "(":
                inner = self.expr(0)
                self.expect(")")
                return inner
            if value in ("-", "!"):
                operand = self.expr(_UNARY)
                return _unary_node(value, operand, column)
            if value == "[":
                return self.list_literal(column)
            if value == "{":
                return self.object_literal(column)
        raise ExpressionError(f"unexpected {_describe(tok)}", column=column)

    def call(self, name: str, column: int) -> _Node:
        if name not in _FUNCTIONS:
            raise ExpressionError(f'unknown function "{name}"', column=column)
        self.expect("(")
        args: list[_Node] = []
        while not self.at_op(")"):
            args.append(self.expr(0))
            if not self.at_op(")"):
                self.expect(",")
        self.expect(")")
        return _call_node(name, args, column)

    def list_literal(self, column: int) -> _Node:
        items: list[_Node] = []
        while not self.at_op("]"):
            items.append(self.expr(0))
            if not self.at_op("]"):
                self.expect(",")  # a trailing comma is fine: [1, 2,]
        self.expect("]")
        return _list_node(items, column)

    def object_literal(self, column: int) -> _Node:
        keys: list[str] = []
        values: list[_Node] = []
        while not self.at_op("}"):
            tok = self.advance()
            if tok[0] not in ("str", "name"):
                raise ExpressionError(
                    f"expected an object key, found {_describe(tok)}", column=tok[2] + 1
                )
            keys.append(tok[1])
            self.expect(":")
            values.append(self.expr(0))
            if not self.at_op("}"):
                self.expect(",")
        self.expect("}")
        return _object_node(keys, values, column)


# --- public entry points ---------------------------------------------------------------------


def _parse(text: str, start: int, in_template: bool) -> tuple[_Node, list[Reference], int]:
    tokens, end = _tokenize(text, start, in_template)
    parser = _Parser(tokens)
    return parser.parse(), parser.refs, end


def _constant(value: Any) -> Template:
    node = _const(value)
    return Template(source=value, evaluate=node.fn, references=(), constant=True)


def compile_expression(expr: str) -> Template:
    """Compile a bare expression (no braces), e.g. a Conditional's `condition` field."""
    if not isinstance(expr, str):
        raise ExpressionError(f"expression must be a string, got {type_name(expr)}")
    node, refs, _ = _parse(expr, 0, in_template=False)
    return Template(source=expr, evaluate=node.fn, references=tuple(refs), constant=False)


def compile_template(text: str) -> Template:
    """Compile a string that may hold `{{ expr }}` parts.

    Exactly one `{{ }}` spanning the whole string yields the typed value; otherwise the parts
    render into a string (see `render`). A "}}" outside an expression is plain text.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"template must be a string, got {type_name(text)}")
    start = text.find("{{")
    if start < 0:
        return _constant(text)
    if len(text) > MAX_TEMPLATE:
        raise ExpressionError(f"template longer than {MAX_TEMPLATE} characters", column=1)
    # Alternating literal text and expression nodes.
    pieces: list[str | _Node] = []
    refs: list[Reference] = []
    pos = 0
    while start >= 0:
        if start > pos:
            pieces.append(text[pos:start])
        node, node_refs, pos = _parse(text, start + 2, in_template=True)
        pieces.append(node)
        refs.extend(node_refs)
        start = text.find("{{", pos)
    if pos < len(text):
        pieces.append(text[pos:])

    if len(pieces) == 1:
        only = pieces[0]
        assert isinstance(only, _Node)
        return Template(source=text, evaluate=only.fn, references=tuple(refs), constant=False)
    return Template(
        source=text, evaluate=_text_evaluator(pieces), references=tuple(refs), constant=False
    )


def template_parts(text: str) -> list[str | Callable[[Any], Any]]:
    """A template's literal text and compiled `{{ }}` parts, in order: for callers that treat
    each inserted value by where it lands (URL encoding per component)."""
    parts: list[str | Callable[[Any], Any]] = []
    pos = 0
    start = text.find("{{")
    while start >= 0:
        if start > pos:
            parts.append(text[pos:start])
        node, _refs, pos = _parse(text, start + 2, in_template=True)
        parts.append(node.fn)
        start = text.find("{{", pos)
    if pos < len(text):
        parts.append(text[pos:])
    return parts


def _text_evaluator(pieces: list[str | _Node]) -> Callable[[Any], Any]:
    # Render constants now and merge neighbouring text, leaving only the dynamic parts.
    merged: list[str | _Fn] = []
    pending: list[str] = []  # joined once per run of text: "+=" would be quadratic
    for piece in pieces:
        if isinstance(piece, _Node) and not piece.const:
            if pending:
                merged.append("".join(pending))
                pending = []
            merged.append(piece.fn)
        else:
            pending.append(render(piece.value) if isinstance(piece, _Node) else piece)
    if pending:
        merged.append("".join(pending))
    if len(merged) == 1 and isinstance(merged[0], str):
        result = merged[0]
        return lambda ctx: result
    # Shape it as head + (value, text) pairs, then specialize the common one- and two-value
    # cases: they avoid a list and a join per evaluation.
    first = merged[0]
    head = ""
    if isinstance(first, str):
        head = first
        merged.pop(0)
    pairs: list[tuple[_Fn, str]] = []
    for item in merged:
        if isinstance(item, str):
            pairs[-1] = (pairs[-1][0], item)
        else:
            pairs.append((item, ""))
    fixed = len(head) + sum(len(text) for _, text in pairs)
    room = MAX_STRING - fixed
    if len(pairs) == 1:
        ((f1, t1),) = pairs

        def render_one(ctx: Any) -> str:
            v = f1(ctx)
            if type(v) is not str:
                v = render(v)
            if len(v) > room:
                _sized_str(fixed + len(v), 1)
            return head + v + t1

        return render_one
    if len(pairs) == 2:
        (f1, t1), (f2, t2) = pairs

        def render_two(ctx: Any) -> str:
            v1 = f1(ctx)
            if type(v1) is not str:
                v1 = render(v1)
            v2 = f2(ctx)
            if type(v2) is not str:
                v2 = render(v2)
            if len(v1) + len(v2) > room:
                _sized_str(fixed + len(v1) + len(v2), 1)
            return head + v1 + t1 + v2 + t2

        return render_two
    parts = (head, *merged)

    def render_text(ctx: Any) -> str:
        out = [p if type(p) is str else render(p(ctx)) for p in parts]  # type: ignore[operator]
        _sized_str(sum(map(len, out)), 1)
        return "".join(out)

    return render_text


def compile_value(value: Any) -> Template:
    """Compile a field value: strings are templates, dicts and lists are walked (keys stay
    literal), anything else is a constant."""
    if isinstance(value, str):
        return compile_template(value)
    if isinstance(value, dict):
        items = [(k, compile_value(v)) for k, v in value.items()]
        if all(t.constant for _, t in items):
            return _constant(value)
        pairs = tuple((k, t.evaluate) for k, t in items)
        refs = tuple(r for _, t in items for r in t.references)
        return Template(
            source=value,
            evaluate=lambda ctx: {k: f(ctx) for k, f in pairs},
            references=refs,
            constant=False,
        )
    if isinstance(value, list | tuple):
        compiled = [compile_value(v) for v in value]
        if all(t.constant for t in compiled):
            return _constant(value if isinstance(value, list) else list(value))
        fns = tuple(t.evaluate for t in compiled)
        return Template(
            source=value,
            evaluate=lambda ctx: [f(ctx) for f in fns],
            references=tuple(r for t in compiled for r in t.references),
            constant=False,
        )
    return _constant(value)
