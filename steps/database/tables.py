"""Shared by the database table steps: their specs, the one-table step base, targets, row data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

from daemon.core.errors import DatabaseError, join_path
from daemon.core.text import did_you_mean
from daemon.resources.db.base import DataSource, TableInfo
from steps._sql import (
    FilterSpec,
    Report,
    is_template,
    key_filter,
    parse_filter,
    raise_report,
)
from steps.base import Evaluator, Step, StepCompiler, StepContext, StepSpec

Row = dict[str, Any]
Decoder = Callable[[Row], Row]


# --- specs ---------------------------------------------------------------------------------------


class TableSpec(StepSpec, kw_only=True, forbid_unknown_fields=True):
    table: str
    data_source: str | None = None


class PagingSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Xano's paging: 1-based `page` of `per_page` rows, shifted by `offset`; `metadata`
    (default) wraps them in Xano's envelope, `totals` adds itemsTotal and pageTotal."""

    page: Any = 1
    per_page: Any
    offset: Any = 0
    totals: bool = False
    metadata: bool = True


class QueryAllRecordsSpec(TableSpec, kw_only=True, forbid_unknown_fields=True):
    filter: Any = None
    sort: Any = None
    limit: Any = None
    offset: Any = None
    fields: list[str] | None = None
    return_type: Literal["list", "single", "count", "exists"] = "list"
    paging: PagingSpec | None = None


class GetRecordSpec(TableSpec, kw_only=True, forbid_unknown_fields=True):
    record_id: Any = None
    filter: Any = None


class AddRecordSpec(TableSpec, kw_only=True, forbid_unknown_fields=True):
    data: Any


class BulkAddRecordsSpec(TableSpec, kw_only=True, forbid_unknown_fields=True):
    items: Any


class EditRecordSpec(TableSpec, kw_only=True, forbid_unknown_fields=True):
    record_id: Any = None
    filter: Any = None
    data: Any


class DeleteRecordSpec(TableSpec, kw_only=True, forbid_unknown_fields=True):
    record_id: Any = None
    filter: Any = None
    required: bool = False  # nothing to delete fails the step (XanoScript's db.del, §6.37)


# --- shared machinery ----------------------------------------------------------------------------


class _TableStep(Step):
    """A step on one table: the plan (SQL text, binders, decoders) is built once, against the
    schema at load time, or on first run when the data source was unreachable at load."""

    __slots__ = ("_plan", "data_source", "table_name")

    def __init__(self, spec: Any, c: StepCompiler) -> None:
        super().__init__(spec, c)
        self.data_source: str | None = spec.data_source
        self.table_name: str = spec.table
        self._plan: Any = None

    def _compile_plan(self, c: StepCompiler) -> None:
        """Call at the end of a subclass __init__, once its load-time parts exist."""
        table = c.table(self.table_name, "table", self.data_source)
        ds = c.datasource(self.data_source)
        if table is not None and ds is not None:
            self._plan = self.build(ds, table, c.error)

    def build(self, ds: DataSource, table: TableInfo, report: Report) -> Any:
        raise NotImplementedError

    def plan(self, db: DataSource) -> Any:
        plan = self._plan
        if plan is None:
            try:
                table = db.table(self.table_name)
            except LookupError as exc:
                raise DatabaseError(f"table: {exc.args[0]}") from exc
            plan = self._plan = self.build(db, table, raise_report)
        return plan


def _target(
    spec: Any, c: StepCompiler, *, allow_all: bool
) -> tuple[Evaluator | None, FilterSpec | None]:
    """`record_id` (an evaluator) or `filter` (a parsed FilterSpec): exactly one of them."""
    if spec.record_id is not None and spec.filter is not None:
        c.error("record_id", "give record_id or filter, not both")
    if spec.record_id is not None:
        return c.template(spec.record_id, "record_id"), None
    if spec.filter is None:
        c.error("record_id", "record_id or filter is required")
        return None, None
    parsed = parse_filter(spec.filter, c)
    if parsed.empty and not allow_all:
        c.error("filter", "an empty filter matches every row; use Direct Database Query for that")
    return None, parsed


def _where(table: TableInfo, record_id: Evaluator | None, spec: FilterSpec | None) -> FilterSpec:
    if record_id is not None:
        return key_filter(record_id, table.key_column)
    assert spec is not None
    return spec


class _Data:
    """Row data: a literal object (keys checked at load, values templated) or one template
    yielding a whole record (keys checked at run time, one statement cached per key set)."""

    __slots__ = ("dynamic", "evaluators", "keys")

    def __init__(self, raw: Any, c: StepCompiler, field: str = "data") -> None:
        self.keys: tuple[str, ...] = ()
        self.evaluators: list[Evaluator] = []
        self.dynamic: Evaluator | None = None
        if isinstance(raw, dict):
            self.keys = tuple(raw)
            self.evaluators = [c.template(v, join_path(field, k)) for k, v in raw.items()]
        elif is_template(raw):  # a "{{ }}" text or a compiled (XanoScript) value
            self.dynamic = c.template(raw, field)
        else:
            c.error(field, "data must be an object or a template yielding one")

    def check(self, table: TableInfo, report: Report, field: str = "data") -> bool:
        ok = True
        for key in self.keys:
            if key not in table.columns:
                ok = False
                report(join_path(field, key), _unknown_column(table, key))
        return ok


def _unknown_column(table: TableInfo, key: str) -> str:
    return f'unknown column "{key}" in table "{table.name}"{did_you_mean(key, table.columns)}'


def _record(ctx: StepContext, evaluator: Evaluator, what: str) -> dict[str, Any]:
    value = evaluator(ctx)
    if not isinstance(value, dict):
        raise DatabaseError(f"{what} must be an object, got {type(value).__name__}")
    return value


def _check_keys(table: TableInfo, keys: tuple[str, ...], what: str) -> None:
    for key in keys:
        if key not in table.columns:
            raise DatabaseError(f"{what}: {_unknown_column(table, key)}")
