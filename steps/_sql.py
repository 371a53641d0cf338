"""Filters, sort, limit and fields compiled to parameterized SQL once per shape (values bound)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from daemon.core.errors import DatabaseError, join_path
from daemon.core.text import did_you_mean
from daemon.expr.parser import is_template
from daemon.resources.db.base import ColumnInfo, Converter, Dialect, TableInfo, quote_ident

if TYPE_CHECKING:
    from steps.base import Evaluator, StepCompiler, StepContext

# Called with (field path relative to the step, message) when a name does not check out:
# `StepCompiler.error` at load time, `raise_report` when the plan is built lazily at run time.
Report = Callable[[str, str], None]

OPERATORS = (
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not_in",
    "like",
    "not_like",
    "ilike",
    "not_ilike",
    "includes",
    "not_includes",
    "between",
    "not_between",
    "is_null",
)
_ALIASES = {"==": "=", "<>": "!=", "eq": "=", "ne": "!=", "nin": "not_in", "not in": "not_in"}
_ALIASES.update({f"not {op}": f"not_{op}" for op in ("like", "ilike", "includes", "between")})
_COMPARE_SQL = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def raise_report(path: str, message: str) -> None:
    """A `Report` for run time: the first problem fails the step."""
    raise DatabaseError(f"{path}: {message}")


# --- parsed filter shape (dialect- and schema-independent) ---------------------------------------


@dataclass(frozen=True, slots=True)
class Leaf:
    """One comparison: `column op value`; `value` indexes the statement's evaluated values."""

    column: str
    op: str
    path: str
    value: int | None = None  # None: no bound value (is_null, or a literal null)
    negate_null: bool = False  # for value-less leaves: IS NOT NULL instead of IS NULL
    null_bit: int = 0  # nonzero: a templated =/!= whose run-time null switches to IS [NOT] NULL
    ignore_bit: int = 0  # nonzero: `op?` (Xano's null-ignore) - a run-time null drops the leaf


@dataclass(frozen=True, slots=True)
class Group:
    """`$and` / `$or` of nested conditions (a filter object's keys are an implicit `$and`)."""

    conjunction: str  # "AND" | "OR"
    items: tuple[Leaf | Group, ...]


Node = Leaf | Group


@dataclass(slots=True)
class FilterSpec:
    """A filter as parsed at load time: its tree and one evaluator per bound value."""

    root: Group
    evaluators: list[Evaluator] = field(default_factory=list)
    null_bits: list[tuple[int, int]] = field(default_factory=list)  # (bit, value index)

    @property
    def empty(self) -> bool:
        return not self.root.items


@dataclass(frozen=True, slots=True)
class SortKey:
    column: str
    descending: bool
    path: str


class _Parser:
    def __init__(self, c: StepCompiler) -> None:
        self.c = c
        self.spec = FilterSpec(Group("AND", ()))

    def value(self, raw: Any, path: str) -> int:
        self.spec.evaluators.append(self.c.template(raw, path))
        return len(self.spec.evaluators) - 1

    def null_bit(self, index: int) -> int:
        bit = 1 << len(self.spec.null_bits)
        self.spec.null_bits.append((bit, index))
        return bit

    def group(self, raw: Any, path: str, conjunction: str = "AND") -> Group:
        if not isinstance(raw, dict):
            self.c.error(path, f"a filter must be an object, got {_kind(raw)}")
            return Group(conjunction, ())
        items: list[Node] = []
        for key, value in raw.items():
            sub = join_path(path, key)
            if key in ("$or", "$and"):
                if not isinstance(value, list):
                    self.c.error(sub, f"{key} takes a list of filters, got {_kind(value)}")
                    continue
                inner = [self.group(v, join_path(sub, i)) for i, v in enumerate(value)]
                items.append(Group("OR" if key == "$or" else "AND", tuple(inner)))
            elif key.startswith("$"):
                self.c.error(sub, f'unknown filter keyword "{key}" (expected "$or" or "$and")')
            elif isinstance(value, dict):
                if not value:
                    self.c.error(sub, "an operator object needs at least one operator")
                for op, operand in value.items():
                    leaf = self.leaf(key, op, operand, join_path(sub, op))
                    if leaf is not None:
                        items.append(leaf)
            else:
                leaf = self.leaf(key, "=", value, sub)
                if leaf is not None:
                    items.append(leaf)
        return Group(conjunction, tuple(items))

    def leaf(self, column: str, op: str, operand: Any, path: str) -> Leaf | None:
        # `>=?`: Xano's null-ignore form; the condition is left out when the value is null.
        ignore = len(op) > 1 and op.endswith("?")
        if ignore:
            op = op[:-1]
        op = _ALIASES.get(op, op)
        if op not in OPERATORS:
            hint = did_you_mean(op, OPERATORS)
            known = ", ".join(OPERATORS)
            self.c.error(path, f'unknown operator "{op}"{hint}; expected one of {known}')
            return None
        if op == "is_null":
            if not isinstance(operand, bool):
                self.c.error(path, f"is_null takes true or false, got {_kind(operand)}")
                return None
            return Leaf(column, op, path, negate_null=not operand)
        if ignore and op != "is_null":
            if operand is None:
                return None  # a literal null: the condition is always left out
            if is_template(operand):
                index = self.value(operand, path)
                return Leaf(column, op, path, value=index, ignore_bit=self.null_bit(index))
        if operand is None:
            if op in ("=", "!="):
                return Leaf(column, op, path, negate_null=op == "!=")
            self.c.error(path, f'"{op}" cannot compare with null (use "is_null")')
            return None
        if op in ("in", "not_in") and not (isinstance(operand, list) or is_template(operand)):
            self.c.error(path, f"{op} takes a list, got {_kind(operand)}")
            return None
        if op in ("between", "not_between") and not (
            (isinstance(operand, list) and len(operand) == 2) or is_template(operand)
        ):
            self.c.error(path, f"{op} takes a list of two values [low, high]")
            return None
        index = self.value(operand, path)
        bit = self.null_bit(index) if op in ("=", "!=") and is_template(operand) else 0
        return Leaf(column, op, path, value=index, null_bit=bit)


def parse_filter(raw: Any, c: StepCompiler, field: str = "filter") -> FilterSpec:
    """Parse a filter object into its shape, compiling every value with `c.template`."""
    parser = _Parser(c)
    if raw is None:
        return parser.spec
    parser.spec.root = parser.group(raw, field)
    return parser.spec


def key_filter(evaluator: Evaluator, column: str, path: str = "record_id") -> FilterSpec:
    """The filter `record_id` means: primary key equals the value."""
    return FilterSpec(Group("AND", (Leaf(column, "=", path, value=0),)), [evaluator])


def parse_sort(raw: Any, c: StepCompiler, field: str = "sort") -> list[SortKey]:
    """`{"field": f, "order": "desc"}`, `"-f"`, `"f"`, or a list of those."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    keys: list[SortKey] = []
    for i, item in enumerate(items):
        path = join_path(field, i) if isinstance(raw, list) else field
        if isinstance(item, str) and item and not is_template(item):
            desc = item.startswith("-")
            keys.append(SortKey(item.lstrip("-+"), desc, path))
        elif isinstance(item, dict) and isinstance(item.get("field"), str):
            unknown = set(item) - {"field", "order", "direction"}
            if unknown:
                c.error(path, f'unknown sort key "{min(unknown)}" (expected "field" and "order")')
            order = str(item.get("order", item.get("direction", "asc"))).lower()
            if order not in ("asc", "desc"):
                c.error(join_path(path, "order"), f'order must be "asc" or "desc", got "{order}"')
            keys.append(SortKey(item["field"], order == "desc", join_path(path, "field")))
        else:
            c.error(path, 'sort takes {"field": f, "order": "asc"|"desc"}, "f", "-f" or a list')
    return keys


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


# --- rendering against a schema ------------------------------------------------------------------

Slot = tuple[int, Converter, str]  # (value index, converter, label for errors)


def _list_param(dialect: Dialect, coerce: Converter) -> Converter:
    def convert(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected a list, got {_kind(value)}")
        items = [coerce(v) for v in value]
        if dialect == "sqlite":
            # One fixed statement for any list length: the list travels as one JSON text.
            return orjson.dumps(items).decode()
        return items

    return convert


def _like_param(value: Any) -> Any:
    if not isinstance(value, str):
        raise TypeError(f"a like pattern must be a string, got {_kind(value)}")
    return value


def _includes_param(value: Any) -> Any:
    """`includes`: a case-insensitive substring, its LIKE wildcards escaped (ESCAPE '\\')."""
    if value is None or isinstance(value, dict | list):
        raise TypeError(f"includes takes text, got {_kind(value)}")
    text = value if isinstance(value, str) else str(value)
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _bound(position: int, coerce: Converter) -> Converter:
    """One end of a `between` pair."""

    def convert(value: Any) -> Any:
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise TypeError(f"between takes a list of two values, got {_kind(value)}")
        return coerce(value[position])

    return convert


_GLOB_FROM_LIKE = {"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}


def _sqlite_like_param(value: Any) -> Any:
    """A LIKE pattern as a case-sensitive GLOB pattern (SQLite's LIKE ignores ASCII case, so
    `like` would match like `ilike`; PostgreSQL's LIKE is case-sensitive)."""
    pattern = _like_param(value)
    return "".join(_GLOB_FROM_LIKE.get(ch, ch) for ch in pattern)


def to_count(value: Any) -> int | None:
    """A limit/offset value: a non-negative integer (integral floats and digit strings accepted)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("expected a non-negative integer, got a boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int):
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"expected a non-negative integer, got {value}")
    return value


class _Render:
    """Accumulates placeholders in text order and the slots that fill them."""

    def __init__(self, dialect: Dialect, table: TableInfo, report: Report) -> None:
        self.dialect = dialect
        self.table = table
        self.report = report
        self.slots: list[Slot] = []

    def ph(self, index: int, convert: Converter, label: str) -> str:
        self.slots.append((index, convert, label))
        return "?" if self.dialect == "sqlite" else f"${len(self.slots)}"

    def column(self, name: str, path: str) -> ColumnInfo | None:
        try:
            return self.table.column(name)
        except LookupError as exc:
            self.report(path, str(exc.args[0]))
            return None

    def node(self, node: Node, mask: int) -> str | None:
        """The SQL of a node; None when null-ignore conditions left nothing of it."""
        if isinstance(node, Group):
            rendered = [self.node(item, mask) for item in node.items]
            parts = [p for p in rendered if p is not None]
            if not parts:
                if rendered:
                    return None  # every condition was left out: so is the group
                return "TRUE" if node.conjunction == "AND" else "FALSE"
            if len(parts) == 1:
                return parts[0]
            return "(" + f" {node.conjunction} ".join(parts) + ")"
        if node.ignore_bit & mask:
            return None
        col = self.column(node.column, node.path)
        if col is None:
            return "FALSE"
        name = quote_ident(col.name)
        label = f'column "{col.name}"'
        if node.value is None or node.null_bit & mask:
            negate = node.negate_null or (node.value is not None and node.op == "!=")
            return f"{name} IS NOT NULL" if negate else f"{name} IS NULL"
        op = node.op
        if op in _COMPARE_SQL:
            return f"{name} {_COMPARE_SQL[op]} {self.ph(node.value, col.coerce, label)}"
        if op in ("in", "not_in"):
            p = self.ph(node.value, _list_param(self.dialect, col.coerce), label)
            if self.dialect == "postgresql":
                return f"{name} = ANY({p})" if op == "in" else f"{name} <> ALL({p})"
            neg = "" if op == "in" else "NOT "
            return f"{name} {neg}IN (SELECT value FROM json_each({p}))"
        neg = "NOT " if op.startswith("not_") else ""
        op = op.removeprefix("not_")
        if op == "between":
            low = self.ph(node.value, _bound(0, col.coerce), label)
            high = self.ph(node.value, _bound(1, col.coerce), label)
            return f"{name} {neg}BETWEEN {low} AND {high}"
        if op == "includes":
            keyword = "ILIKE" if self.dialect == "postgresql" else "LIKE"
            p = self.ph(node.value, _includes_param, label)
            return f"{name} {neg}{keyword} {p} ESCAPE '\\'"
        # like is case-sensitive on both dialects: SQLite's LIKE ignores ASCII case, so there
        # `like` becomes a GLOB (the pattern translated when bound) and `ilike` is its LIKE.
        if self.dialect == "sqlite" and op == "like":
            return f"{name} {neg}GLOB {self.ph(node.value, _sqlite_like_param, label)}"
        keyword = "ILIKE" if op == "ilike" and self.dialect == "postgresql" else "LIKE"
        return f"{name} {neg}{keyword} {self.ph(node.value, _like_param, label)}"

    def where(self, spec: FilterSpec | None, mask: int) -> str:
        if spec is None or spec.empty:
            return ""
        text = self.node(spec.root, mask)
        if text is None:  # every condition was null-ignored
            return ""
        if text.startswith("(") and spec.root.conjunction == "AND" and len(spec.root.items) > 1:
            text = text[1:-1]  # the outer AND needs no parentheses
        return " WHERE " + text


class Statement:
    """A statement shape: SQL text per null pattern (built once, cached) and how to bind values.

    Values are evaluated by the caller in a fixed layout (filter values first, then extras such
    as limit/offset or row data); `bind` picks the text and coerces each value for its column.
    """

    __slots__ = ("_cache", "_render", "null_bits")

    def __init__(
        self,
        render: Callable[[int], tuple[str, list[Slot]]],
        null_bits: Sequence[tuple[int, int]] = (),
    ) -> None:
        self._render = render
        self.null_bits = tuple(null_bits)
        self._cache: dict[int, tuple[str, list[Slot]]] = {0: render(0)}

    @property
    def sql(self) -> str:
        """The text for the common case (no templated equality value is null)."""
        return self._cache[0][0]

    def text_for(self, mask: int) -> str:
        return self._entry(mask)[0]

    def _entry(self, mask: int) -> tuple[str, list[Slot]]:
        entry = self._cache.get(mask)
        if entry is None:
            entry = self._cache[mask] = self._render(mask)
        return entry

    def bind(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        mask = 0
        for bit, index in self.null_bits:
            if values[index] is None:
                mask |= bit
        sql, slots = self._cache[mask] if mask in self._cache else self._entry(mask)
        try:
            return sql, [convert(values[i]) for i, convert, _ in slots]
        except (ValueError, TypeError, ArithmeticError):
            pass
        # Slow path only on failure: find the value that did not convert, to name its column.
        for i, convert, label in slots:
            try:
                convert(values[i])
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise DatabaseError(f"invalid value for {label}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover


def check_columns(table: TableInfo, names: Sequence[str], path: str, report: Report) -> list[str]:
    """The names that exist; each unknown one is reported with a did-you-mean."""
    good = []
    for name in names:
        try:
            good.append(table.column(name).name)
        except LookupError as exc:
            report(join_path(path, name), str(exc.args[0]))
    return good


def select_statement(
    dialect: Dialect,
    table: TableInfo,
    spec: FilterSpec | None,
    *,
    sort: Sequence[SortKey] = (),
    fields: Sequence[str] | None = None,
    limit: int | None = None,
    offset: int | None = None,
    report: Report = raise_report,
    fields_path: str = "fields",
) -> Statement:
    """SELECT; `limit`/`offset` are the value indexes their evaluated values will have."""
    cols = "*"
    if fields:
        good = check_columns(table, fields, fields_path, report)
        cols = ", ".join(quote_ident(f) for f in good) or "*"
    order = []
    for key in sort:
        try:
            col = table.column(key.column)
        except LookupError as exc:
            report(key.path, str(exc.args[0]))
            continue
        order.append(quote_ident(col.name) + (" DESC" if key.descending else " ASC"))

    def render(mask: int) -> tuple[str, list[Slot]]:
        r = _Render(dialect, table, report)
        sql = f"SELECT {cols} FROM {quote_ident(table.name)}{r.where(spec, mask)}"
        if order:
            sql += " ORDER BY " + ", ".join(order)
        if limit is not None:
            sql += " LIMIT " + r.ph(limit, to_count, "limit")
        elif offset is not None and dialect == "sqlite":
            sql += " LIMIT -1"  # SQLite accepts OFFSET only after a LIMIT
        if offset is not None:
            sql += " OFFSET " + r.ph(offset, to_count, "offset")
        return sql, r.slots

    return Statement(render, spec.null_bits if spec else ())


def count_statement(
    dialect: Dialect, table: TableInfo, spec: FilterSpec | None, *, report: Report = raise_report
) -> Statement:
    """SELECT count(*) with the filter (values laid out as for the select)."""

    def render(mask: int) -> tuple[str, list[Slot]]:
        r = _Render(dialect, table, report)
        return f"SELECT count(*) AS n FROM {quote_ident(table.name)}{r.where(spec, mask)}", r.slots

    return Statement(render, spec.null_bits if spec else ())


def insert_statement(dialect: Dialect, table: TableInfo, columns: Sequence[str]) -> Statement:
    """INSERT ... RETURNING *; value i is column i (columns already checked)."""
    infos = [table.column(c) for c in columns]

    def render(mask: int) -> tuple[str, list[Slot]]:
        r = _Render(dialect, table, raise_report)
        if not infos:
            return f"INSERT INTO {quote_ident(table.name)} DEFAULT VALUES RETURNING *", []
        marks = ", ".join(r.ph(i, c.coerce, f'column "{c.name}"') for i, c in enumerate(infos))
        names = ", ".join(quote_ident(c.name) for c in infos)
        sql = f"INSERT INTO {quote_ident(table.name)} ({names}) VALUES ({marks}) RETURNING *"
        return sql, r.slots

    return Statement(render)


def update_statement(
    dialect: Dialect,
    table: TableInfo,
    spec: FilterSpec,
    columns: Sequence[str],
    *,
    report: Report = raise_report,
) -> Statement:
    """UPDATE ... SET ... WHERE ... RETURNING *; column i's value follows the filter's values."""
    infos = [table.column(c) for c in columns]
    base = len(spec.evaluators)

    labels = [f'column "{c.name}"' for c in infos]

    def render(mask: int) -> tuple[str, list[Slot]]:
        r = _Render(dialect, table, report)
        sets = ", ".join(
            f"{quote_ident(c.name)} = {r.ph(base + i, c.coerce, labels[i])}"
            for i, c in enumerate(infos)
        )
        where = r.where(spec, mask)
        return f"UPDATE {quote_ident(table.name)} SET {sets}{where} RETURNING *", r.slots

    return Statement(render, spec.null_bits)


def delete_statement(
    dialect: Dialect, table: TableInfo, spec: FilterSpec, *, report: Report = raise_report
) -> Statement:
    def render(mask: int) -> tuple[str, list[Slot]]:
        r = _Render(dialect, table, report)
        return f"DELETE FROM {quote_ident(table.name)}{r.where(spec, mask)}", r.slots

    return Statement(render, spec.null_bits)


# --- results -------------------------------------------------------------------------------------


def row_decoder(table: TableInfo) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Decode a raw row of this table in place (only columns whose type needs it)."""
    decoders = [(c.name, c.decode) for c in table.columns.values() if c.decode is not None]
    if not decoders:
        return _same

    def decode(row: dict[str, Any]) -> dict[str, Any]:
        for name, fn in decoders:
            value = row.get(name)
            if value is not None:
                row[name] = fn(value)
        return row

    return decode


def _same(row: dict[str, Any]) -> dict[str, Any]:
    return row


def evaluate(evaluators: Sequence[Evaluator], ctx: StepContext) -> list[Any]:
    return [ev(ctx) for ev in evaluators]
