"""XanoScript's function library → steps: `db.*`, `api.request`, `redis.*`, `security.*`,
`array.*`, `text.*`, `object.*` and `util.send_email` (XANOSCRIPT.md §4, §5.1).

`db.*` statements become the record steps (Query All Records, Get / Has / Add / Patch / Add or
Edit / Delete Record, the bulk steps, Clear All Records, Direct Database Query) with `where`
translated to a filter object. `security.*`, `array.*`, `text.*` and `object.*` only compute
values: Create Variable (for a result) or Update Variable (for a statement that changes its
target) steps whose value runs the matching filter of `daemon.expr.filters`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Final

from daemon.core.errors import ExpressionError
from daemon.expr.filters import FILTERS, FilterDef, php_truthy
from daemon.expr.nodes import Node, Template, combine, const_node
from daemon.xano import nodes as x
from daemon.xano.expressions import (
    XanoCompileError,
    compile_expr,
    constant_value,
    filter_env,
    filter_node,
)
from daemon.xano.statements import (
    StackBuilder,
    Step,
    _assign,
    _create,
    target_name,
)
from daemon.xano.where import translate_where

# --- db.* ------------------------------------------------------------------------------------


def db_statement(b: StackBuilder, stmt: x.Call) -> list[Step]:
    name = stmt.name
    if name == "db.direct_query":
        return [direct_query(b, stmt)]
    handler = _DB.get(name)
    if handler is None:
        raise XanoCompileError(f'unknown statement "{name}"')
    return [handler(b, stmt, target_name(stmt))]


def _literal_text(stmt: x.Call, key: str) -> str:
    expr = stmt.attr(key)
    if expr is None:
        raise XanoCompileError(f'{stmt.name} needs "{key} = …"', stmt.line, stmt.column)
    value = constant_value(expr)
    if not isinstance(value, str) or not value:
        raise XanoCompileError(f"{key} must be a text literal", expr.line, expr.column)
    return value


def _not_supported(stmt: x.Call, *keys: str) -> None:
    for key in keys:
        expr = stmt.attr(key)
        if expr is not None:
            raise XanoCompileError(
                f"{stmt.name}: {key} is not supported (joins, addons and computed columns need"
                " Xano's query builder); use db.direct_query",
                expr.line,
                expr.column,
            )


def _where(b: StackBuilder, stmt: x.Call, table: str) -> Any:
    expr = stmt.attr("where") or stmt.attr("search")
    if expr is None:
        return None
    return translate_where(expr, table, b.scope)


def _query(b: StackBuilder, stmt: x.Call, table: str) -> Step:
    _not_supported(stmt, "join", "eval", "addon", "additional_where", "override_sort")
    fields: dict[str, Any] = {"table": table}
    where = _where(b, stmt, table)
    if where is not None:
        fields["filter"] = where
    sort = stmt.attr("sort")
    if sort is not None:
        fields["sort"] = _sort(sort, table)
    returns = stmt.attr("return")
    paging = None
    if returns is not None:
        if not isinstance(returns, x.ObjectLit):
            raise XanoCompileError("return must be an object {type: …}", returns.line)
        for entry in returns.entries:
            if not isinstance(entry, x.Entry):
                raise XanoCompileError("return cannot spread", entry.line, entry.column)
            if entry.key == "type":
                kind = constant_value(entry.value)
                if kind not in ("list", "single", "count", "exists"):
                    raise XanoCompileError(
                        f"return type {kind!r} is not supported (list, single, count, exists)",
                        entry.line,
                        entry.column,
                    )
                fields["return_type"] = kind
            elif entry.key == "paging":
                paging = b.value(entry.value)
                if not isinstance(paging, dict):
                    raise XanoCompileError("paging must be an object", entry.line, entry.column)
                fields["paging"] = paging
            elif entry.key == "distinct":
                if constant_value(entry.value) not in ("no", False, None):
                    raise XanoCompileError("distinct is not supported", entry.line, entry.column)
            else:
                raise XanoCompileError(
                    f'unknown return setting "{entry.key}"', entry.line, entry.column
                )
    output = stmt.attr("output")
    if output is not None:
        names = constant_value(output)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise XanoCompileError("output must be a list of names", output.line, output.column)
        columns = [
            n.removeprefix("items.") for n in names if "." not in n or n.startswith("items.")
        ]
        if paging is not None:
            columns = [n.removeprefix("items.") for n in names if n.startswith("items.")]
        if columns:
            fields["fields"] = columns
    return b.step(stmt, "Query All Records", "db.query", fields)


def _sort(expr: x.Expr, table: str) -> list[dict[str, str]]:
    if not isinstance(expr, x.ObjectLit):
        raise XanoCompileError('sort must be an object {column: "asc"}', expr.line, expr.column)
    keys = []
    for entry in expr.entries:
        if not isinstance(entry, x.Entry):
            raise XanoCompileError("sort cannot spread", entry.line, entry.column)
        column = entry.key.removeprefix(f"{table}.")
        if "." in column:
            raise XanoCompileError(
                f'sort key "{entry.key}" names another table', entry.line, entry.column
            )
        order = constant_value(entry.value)
        if order not in ("asc", "desc"):
            raise XanoCompileError(
                f'sort order must be "asc" or "desc" (got {order!r}; "rand" is not supported)',
                entry.line,
                entry.column,
            )
        keys.append({"field": column, "order": order})
    return keys


def _match(b: StackBuilder, stmt: x.Call) -> dict[str, Any]:
    return {
        "field_name": _literal_text(stmt, "field_name"),
        "field_value": b.value(b.required(stmt, "field_value")),
    }


def _get(b: StackBuilder, stmt: x.Call, table: str) -> Step:
    _not_supported(stmt, "addon")
    match = _match(b, stmt)
    fields = {"table": table, "filter": {match["field_name"]: match["field_value"]}}
    return b.step(stmt, "Get Record", "db.get", fields)


def _has(b: StackBuilder, stmt: x.Call, table: str) -> Step:
    return b.step(stmt, "Has Record", "db.has", {"table": table, **_match(b, stmt)})


def _add(b: StackBuilder, stmt: x.Call, table: str) -> Step:
    _not_supported(stmt, "addon")
    fields = {"table": table, "data": b.value(b.required(stmt, "data"))}
    return b.step(stmt, "Add Record", "db.add", fields)


def _patch(b: StackBuilder, stmt: x.Call, table: str) -> Step:
    _not_supported(stmt, "addon")
    fields = {"table": table, **_match(b, stmt), "data": b.value(b.required(stmt, "data"))}
    return b.step(stmt, "Patch Record", stmt.name, fields)


def _add_or_edit(b: StackBuilder, stmt: x.Call, table: str) -> Step:
    fields = {"table": table, **_match(b, stmt), "data": b.value(b.required(stmt, "data"))}
    return b.step(stmt, "Add or Edit Record", "db.add_or_edit", fields)


def _delete(b: StackBuilder, stmt: x.Call, table: str) -> Step:
    match = _match(b, stmt)
    fields = {
        "table": table,
        "filter": {match["field_name"]: match["field_value"]},
        "required": True,  # a miss is NotFound (§6.37)
    }
    return b.step(stmt, "Delete Record", "db.del", fields)


def _truncate(b: StackBuilder, stmt: x.Call, table: str) -> Step:
    reset = stmt.attr("reset")
    value = constant_value(reset) if reset is not None else False
    return b.step(stmt, "Clear All Records", "db.truncate", {"table": table, "reset": bool(value)})


def _items(b: StackBuilder, stmt: x.Call) -> Any:
    items = stmt.attr("items") or stmt.attr("data")  # MCP docs write data = [...] (§6.38)
    if items is None:
        raise XanoCompileError(f'{stmt.name} needs "items = […]"', stmt.line, stmt.column)
    return b.value(items)


def _bulk_add(b: StackBuilder, stmt: x.Call, table: str) -> Step:
    items = _items(b, stmt)
    allow = stmt.attr("allow_id_field")
    if allow is None or not php_truthy(constant_value(allow)):
        # Without allow_id_field any `id` in the items is ignored: the table assigns ids.
        items = _strip_ids(items)
    return b.step(stmt, "Bulk Add Records", "db.bulk.add", {"table": table, "items": items})


def _strip_ids(items: Any) -> Any:
    if isinstance(items, list):
        return [
            {k: v for k, v in i.items() if k != "id"} if isinstance(i, dict) else i for i in items
        ]
    inner = items.evaluate if isinstance(items, Template) else (lambda ctx: items)

    def strip(ctx: Any) -> Any:
        value = inner(ctx)
        if not isinstance(value, list):
            return value
        return [
            {k: v for k, v in i.items() if k != "id"} if isinstance(i, dict) else i for i in value
        ]

    refs = items.references if isinstance(items, Template) else ()
    return Template("items", strip, refs, False)


def _bulk_update(b: StackBuilder, stmt: x.Call, table: str) -> Step:
    function = "Bulk Update Records" if stmt.name == "db.bulk.update" else "Bulk Patch Records"
    return b.step(stmt, function, stmt.name, {"table": table, "items": _items(b, stmt)})


def _bulk_delete(b: StackBuilder, stmt: x.Call, table: str) -> Step:
    where = _where(b, stmt, table)
    if where is None:
        raise XanoCompileError(
            "db.bulk.delete needs a where (deleting every record is db.truncate)",
            stmt.line,
            stmt.column,
        )
    return b.step(stmt, "Bulk Delete Records", "db.bulk.delete", {"table": table, "filter": where})


def direct_query(b: StackBuilder, stmt: x.Call) -> Step:
    sql_expr = stmt.attr("sql") or stmt.attr("code")
    if sql_expr is None:
        raise XanoCompileError('db.direct_query needs "sql = …"', stmt.line, stmt.column)
    sql = constant_value(sql_expr)
    if not isinstance(sql, str):
        raise XanoCompileError(
            "sql must be a text literal (values go in arg = …)", sql_expr.line, sql_expr.column
        )
    kind = stmt.attr("response_type")
    response = constant_value(kind) if kind is not None else "list"
    if response not in ("list", "single"):
        raise XanoCompileError('response_type must be "list" or "single"', stmt.line)
    fields = {
        "sql": sql,
        "params": [b.value(arg) for arg in stmt.attr_all("arg")],
        "placeholders": "?",
        "response_type": response,
    }
    return b.step(stmt, "Direct Database Query", "db.direct_query", fields)


_DB: Final[dict[str, Callable[[StackBuilder, x.Call, str], Step]]] = {
    "db.query": _query,
    "db.get": _get,
    "db.has": _has,
    "db.add": _add,
    "db.edit": _patch,
    "db.patch": _patch,
    "db.add_or_edit": _add_or_edit,
    "db.del": _delete,
    "db.truncate": _truncate,
    "db.bulk.add": _bulk_add,
    "db.bulk.update": _bulk_update,
    "db.bulk.patch": _bulk_update,
    "db.bulk.delete": _bulk_delete,
}


# --- value statements: security, array, text, object -------------------------------------------


def _filtered(
    b: StackBuilder, fd_name: str, subject: Node, args: tuple[x.Expr, ...], column: int
) -> Node:
    return filter_node(FILTERS[fd_name], subject, args, b.scope, column)


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


def _security(b: StackBuilder, stmt: x.Call) -> list[Step]:
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
    return [_create(b, stmt, _template(node, stmt.name, b))]


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


def _value_statement(b: StackBuilder, stmt: x.Call) -> list[Step]:
    name = stmt.name
    if name in ("array.pop", "array.shift"):
        return _pop(b, stmt)
    if name in _MUTATE:
        value = stmt.attr("value")
        fd_name = _MUTATE[name]
        if fd_name is None:  # text.prepend
            return [_assign(b, stmt, lambda old, new: _concat(new, old), value)]
        if fd_name in ("trim", "ltrim", "rtrim") and value is None:
            fd = FILTERS[fd_name]
            return [_assign(b, stmt, lambda old, new: fd.fn(old), None)]
        if value is None:
            raise XanoCompileError(f'{name} needs "value = …"', stmt.line, stmt.column)
        fd = FILTERS[fd_name]
        return [_assign(b, stmt, lambda old, new: fd.fn(old, new), value)]
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
    return [_create(b, stmt, _template(node, name, b))]


def _minus_one(found: Any) -> Any:
    return -1 if found is None or found is False else found


def _concat(a: Any, b: Any) -> str:
    from daemon.xano.expressions import concat

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
    return [_create(b, stmt, Template(stmt.name, take, b.statement_refs(), False))]


def _reference(name: str, node: x.Node) -> Any:
    from daemon.expr.nodes import Reference

    return Reference(name, node.column)


def library_statement(b: StackBuilder, stmt: x.Call) -> list[Step]:
    namespace = stmt.name.split(".", 1)[0]
    if namespace == "security":
        return _security(b, stmt)
    if namespace in ("array", "text", "object"):
        return _value_statement(b, stmt)
    if stmt.name == "api.request":
        from daemon.xano.outbound import api_request

        return [api_request(b, stmt)]
    if namespace == "redis":
        from daemon.xano.outbound import redis_statement

        return [redis_statement(b, stmt)]
    raise XanoCompileError(f'unknown statement "{stmt.name}"', stmt.line, stmt.column)


def send_email(b: StackBuilder, stmt: x.Call) -> list[Step]:
    from daemon.xano.outbound import send_email as build

    return [build(b, stmt)]
