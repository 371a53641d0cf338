"""Compiled expression nodes: closures over their children, folded when constant."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeAlias
from zoneinfo import ZoneInfo

from daemon.core.errors import ExpressionError
from daemon.core.text import type_name
from daemon.expr.operators import (
    COMPARISONS,
    compare,
    equals,
    op_add,
    op_div,
    op_mod,
    op_mul,
    op_sub,
)
from daemon.expr.values import (
    MAX_DEPTH,
    MAX_INT,
    MISSING,
    Fn,
    copy_value,
    get_index,
    get_prop,
    is_number,
    truthy,
)

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


class Scope(Protocol):
    """What compiled expressions read from a run: its variables, the built-ins, its timezone.
    The engine's run context implements it; constant folding passes None instead."""

    vars: Mapping[str, Any]
    tz: ZoneInfo

    def builtin(self, name: str) -> Any:
        """A built-in name's value; ExpressionError when there is no such name."""
        ...


# A compiled template or expression: called with the run's scope, returns the value.
Evaluator: TypeAlias = Callable[[Any], Any]


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
    evaluate: Evaluator
    references: tuple[Reference, ...]
    constant: bool


# --- compiled nodes --------------------------------------------------------------------------


class Node:
    """A compiled subexpression: its closure, and its value when known at load time."""

    __slots__ = ("const", "depth", "fn", "root", "value")

    def __init__(self, fn: Fn, depth: int, const: bool = False, value: Any = None) -> None:
        self.fn = fn
        self.depth = depth
        self.const = const
        self.value = value
        self.root: tuple[str, int] | None = None  # (name, column) when this is a bare name


def const_node(value: Any) -> Node:
    if type(value) is dict or type(value) is list:

        def fresh(ctx: Any) -> Any:
            return copy_value(value)

        return Node(fresh, 1, True, value)
    return Node(lambda ctx: value, 1, True, value)


def combine(fn: Fn, children: list[Node], column: int, foldable: bool = True) -> Node:
    """Wrap a closure over `children`; fold it to a constant when they all are constants."""
    depth = 1 + max((c.depth for c in children), default=0)
    if depth > MAX_DEPTH:
        raise ExpressionError(f"expression nested too deeply (limit {MAX_DEPTH})", column=column)
    if foldable and all(c.const for c in children):
        try:
            return const_node(fn(None))
        except Exception:  # noqa: S110 - e.g. 1/0: leave it to fail when (if) it is evaluated
            pass
    return Node(fn, depth)


def name_node(name: str, column: int) -> Node:
    def lookup(ctx: Any) -> Any:
        value = ctx.vars.get(name, MISSING)
        if value is MISSING:
            return _builtin(ctx, name, column)
        return value

    node = Node(lookup, 1)
    node.root = (name, column)
    return node


def _builtin(ctx: Any, name: str, column: int) -> Any:
    try:
        return ctx.builtin(name)
    except ExpressionError:
        raise ExpressionError(
            f'undefined variable "{name}"', column=column, variable=name
        ) from None


def prop_node(obj: Node, name: str, column: int) -> Node:
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
            return get_prop(value, name, column)

        return combine(root_prop, [obj], column)

    if name == "length":

        def length(ctx: Any) -> Any:
            value = inner(ctx)
            if type(value) is list:
                return len(value)
            return get_prop(value, "length", column)

        return combine(length, [obj], column)

    def prop(ctx: Any) -> Any:
        value = inner(ctx)
        if type(value) is dict:
            found = value.get(name, MISSING)
            if found is not MISSING:
                return found
        return get_prop(value, name, column)

    return combine(prop, [obj], column)


def index_node(obj: Node, key: Node, column: int) -> Node:
    inner = obj.fn
    if key.const:
        k = key.value

        def index_const(ctx: Any) -> Any:
            return get_index(inner(ctx), k, column)

        return combine(index_const, [obj, key], column)
    kf = key.fn

    def index(ctx: Any) -> Any:
        return get_index(inner(ctx), kf(ctx), column)

    return combine(index, [obj, key], column)


def binary_node(op: str, left: Node, right: Node, column: int) -> Node:
    lf, rf = left.fn, right.fn
    fn: Fn
    if op == "+":
        if right.const:
            c = right.value

            def add_const(ctx: Any) -> Any:
                a = lf(ctx)
                if type(a) is int and type(c) is int:
                    r = a + c
                    if -MAX_INT <= r <= MAX_INT:
                        return r
                return op_add(a, c, column)

            fn = add_const
        else:

            def add(ctx: Any) -> Any:
                a = lf(ctx)
                b = rf(ctx)
                if type(a) is int and type(b) is int:
                    r = a + b
                    if -MAX_INT <= r <= MAX_INT:
                        return r
                return op_add(a, b, column)

            fn = add
    elif op == "-":

        def sub(ctx: Any) -> Any:
            a = lf(ctx)
            b = rf(ctx)
            if type(a) is int and type(b) is int:
                r = a - b
                if -MAX_INT <= r <= MAX_INT:
                    return r
            return op_sub(a, b, column)

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
                return op_mul(a, c, column)

            fn = mul_const
        else:

            def mul(ctx: Any) -> Any:
                return op_mul(lf(ctx), rf(ctx), column)

            fn = mul
    elif op in ("/", "%"):
        impl = op_div if op == "/" else op_mod

        def arith(ctx: Any) -> Any:
            return impl(lf(ctx), rf(ctx), column)

        fn = arith
    elif op in COMPARISONS:
        cmp = COMPARISONS[op]

        def ordered(ctx: Any) -> Any:
            a = lf(ctx)
            b = rf(ctx)
            ta, tb = type(a), type(b)
            if (ta is int or ta is float) and (tb is int or tb is float):
                return cmp(a, b)
            return compare(op, a, b, column)

        fn = ordered
    elif op in ("==", "==="):
        fn = lambda ctx: equals(lf(ctx), rf(ctx))  # noqa: E731
    elif op in ("!=", "!=="):
        fn = lambda ctx: not equals(lf(ctx), rf(ctx))  # noqa: E731
    elif op in ("&&", "and"):
        fn = lambda ctx: truthy(lf(ctx)) and truthy(rf(ctx))  # noqa: E731
    elif op in ("||", "or"):
        fn = lambda ctx: truthy(lf(ctx)) or truthy(rf(ctx))  # noqa: E731
    elif op == "??":

        def coalesce(ctx: Any) -> Any:
            value = lf(ctx)
            return rf(ctx) if value is None else value

        fn = coalesce
    else:  # pragma: no cover - the parser only hands over the operators above
        raise ExpressionError(f'unknown operator "{op}"', column=column)
    return combine(fn, [left, right], column)


def unary_node(op: str, operand: Node, column: int) -> Node:
    f = operand.fn
    if op == "-":

        def neg(ctx: Any) -> Any:
            value = f(ctx)
            if value is None:
                raise ExpressionError('arithmetic on null ("-")', column=column)
            if not is_number(value):
                raise ExpressionError(f'"-" needs a number, got {type_name(value)}', column=column)
            return -value

        return combine(neg, [operand], column)
    return combine(lambda ctx: not truthy(f(ctx)), [operand], column)


def ternary_node(cond: Node, then: Node, other: Node, column: int) -> Node:
    if cond.const:  # pick the branch now; the other one may legitimately fail (1/0)
        chosen = then if truthy(cond.value) else other
        depth = 1 + max(cond.depth, chosen.depth)
        if depth > MAX_DEPTH:
            raise ExpressionError("expression nested too deeply", column=column)
        return chosen
    cf, tf, of = cond.fn, then.fn, other.fn
    return combine(lambda ctx: tf(ctx) if truthy(cf(ctx)) else of(ctx), [cond, then, other], column)


def list_node(items: list[Node], column: int) -> Node:
    fns = tuple(item.fn for item in items)
    return combine(lambda ctx: [f(ctx) for f in fns], items, column)


def object_node(keys: list[str], values: list[Node], column: int) -> Node:
    pairs = tuple(zip(keys, (v.fn for v in values), strict=True))
    return combine(lambda ctx: {k: f(ctx) for k, f in pairs}, values, column)
