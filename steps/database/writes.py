"""Database steps that write: Add Record, Bulk Add Records, Edit Record, Delete Record."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from daemon.core.errors import DatabaseError, join_path
from daemon.resources.db.base import DataSource, TableInfo
from daemon.resources.db.values import coerce_column
from steps._sql import (
    Report,
    Statement,
    is_template,
    row_decoder,
)
from steps._sql import (
    delete_statement as _delete_statement,
)
from steps._sql import (
    insert_statement as _insert_statement,
)
from steps._sql import (
    update_statement as _update_statement,
)
from steps.base import Evaluator, StepCompiler, StepContext
from steps.database.tables import (
    AddRecordSpec,
    BulkAddRecordsSpec,
    DeleteRecordSpec,
    EditRecordSpec,
    Row,
    _check_keys,
    _Data,
    _record,
    _TableStep,
    _target,
    _where,
)


class _WritePlan:
    """Statement for literal data (or None) and a per-key-set cache for templated data."""

    __slots__ = ("by_keys", "decode", "statement", "table")

    def __init__(self, table: TableInfo, statement: Statement | None) -> None:
        self.table = table
        self.statement = statement
        self.by_keys: dict[tuple[str, ...], Statement] = {}
        self.decode = row_decoder(table)


class AddRecord(_TableStep):
    """Insert one row (`RETURNING *`) and return it as a record."""

    Spec = AddRecordSpec
    function = "add_record"
    display_name = "Add Record"

    __slots__ = ("_data", "_dialect")

    def __init__(self, spec: AddRecordSpec, c: StepCompiler) -> None:
        super().__init__(spec, c)
        self._data = _Data(spec.data, c)
        self._compile_plan(c)

    def build(self, ds: DataSource, table: TableInfo, report: Report) -> _WritePlan:
        statement = None
        if self._data.dynamic is None and self._data.check(table, report):
            statement = _insert_statement(ds.dialect, table, self._data.keys)
        return _WritePlan(table, statement)

    async def run(self, ctx: StepContext) -> Row | None:
        db = ctx.db(self.data_source)
        plan: _WritePlan = self._plan or self.plan(db)
        if self._data.dynamic is None:
            statement = plan.statement
            assert statement is not None
            values = [ev(ctx) for ev in self._data.evaluators]
        else:
            data = _record(ctx, self._data.dynamic, "data")
            keys = tuple(data)
            statement = plan.by_keys.get(keys)
            if statement is None:
                _check_keys(plan.table, keys, "data")
                statement = plan.by_keys[keys] = _insert_statement(db.dialect, plan.table, keys)
            values = list(data.values())
        sql, params = statement.bind(values)
        row = await db.fetchrow(sql, params)
        return None if row is None else plan.decode(row)


class BulkAddRecords(_TableStep):
    """Insert a list of records in one bulk operation (COPY on PostgreSQL); returns the count."""

    Spec = BulkAddRecordsSpec
    function = "bulk_add_records"
    display_name = "Bulk Add Records"

    __slots__ = ("_items",)

    def __init__(self, spec: BulkAddRecordsSpec, c: StepCompiler) -> None:
        super().__init__(spec, c)
        if not isinstance(spec.items, list) and not is_template(spec.items):
            c.error("items", "items must be a list of objects or a template yielding one")
        elif isinstance(spec.items, list):
            for i, item in enumerate(spec.items):
                if not isinstance(item, dict) and not is_template(item):
                    c.error(join_path("items", i), "each item must be an object")
        self._items = c.template(spec.items, "items")
        self._compile_plan(c)

    def build(self, ds: DataSource, table: TableInfo, report: Report) -> TableInfo:
        return table

    async def run(self, ctx: StepContext) -> int:
        db = ctx.db(self.data_source)
        table: TableInfo = self._plan or self.plan(db)
        items = self._items(ctx)
        if not isinstance(items, list):
            raise DatabaseError(f"items must be a list, got {type(items).__name__}")
        if not items:
            return 0
        if set(map(type, items)) != {dict}:
            bad = next(i for i, item in enumerate(items) if not isinstance(item, dict))
            raise DatabaseError(f"items[{bad}] must be an object, got {type(items[bad]).__name__}")
        # Items with the same key set go in one batch; a missing key means the column default,
        # so differently shaped items cannot share one. The common case (one shape) costs only
        # C-level passes: equal lengths, and no KeyError while extracting the first item's keys.
        keys = tuple(items[0])
        if set(map(len, items)) == {len(keys)}:
            _check_keys(table, keys, "items[0]")
            try:
                rows = _rows(table, keys, items) if keys else None
            except KeyError:
                rows = None
            if rows is not None:
                return await db.insert_many(table, list(keys), rows)
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for item in items:
            groups.setdefault(tuple(sorted(item)), []).append(item)
        total = 0
        for keys, group in groups.items():
            where = f"items[{items.index(group[0])}]"
            if not keys:
                raise DatabaseError(f"{where} is empty")
            _check_keys(table, keys, where)
            total += await db.insert_many(table, list(keys), _rows(table, keys, group))
        return total


def _rows(table: TableInfo, keys: tuple[str, ...], group: list[dict[str, Any]]) -> list[Any]:
    """Row tuples for a bulk insert, built column by column (see `coerce_column`)."""
    columns: list[Any] = []
    for key in keys:
        values = list(map(itemgetter(key), group))
        try:
            columns.append(coerce_column(table.columns[key], values))
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise DatabaseError(_bad_item(table, keys, group)) from exc
    return list(zip(*columns, strict=True))


def _bad_item(table: TableInfo, keys: tuple[str, ...], group: list[dict[str, Any]]) -> str:
    for item in group:
        for key in keys:
            try:
                table.columns[key].coerce(item[key])
            except (ValueError, TypeError, ArithmeticError) as exc:
                return f'invalid value for column "{key}": {exc}'
    return "invalid item"  # pragma: no cover


class EditRecord(_TableStep):
    """Update the record `record_id` (returns it, or null) or every row matching `filter` (list)."""

    Spec = EditRecordSpec
    function = "edit_record"
    display_name = "Edit Record"

    __slots__ = ("_data", "_filter", "_record_id")

    def __init__(self, spec: EditRecordSpec, c: StepCompiler) -> None:
        super().__init__(spec, c)
        self._record_id, self._filter = _target(spec, c, allow_all=False)
        self._data = _Data(spec.data, c)
        if isinstance(spec.data, dict) and not spec.data:
            c.error("data", "data must set at least one column")
        if self._record_id is not None or self._filter is not None:
            self._compile_plan(c)

    def build(self, ds: DataSource, table: TableInfo, report: Report) -> _WritePlan:
        statement = None
        if self._data.dynamic is None and self._data.check(table, report) and self._data.keys:
            where = _where(table, self._record_id, self._filter)
            statement = _update_statement(ds.dialect, table, where, self._data.keys, report=report)
        return _WritePlan(table, statement)

    async def run(self, ctx: StepContext) -> Row | list[Row] | None:
        db = ctx.db(self.data_source)
        plan: _WritePlan = self._plan or self.plan(db)
        if self._record_id is not None:
            values = [self._record_id(ctx)]
        else:
            assert self._filter is not None
            values = [ev(ctx) for ev in self._filter.evaluators]
        if self._data.dynamic is None:
            statement = plan.statement
            assert statement is not None
            values += [ev(ctx) for ev in self._data.evaluators]
        else:
            data = _record(ctx, self._data.dynamic, "data")
            keys = tuple(data)
            if not keys:
                raise DatabaseError("data must set at least one column")
            statement = plan.by_keys.get(keys)
            if statement is None:
                _check_keys(plan.table, keys, "data")
                where = _where(plan.table, self._record_id, self._filter)
                statement = _update_statement(db.dialect, plan.table, where, keys)
                plan.by_keys[keys] = statement
            values += data.values()
        sql, params = statement.bind(values)
        rows = await db.fetch(sql, params)
        decode = plan.decode
        if self._record_id is not None:
            return decode(rows[0]) if rows else None
        return [decode(row) for row in rows]


class DeleteRecord(_TableStep):
    """Delete the record `record_id` or every row matching `filter`; returns the count deleted."""

    Spec = DeleteRecordSpec
    function = "delete_record"
    display_name = "Delete Record"

    __slots__ = ("_evaluators", "_filter", "_record_id", "_required")

    def __init__(self, spec: DeleteRecordSpec, c: StepCompiler) -> None:
        super().__init__(spec, c)
        self._required = spec.required
        self._record_id, self._filter = _target(spec, c, allow_all=False)
        self._evaluators: list[Evaluator] = []
        if self._record_id is not None:
            self._evaluators = [self._record_id]
        elif self._filter is not None:
            self._evaluators = list(self._filter.evaluators)
        if self._record_id is not None or self._filter is not None:
            self._compile_plan(c)

    def build(self, ds: DataSource, table: TableInfo, report: Report) -> Statement:
        where = _where(table, self._record_id, self._filter)
        return _delete_statement(ds.dialect, table, where, report=report)

    async def run(self, ctx: StepContext) -> int:
        db = ctx.db(self.data_source)
        statement: Statement = self._plan or self.plan(db)
        sql, params = statement.bind([ev(ctx) for ev in self._evaluators])
        count = await db.execute(sql, params)
        if count == 0 and self._required:
            raise DatabaseError(
                f'no record in "{self.table_name}" to delete', code="ERROR_CODE_NOT_FOUND"
            )
        return count
