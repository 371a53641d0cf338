"""XanoScript's `db.*` statements → the record steps, and the dispatch of the rest of the
library (XANOSCRIPT.md §4, §5.1).

`db.*` statements become Query All Records, Get / Has / Add / Patch / Add or Edit / Delete
Record, the bulk steps, Clear All Records and Direct Database Query, with `where` translated
to a filter object (`daemon.xano.where`). `security.*`, `array.*`, `text.*` and `object.*` are
in `daemon.xano.compute`; `api.request`, `redis.*` and `util.send_email` in
`daemon.xano.outbound`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from daemon.expr.filters import php_truthy
from daemon.expr.nodes import Template
from daemon.xano import nodes as x
from daemon.xano.expressions import (
    XanoCompileError,
    constant_value,
)
from daemon.xano.statements import (
    StackBuilder,
    Step,
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


def library_statement(b: StackBuilder, stmt: x.Call) -> list[Step]:
    namespace = stmt.name.split(".", 1)[0]
    if namespace == "security":
        from daemon.xano.compute import security_statement

        return security_statement(b, stmt)
    if namespace in ("array", "text", "object"):
        from daemon.xano.compute import value_statement

        return value_statement(b, stmt)
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
