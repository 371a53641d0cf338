"""A db query's `where` (XanoScript query expressions) → the filter object JSON tasks write.

One SQL compiler for both formats: `$db.order.created_at >= $hour_ago && $db.order.status ==
"paid"` becomes `{"$and": [{"created_at": {">=": …}}, {"status": {"=": …}}]}`, whose values are
compiled value-side expressions (so `now|transform_timestamp:"-1 hour"` is computed in Python
and bound as a parameter). Supported: comparisons (either side may be the column), their `?`
null-ignore forms, `&&` / `||` / `!`, `in` / `not in`, `like` / `ilike` / `includes` /
`between` and their `not` forms, `== null` as IS NULL, and a bare boolean column. What SQL
cannot be built from here (query-side filters on a column, two columns compared, regex `~`,
JSON containment, full-text `search`) is a `XanoCompileError` at the expression.
"""

from __future__ import annotations

from typing import Any, Final

from daemon.xano import nodes as x
from daemon.xano.expressions import Scope, XanoCompileError, to_field

# XanoScript operator -> filter operator; `flip` when the column is on the right.
_OPS: Final = {
    "==": "=",
    "=": "=",
    "===": "=",
    "!=": "!=",
    "!==": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
    "in": "in",
    "not in": "not_in",
    "like": "like",
    "not like": "not_like",
    "ilike": "ilike",
    "not ilike": "not_ilike",
    "includes": "includes",
    "not includes": "not_includes",
    "between": "between",
    "not between": "not_between",
}
_FLIP: Final = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}
_NEGATE: Final = {"=": "!=", "!=": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def translate_where(expr: x.Expr, table: str, scope: Scope) -> dict[str, Any]:
    """The filter object for `where = expr` on `table` (the queried table's name)."""
    return _Where(table, scope).condition(expr)


class _Where:
    def __init__(self, table: str, scope: Scope) -> None:
        self.table = table
        self.scope = scope

    def column(self, expr: x.Expr) -> str | None:
        """The column name when `expr` is `$db.<table>.<column>`, else None."""
        while isinstance(expr, x.Backtick):
            expr = expr.expr
        if not isinstance(expr, x.DbRef):
            return None
        if expr.table != self.table:
            raise XanoCompileError(
                f'$db.{expr.table} is not the queried table "{self.table}" (joins are not'
                " supported)",
                expr.line,
                expr.column,
            )
        if expr.column_name is None:
            raise XanoCompileError(f"$db.{expr.table} needs a column", expr.line, expr.column)
        return expr.column_name

    def condition(self, expr: x.Expr) -> dict[str, Any]:
        if isinstance(expr, x.Backtick):
            return self.condition(expr.expr)
        if isinstance(expr, x.Binary) and expr.op in ("&&", "||"):
            key = "$and" if expr.op == "&&" else "$or"
            items: list[dict[str, Any]] = []
            for side in (expr.left, expr.right):
                inner = self.condition(side)
                # a chain a && b && c is one $and of three, as written
                items.extend(inner[key] if list(inner) == [key] else [inner])
            return {key: items}
        if isinstance(expr, x.Unary) and expr.op == "!":
            column = self.column(expr.operand)
            if column is not None:
                return {column: {"=": False}}
            negated = expr.operand
            while isinstance(negated, x.Backtick):
                negated = negated.expr
            if isinstance(negated, x.Binary) and not negated.null_ignore and negated.op in _OPS:
                ((col, ops),) = self.comparison(negated).items()
                ((op, value),) = ops.items()
                if op == "is_null":
                    return {col: {"is_null": not value}}
                if op in _NEGATE:
                    return {col: {_NEGATE[op]: value}}
            raise self.cannot(expr, "a negated condition other than a comparison")
        column = self.column(expr)
        if column is not None:
            return {column: {"=": True}}  # a bare boolean column
        if isinstance(expr, x.Binary):
            return self.comparison(expr)
        raise self.cannot(expr, "this expression")

    def comparison(self, expr: x.Binary) -> dict[str, Any]:
        op = _OPS.get(expr.op)
        if op is None:
            what = {
                "~": "a regular expression match (~)",
                "!~": "a regular expression match (!~)",
                "@>": "JSON containment (@>)",
                "search": "full-text search",
            }.get(expr.op, f'the operator "{expr.op}"')
            raise self.cannot(expr, what)
        left, right = self.column(expr.left), self.column(expr.right)
        if left is not None and right is not None:
            raise self.cannot(expr, "a comparison of two columns")
        if left is None and right is None:
            side = expr.left if _mentions_db(expr.left) else expr.right
            if _mentions_db(side):
                raise self.cannot(side, "a filter or expression on a column")
            raise self.cannot(expr, "a condition with no $db column")
        value_expr = expr.right if left is not None else expr.left
        column = left if left is not None else right
        assert column is not None
        if right is not None:
            if op not in _FLIP:
                raise self.cannot(expr, f'"{expr.op}" with the column on its right')
            op = _FLIP[op]
        if _mentions_db(value_expr):
            raise self.cannot(value_expr, "a value that reads another column")
        value = to_field(value_expr, self.scope)
        if value is None and op in ("=", "!=") and not expr.null_ignore:
            return {column: {"is_null": op == "="}}
        return {column: {op + ("?" if expr.null_ignore else ""): value}}

    def cannot(self, node: x.Node, what: str) -> XanoCompileError:
        return XanoCompileError(
            f"{what} in a where cannot be translated to SQL here; compute the value into a"
            " variable first, or use db.direct_query",
            node.line,
            node.column,
        )


def _mentions_db(expr: x.Expr) -> bool:
    return any(isinstance(n, x.DbRef) for n in x.walk(expr))
