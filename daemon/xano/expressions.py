"""XanoScript expressions → the engine's compiled closures (daemon.expr nodes), at load time.

The value side of Xano's language (XANOSCRIPT.md §3) on the same node builders `{{ }}`
templates use, with Xano's semantics where they differ:

- `==`/`!=` compare loosely as PHP 8 does, `===`/`!==` strictly; `< <= > >=` by PHP's `<=>`.
- Arithmetic juggles like PHP (numeric text is a number, null is 0; `7 / 2` is 3.5, `6 / 3`
  is 2); `+` with a text operand joins as text (real exports, §5.3); `~` joins as text.
- Truthiness is PHP's (`"0"` is false); `||` returns its first truthy operand (§6.24), `&&`
  a boolean; `??` replaces only null.
- A missing key reads null; reading a key of null is an error (§6.26); a key read on a list
  maps over it and flattens (§3.5 auto-flattening); `[cond]` keeps the matching elements.
- Filters call `daemon.expr.filters`; `$$`/`$this`, `$index`, `$parent` and (in reduce)
  `$result` are bound inside a higher-order filter's argument. Pure filters over constants are
  folded at load time.
- `$error` is Xano's `{code, name, message, result}`; `$env` the daemon's environment (values
  masked as secrets); `$input` a function's input (empty in a task); `$auth` null.

What has no meaning outside a db query (`$db.t.col`, `like`, `between`, …), anchors (`$0`) and
`path = value` assignment are reported as `XanoCompileError` with the expression's position.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from functools import lru_cache
from typing import Any, Final

from daemon.core.errors import ExpressionError
from daemon.expr.filters import (
    FILTERS,
    FilterDef,
    php_truthy,
    strict_equals,
    xano_type,
)
from daemon.expr.nodes import (
    Node,
    Reference,
    Template,
    combine,
    const_node,
    name_node,
)
from daemon.expr.pipes import ElemScope, FilterEnv, element_node, filter_call, lookup
from daemon.expr.values import MISSING, copy_value
from daemon.xano import nodes as x
from daemon.xano.values import (
    DIV,
    MOD,
    MULTIPLY,
    SUB,
    SUBTRACT,
    add,
    concat,
    get_field,
    get_index,
    loose_eq,
    member,
    ordered,
    value_range,
    xano_error,
)


class XanoCompileError(Exception):
    """Something in a `.xs` file that cannot run here; `line`/`column` are 1-based."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def _at(node: x.Node, message: str) -> XanoCompileError:
    return XanoCompileError(message, node.line, node.column)


@dataclass(slots=True)
class Scope:
    """What an expression may refer to where it is compiled."""

    function: bool = False  # in a function: `$input` is its input; in a task: empty
    elem: frozenset[str] = frozenset()  # names a higher-order filter binds here ($index …)
    refs: list[Reference] = field(default_factory=list)

    def inner(self, names: frozenset[str]) -> Scope:
        return Scope(self.function, names, self.refs)


# --- run-time values ---------------------------------------------------------------------------


def _evaluate_text(text: str, scope: Any) -> Any:
    """`to_expr`: the text compiled as a XanoScript expression (cached), then evaluated."""
    return _compile_text(text).fn(scope)


def filter_env(scope: Any) -> FilterEnv:
    """The filter context of a XanoScript value: UTC unless a filter says otherwise."""
    return FilterEnv(scope, _evaluate_text, UTC)


@lru_cache(maxsize=256)
def _compile_text(text: str) -> Node:
    from daemon.xano.errors import XanoSyntaxError
    from daemon.xano.parser import parse_expression

    try:
        return compile_expr(parse_expression(text, "<to_expr>"), Scope())
    except (XanoSyntaxError, XanoCompileError) as exc:
        raise ExpressionError(f'filter "to_expr": {exc}') from None


def now_ms(ctx: Any = None) -> int:
    return time.time_ns() // 1_000_000


# Codes `$error.code` shows for errors that carry none of their own.
# --- compiling -------------------------------------------------------------------------------


def compile_expr(expr: x.Expr, scope: Scope) -> Node:
    """Compile one XanoScript expression to an engine node."""
    fn = _COMPILERS.get(type(expr))
    if fn is None:
        raise _at(expr, f"{type(expr).__name__} is not a value here")
    return fn(expr, scope)


def to_template(expr: x.Expr, scope: Scope) -> Template:
    scope_refs = len(scope.refs)
    node = compile_expr(expr, scope)
    refs = tuple(scope.refs[scope_refs:])
    return Template(source=expr.dump(), evaluate=node.fn, references=refs, constant=node.const)


def to_condition(expr: x.Expr, scope: Scope) -> Template:
    """A condition (if, while, precondition): the expression's PHP truthiness."""
    scope_refs = len(scope.refs)
    node = compile_expr(expr, scope)
    inner = node.fn
    bare = expr.expr if isinstance(expr, x.Backtick) else expr
    if isinstance(bare, x.Binary | x.Unary) and bare.op in _BOOLEAN_OPS:
        cond = node  # already a boolean: no second truthiness pass
    else:
        cond = combine(lambda ctx: php_truthy(inner(ctx)), [node], expr.column)
    refs = tuple(scope.refs[scope_refs:])
    return Template(source=expr.dump(), evaluate=cond.fn, references=refs, constant=cond.const)


def to_field(expr: x.Expr, scope: Scope) -> Any:
    """A step field's value: object and array literals as dicts and lists (so a step can see
    their keys at load time), other constants as plain values, the rest as Templates."""
    if isinstance(expr, x.Backtick):
        return to_field(expr.expr, scope)
    if isinstance(expr, x.ObjectLit) and all(isinstance(e, x.Entry) for e in expr.entries):
        return {e.key: to_field(e.value, scope) for e in expr.entries if isinstance(e, x.Entry)}
    if isinstance(expr, x.ArrayLit) and not any(isinstance(i, x.Spread) for i in expr.items):
        return [to_field(item, scope) for item in expr.items]
    tpl = to_template(expr, scope)
    if tpl.constant:
        value = tpl.evaluate(None)
        # A literal "{{ }}" must not be read as a JSON template: it stays a Template.
        if not (type(value) is str and "{{" in value) and not isinstance(value, dict | list):
            return value
    return tpl


def _literal(expr: Any, scope: Scope) -> Node:
    return const_node(expr.value)


def _decimal(expr: x.DecimalLit, scope: Scope) -> Node:
    return const_node(float(expr.value))


def _null(expr: x.NullLit, scope: Scope) -> Node:
    return const_node(None)


def _now(expr: x.NowLit, scope: Scope) -> Node:
    return Node(now_ms, 1)  # per evaluation (§6.29), never folded


def _ident(expr: x.Ident, scope: Scope) -> Node:
    raise _at(expr, f'"{expr.name}" is not a value (a variable is written "${expr.name}")')


def _var(expr: x.Var, scope: Scope) -> Node:
    name = expr.name
    if name in scope.elem:
        return element_node(name)
    if name == "error":
        return Node(lambda ctx: xano_error(ctx.builtin("error")), 1)
    scope.refs.append(Reference(name, expr.column))
    return name_node(name, expr.column)


def _special(expr: x.Special, scope: Scope) -> Node:
    name = expr.name
    if name == "this":
        if not scope.elem:
            raise _at(expr, "$$ / $this only means something inside a filter like map or filter")
        return element_node("this")
    if name == "env":
        return Node(lambda ctx: ctx.builtin("env"), 1)
    if name == "auth":
        return const_node(None)  # tasks run with no authenticated user (§1.4)
    if name == "input":
        if not scope.function:
            return const_node({})  # a task has no input (§1.4)
        scope.refs.append(Reference("input", expr.column))
        return name_node("input", expr.column)
    if name == "var":
        return Node(lambda ctx: dict(ctx.vars), 1)
    raise _at(expr, f"${name} is not available here")  # pragma: no cover - parser's list


def _unsupported(what: str) -> Callable[[Any, Scope], Node]:
    def fail(expr: Any, scope: Scope) -> Node:
        raise _at(expr, what)

    return fail


def _path(expr: x.Path, scope: Scope) -> Node:
    node = compile_expr(expr.base, scope)
    where = expr.base.dump()
    for seg in expr.segments:
        node = _segment(node, seg, where, scope)
        where += seg.dump()
    return node


def _segment(base: Node, seg: x.Segment, where: str, scope: Scope) -> Node:
    bf = base.fn
    if isinstance(seg, x.Field):
        name = seg.name
        if base.root is not None:
            # `$var.field`, the most common shape: one closure instead of two.
            root, column = base.root

            def var_field(ctx: Any) -> Any:
                value = ctx.vars.get(root, MISSING)
                if value is MISSING:
                    value = base.fn(ctx)  # the built-in, or the undefined-variable error
                if type(value) is dict:
                    return value.get(name)
                return get_field(value, name, where)

            return combine(var_field, [base], column)

        def field_(ctx: Any) -> Any:
            value = bf(ctx)
            if type(value) is dict:
                return value.get(name)
            return get_field(value, name, where)

        return combine(field_, [base], seg.column)
    if isinstance(seg, x.Index):
        key = compile_expr(seg.index, scope)
        kf = key.fn
        return combine(lambda ctx: get_index(bf(ctx), kf(ctx), where), [base, key], seg.column)
    if isinstance(seg, x.Where):
        cond = compile_expr(seg.cond, scope.inner(frozenset({"index", "parent"})))
        cf = cond.fn

        def keep(ctx: Any) -> Any:
            items = bf(ctx)
            if items is None:
                raise ExpressionError(f"cannot filter null ({where} is null)")
            values = list(items.values()) if isinstance(items, Mapping) else items
            if not isinstance(values, list | tuple):
                raise ExpressionError(f"[…] filters an array, got {xano_type(items)} ({where})")
            es = ElemScope(ctx)
            es.parent = values
            out = []
            for i, item in enumerate(values):
                es.item, es.index = item, i
                if php_truthy(cf(es)):
                    out.append(item)
            return out

        return combine(keep, [base], seg.column, foldable=False)
    raise _at(seg, "unknown path segment")  # pragma: no cover


_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "==": loose_eq,
    "=": loose_eq,
    "!=": lambda a, b: not loose_eq(a, b),
    "===": strict_equals,
    "!==": lambda a, b: not strict_equals(a, b),
    "<": ordered(lambda c: c < 0, operator.lt),
    "<=": ordered(lambda c: c <= 0, operator.le),
    ">": ordered(lambda c: c > 0, operator.gt),
    ">=": ordered(lambda c: c >= 0, operator.ge),
    "in": member,
    "not in": lambda a, b: not member(a, b),
}
_VALUE_OPS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": add,
    "-": SUBTRACT,
    "*": MULTIPLY,
    "/": DIV,
    "%": MOD,
    "~": concat,
    "..": value_range,
}
_BOOLEAN_OPS: Final = frozenset(
    {
        "!",
        "&&",
        *(op for op in ("==", "=", "!=", "===", "!==", "<", "<=", ">", ">=", "in", "not in")),
    }
)
_DB_ONLY: Final = frozenset(
    {"like", "ilike", "contains", "includes", "overlaps", "between", "search", "@>", "!~"}
)


def _binary(expr: x.Binary, scope: Scope) -> Node:
    op = expr.op
    if expr.null_ignore:
        raise _at(expr, f'"{op}?" (ignore if null) only works inside a db query\'s where')
    if op in _DB_ONLY or (op.startswith("not ") and op[4:] in _DB_ONLY):
        raise _at(expr, f'"{op}" only works inside a db query\'s where')
    left = compile_expr(expr.left, scope)
    right = compile_expr(expr.right, scope)
    lf, rf = left.fn, right.fn
    fn: Callable[[Any], Any]
    if op == "&&":
        fn = lambda ctx: php_truthy(lf(ctx)) and php_truthy(rf(ctx))  # noqa: E731
    elif op == "||":

        def either(ctx: Any) -> Any:
            value = lf(ctx)
            return value if php_truthy(value) else rf(ctx)

        fn = either
    elif op == "??":

        def coalesce(ctx: Any) -> Any:
            value = lf(ctx)
            return rf(ctx) if value is None else value

        fn = coalesce
    elif op in _COMPARE:
        test = _COMPARE[op]
        if right.const:
            c = right.value
            fn = lambda ctx: test(lf(ctx), c)  # noqa: E731
        else:
            fn = lambda ctx: test(lf(ctx), rf(ctx))  # noqa: E731
    elif op in _VALUE_OPS:
        impl = _VALUE_OPS[op]
        fn = lambda ctx: impl(lf(ctx), rf(ctx))  # noqa: E731
    else:
        raise _at(expr, f'operator "{op}" cannot be used in a value')
    return combine(fn, [left, right], expr.column)


def _unary(expr: x.Unary, scope: Scope) -> Node:
    operand = compile_expr(expr.operand, scope)
    f = operand.fn
    if expr.op == "!":
        return combine(lambda ctx: not php_truthy(f(ctx)), [operand], expr.column)
    return combine(lambda ctx: SUB(0, f(ctx)), [operand], expr.column)


def _ternary(expr: x.Ternary, scope: Scope) -> Node:
    cond = compile_expr(expr.cond, scope)
    then = compile_expr(expr.then, scope)
    other = compile_expr(expr.otherwise, scope)
    if cond.const:
        return then if php_truthy(cond.value) else other
    cf, tf, of = cond.fn, then.fn, other.fn
    fn = lambda ctx: tf(ctx) if php_truthy(cf(ctx)) else of(ctx)  # noqa: E731
    return combine(fn, [cond, then, other], expr.column)


def lookup_filter(name: str, node: x.Node) -> FilterDef:
    try:
        return lookup(name)
    except ExpressionError as exc:
        raise _at(node, exc.message) from None


def _filter(expr: x.Filter, scope: Scope) -> Node:
    fd = lookup_filter(expr.name, expr)
    try:
        fd.check_arity(len(expr.args))
    except ExpressionError as exc:
        raise _at(expr, exc.message) from None
    subject = compile_expr(expr.subject, scope) if expr.subject is not None else const_node(None)
    return filter_node(fd, subject, expr.args, scope, expr.column)


def filter_node(
    fd: FilterDef, subject: Node, arg_exprs: tuple[x.Expr, ...], scope: Scope, column: int
) -> Node:
    """A call of filter `fd` on `subject` with the argument expressions compiled here."""
    args: list[Node] = []
    for i, arg in enumerate(arg_exprs):
        if i == 0 and fd.higher_order:
            names = {"index", "parent"} | ({"result"} if fd.name == "reduce" else set())
            args.append(compile_expr(arg, scope.inner(frozenset(names))))
        else:
            args.append(compile_expr(arg, scope))
    return filter_call(fd, subject, args, column, evaluator=_evaluate_text, tz=UTC)


_CASTS: Final = {
    "int": "to_int",
    "text": "to_text",
    "decimal": "to_decimal",
    "bool": "to_bool",
    "timestamp": "to_timestamp",
}


def _cast(expr: x.Cast, scope: Scope) -> Node:
    if expr.to == "expr":
        inner = expr.operand
        if not isinstance(inner, x.StrLit):
            raise _at(expr, "!expr takes a text literal")
        from daemon.xano.errors import XanoSyntaxError
        from daemon.xano.parser import parse_expression

        try:
            parsed = parse_expression(inner.value)
        except XanoSyntaxError as exc:
            raise _at(expr, f"!expr: {exc.message}") from None
        return compile_expr(parsed, scope)
    operand = compile_expr(expr.operand, scope)
    f = operand.fn
    if expr.to in ("array", "object"):
        decode = FILTERS["json_decode"].fn

        def structure(ctx: Any) -> Any:
            value = f(ctx)
            return decode(value) if type(value) is str else value

        return combine(structure, [operand], expr.column)
    fd = FILTERS[_CASTS[expr.to]]
    return filter_node(fd, operand, (), scope, expr.column)


def _array(expr: x.ArrayLit, scope: Scope) -> Node:
    parts = [
        (True, compile_expr(i.value, scope))
        if isinstance(i, x.Spread)
        else (False, compile_expr(i, scope))
        for i in expr.items
    ]
    if not any(spread for spread, _ in parts):
        fns = tuple(n.fn for _, n in parts)
        return combine(lambda ctx: [f(ctx) for f in fns], [n for _, n in parts], expr.column)
    plan = tuple((spread, n.fn) for spread, n in parts)

    def build(ctx: Any) -> list[Any]:
        out: list[Any] = []
        for spread, f in plan:
            value = f(ctx)
            if not spread:
                out.append(value)
            elif isinstance(value, Mapping):
                out.extend(value.values())
            elif isinstance(value, list | tuple):
                out.extend(value)
            elif value is not None:
                raise ExpressionError(f"cannot spread {xano_type(value)} into an array")
        return out

    return combine(build, [n for _, n in parts], expr.column)


def _object(expr: x.ObjectLit, scope: Scope) -> Node:
    plan: list[tuple[str | None, Node]] = []
    for entry in expr.entries:
        if isinstance(entry, x.Spread):
            plan.append((None, compile_expr(entry.value, scope)))
        else:
            plan.append((entry.key, compile_expr(entry.value, scope)))
    steps = tuple((k, n.fn) for k, n in plan)

    def build(ctx: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, f in steps:
            value = f(ctx)
            if key is not None:
                out[key] = value
            elif isinstance(value, Mapping):
                out.update(value)
            elif value is not None:
                raise ExpressionError(f"cannot spread {xano_type(value)} into an object")
        return out

    return combine(build, [n for _, n in plan], expr.column)


def _backtick(expr: x.Backtick, scope: Scope) -> Node:
    return compile_expr(expr.expr, scope)


_COMPILERS: Final[dict[type, Callable[[Any, Scope], Node]]] = {
    x.IntLit: _literal,
    x.DecimalLit: _decimal,
    x.StrLit: _literal,
    x.BoolLit: _literal,
    x.NullLit: _null,
    x.NowLit: _now,
    x.Ident: _ident,
    x.Var: _var,
    x.Special: _special,
    x.Anchor: _unsupported("path anchors ($0, $1, …) are not supported"),
    x.DbRef: _unsupported("$db.table.column only means something inside a db query's where"),
    x.Spread: _unsupported("... only spreads inside an array or object literal"),
    x.Path: _path,
    x.Binary: _binary,
    x.Unary: _unary,
    x.Ternary: _ternary,
    x.Filter: _filter,
    x.Cast: _cast,
    x.ArrayLit: _array,
    x.ObjectLit: _object,
    x.Backtick: _backtick,
}


def constant_value(expr: x.Expr) -> Any:
    """The value of an expression that must be a constant (a table name, a throw's name), or
    MISSING when it is not one."""
    try:
        node = compile_expr(expr, Scope())
    except XanoCompileError:
        return MISSING
    return copy_value(node.value) if node.const else MISSING
