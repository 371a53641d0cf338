"""XanoScript statements that only compute values: `security.*`, `array.*`, `text.*`,
`object.*` (XANOSCRIPT.md §4.3, §4.6).

Each becomes Create Variable (a result, `as $x`) or Update Variable (a statement that changes
its target: `array.push $list`, `text.append $s`) whose value runs the matching filter of
`daemon.expr.filters`, compiled once at load time.
"""

from __future__ import annotations

import secrets
from typing import Any, Final

from daemon.core.errors import ExpressionError
from daemon.expr.filters import FILTERS, FilterDef
from daemon.expr.nodes import Node, Template, combine, const_node
from daemon.xano import nodes as x
from daemon.xano.expressions import XanoCompileError, compile_expr, filter_env, filter_node
from daemon.xano.statements import StackBuilder, Step, assign, result_step
from daemon.xano.values import concat


def _attr_node(b: StackBuilder, stmt: x.Call, key: str, default: Any = None) -> Node:
    expr = stmt.attr(key)
    if expr is None:
        return const_node(default)
    return compile_expr(expr, b.scope)


def _template(node: Node, source: str, b: StackBuilder) -> Template:
    return Template(source, node.fn, b.statement_refs(), node.const)


def _call_filter(fd: FilterDef, *args: Node) -> Node:
    """A node applying filter `fd` to the values of `args` (first is the piped value)."""
    fns = tuple(a.fn for a in args)
    call = fd.fn
    if fd.needs_ctx:
        return combine(
            lambda ctx: call(filter_env(ctx), *[f(ctx) for f in fns]), list(args), 1, False
        )
    return combine(lambda ctx: call(*[f(ctx) for f in fns]), list(args), 1, fd.pure)


def security_statement(b: StackBuilder, stmt: x.Call) -> list[Step]:
    name = stmt.name.removeprefix("security.")
    node: Node
    if name == "create_uuid":
        node = _call_filter(FILTERS["uuid"], const_node(None))
    elif name == "random_number":
        lo, hi = _attr_node(b, stmt, "min", 0), _attr_node(b, stmt, "max", 2**31 - 1)
        node = combine(lambda ctx: _random_int(lo.fn(ctx), hi.fn(ctx)), [lo, hi], 1, False)
    elif name == "random_bytes":
        length = _attr_node(b, stmt, "length", 16)
        node = combine(lambda ctx: secrets.token_bytes(int(length.fn(ctx))), [length], 1, False)
    elif name == "create_password":
        count = _attr_node(b, stmt, "character_count", 16)
        node = combine(lambda ctx: _password(int(count.fn(ctx))), [count], 1, False)
    elif name in ("encrypt", "decrypt"):
        args = [_attr_node(b, stmt, k) for k in ("data", "algorithm", "key", "iv")]
        node = _call_filter(FILTERS[name], *args)
    elif name == "jws_encode":
        args = [
            _attr_node(b, stmt, k, d)
            for k, d in (
                ("claims", {}),
                ("headers", {}),
                ("key", None),
                ("signature_algorithm", "HS256"),
                ("ttl", 0),
            )
        ]
        node = _call_filter(FILTERS["jws_encode"], *args)
    elif name == "jws_decode":
        args = [
            _attr_node(b, stmt, k, d)
            for k, d in (
                ("token", None),
                ("check_claims", {}),
                ("key", None),
                ("signature_algorithm", "HS256"),
                ("timeDrift", 0),
            )
        ]
        node = _call_filter(FILTERS["jws_decode"], *args)
    elif name in ("jwe_encode", "jwe_decode"):
        encode = name == "jwe_encode"
        keys: list[tuple[str, Any]] = [
            ("claims", {}) if encode else ("token", None),
            ("headers", {}) if encode else ("check_claims", {}),
            ("key", None),
            ("key_algorithm", "A256KW"),
            ("content_algorithm", "A256CBC-HS512"),
            ("ttl", 0) if encode else ("timeDrift", 0),
        ]
        node = _call_filter(FILTERS[name], *[_attr_node(b, stmt, k, d) for k, d in keys])
    else:
        raise XanoCompileError(f"{stmt.name} is not supported", stmt.line, stmt.column)
    return [result_step(b, stmt, _template(node, stmt.name, b))]


def _random_int(lo: Any, hi: Any) -> int:
    low, high = int(lo), int(hi)
    if low > high:
        raise ExpressionError(f"security.random_number: min {low} is above max {high}")
    return low + secrets.randbelow(high - low + 1)


_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#$%^&*()-_=+"


def _password(count: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(max(count, 1)))


# array.* / text.* statements that change their target: filter name (value as its argument).
_MUTATE: Final = {
    "array.push": "push",
    "array.unshift": "unshift",
    "array.merge": "merge",
    "text.append": "concat",
    "text.prepend": None,  # value ~ target
    "text.trim": "trim",
    "text.ltrim": "ltrim",
    "text.rtrim": "rtrim",
}
# statements that answer something about their target (`as $x`), with `if (cond)` or a value.
_TESTS: Final = {
    "array.find": "find",
    "array.find_index": "findIndex",
    "array.has": "some",
    "array.every": "every",
    "array.filter": "filter",
    "array.filter_count": "filter",
    "array.partition": "filter",
    "text.contains": "contains",
    "text.icontains": "icontains",
    "text.starts_with": "starts_with",
    "text.istarts_with": "istarts_with",
    "text.ends_with": "ends_with",
    "text.iends_with": "iends_with",
    "object.keys": "keys",
    "object.values": "values",
    "object.entries": "entries",
}


def _subject(b: StackBuilder, stmt: x.Call) -> x.Expr:
    target = stmt.target
    if isinstance(target, x.Expr):
        return target
    value = stmt.attr("value")
    if value is not None and stmt.name.startswith("object."):
        return value
    raise XanoCompileError(f"{stmt.name} needs a value to work on", stmt.line, stmt.column)


def value_statement(b: StackBuilder, stmt: x.Call) -> list[Step]:
    name = stmt.name
    if name in ("array.pop", "array.shift"):
        return _pop(b, stmt)
    if name in _MUTATE:
        value = stmt.attr("value")
        fd_name = _MUTATE[name]
        if fd_name is None:  # text.prepend
            return [assign(b, stmt, lambda old, new: _concat(new, old), value)]
        if fd_name in ("trim", "ltrim", "rtrim") and value is None:
            fd = FILTERS[fd_name]
            return [assign(b, stmt, lambda old, new: fd.fn(old), None)]
        if value is None:
            raise XanoCompileError(f'{name} needs "value = …"', stmt.line, stmt.column)
        fd = FILTERS[fd_name]
        return [assign(b, stmt, lambda old, new: fd.fn(old, new), value)]
    subject = compile_expr(_subject(b, stmt), b.scope)
    node: Node
    if name in _TESTS:
        fd = FILTERS[_TESTS[name]]
        if fd.higher_order:
            cond = stmt.condition or stmt.attr("by")
            if cond is None:
                raise XanoCompileError(f"{name} needs if (condition)", stmt.line, stmt.column)
            node = filter_node(fd, subject, (cond,), b.scope, stmt.column)
            if name == "array.filter_count":
                inner = node.fn
                node = combine(lambda ctx: len(inner(ctx)), [node], 1, False)
            elif name == "array.partition":
                node = _partition(b, subject, cond)
            elif name == "array.find_index":
                inner = node.fn
                node = combine(lambda ctx: _minus_one(inner(ctx)), [node], 1, False)
        elif fd.max_args == 0:
            node = filter_node(fd, subject, (), b.scope, stmt.column)
        else:
            node = filter_node(fd, subject, (b.required(stmt, "value"),), b.scope, stmt.column)
    elif name == "array.map":
        node = filter_node(FILTERS["map"], subject, (b.required(stmt, "by"),), b.scope, stmt.column)
    elif name == "array.group_by":
        node = _group_by(b, subject, b.required(stmt, "by"))
    elif name in ("array.union", "array.difference", "array.intersection"):
        node = _set_op(b, stmt, subject)
    else:
        raise XanoCompileError(f'unknown statement "{name}"', stmt.line, stmt.column)
    return [result_step(b, stmt, _template(node, name, b))]


def _minus_one(found: Any) -> Any:
    return -1 if found is None or found is False else found


def _concat(a: Any, b: Any) -> str:
    return concat(a, b)


def _partition(b: StackBuilder, subject: Node, cond: x.Expr) -> Node:
    keep = filter_node(FILTERS["filter"], subject, (cond,), b.scope, 1)
    sf, kf = subject.fn, keep.fn

    def split(ctx: Any) -> list[list[Any]]:
        items = sf(ctx) or []
        chosen = kf(ctx)
        ids = {id(i) for i in chosen}
        return [chosen, [i for i in items if id(i) not in ids]]

    return combine(split, [subject, keep], 1, False)


def _group_by(b: StackBuilder, subject: Node, by: x.Expr) -> Node:
    keys = filter_node(FILTERS["map"], subject, (by,), b.scope, 1)
    sf, kf = subject.fn, keys.fn
    text = FILTERS["to_text"].fn

    def group(ctx: Any) -> dict[str, list[Any]]:
        items = sf(ctx) or []
        out: dict[str, list[Any]] = {}
        for key, item in zip(kf(ctx), items, strict=True):
            out.setdefault(text(key), []).append(item)
        return out

    return combine(group, [subject, keys], 1, False)


def _set_op(b: StackBuilder, stmt: x.Call, subject: Node) -> Node:
    other = compile_expr(b.required(stmt, "value"), b.scope)
    by_expr = stmt.attr("by")
    key: Node | None = None
    if by_expr is not None:
        from daemon.xano.expressions import Scope

        key = compile_expr(by_expr, Scope(b.scope.function, frozenset({"index"}), b.scope.refs))
    kind = stmt.name.removeprefix("array.")
    sf, of = subject.fn, other.fn
    kf = key.fn if key is not None else None
    text = FILTERS["json_encode"].fn

    def apply(ctx: Any) -> list[Any]:
        from daemon.expr.pipes import ElemScope

        left, right = list(sf(ctx) or []), list(of(ctx) or [])
        es = ElemScope(ctx)

        def ident(item: Any) -> str:
            if kf is None:
                return text(item)
            es.item = item
            return text(kf(es))

        right_ids = {ident(i) for i in right}
        if kind == "union":
            seen: set[str] = set()
            out = []
            for item in left + right:
                k = ident(item)
                if k not in seen:
                    seen.add(k)
                    out.append(item)
            return out
        if kind == "difference":
            return [i for i in left if ident(i) not in right_ids]
        return [i for i in left if ident(i) in right_ids]

    return combine(apply, [subject, other], 1, False)


def _pop(b: StackBuilder, stmt: x.Call) -> list[Step]:
    """`array.pop $list as $last`: the result is the removed element, and the target loses it."""
    target = stmt.target
    if not isinstance(target, x.Var):
        raise XanoCompileError(f"{stmt.name} needs a variable ($list)", stmt.line, stmt.column)
    name, last = target.name, stmt.name == "array.pop"
    from daemon.expr.nodes import name_node

    read = name_node(name, target.column)
    rf = read.fn

    def take(ctx: Any) -> Any:
        items = rf(ctx)
        if not isinstance(items, list):
            raise ExpressionError(f"{stmt.name}: ${name} is not an array")
        if not items:
            return None
        # The statement changes its target: the one step with two effects, by design.
        ctx.set_var(name, items[:-1] if last else items[1:])
        return items[-1] if last else items[0]

    b.scope.refs.append(_reference(name, target))
    return [result_step(b, stmt, Template(stmt.name, take, b.statement_refs(), False))]


def _reference(name: str, node: x.Node) -> Any:
    from daemon.expr.nodes import Reference

    return Reference(name, node.column)
