"""Xano's record steps: add or edit, patch, has, bulk update/patch/delete, clear, transaction.

They match a record the way Xano does, by `field_name` = `field_value`; when several rows
match, the first by primary key wins (XANOSCRIPT.md §6.35). Patch Record (XanoScript's
`db.edit` and `db.patch`) fails when nothing matches (§6.37). Bulk steps run in one
transaction: all items or none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from daemon.core.errors import DatabaseError
from daemon.resources.db.base import DataSource, TableInfo
from steps._sql import (
    FilterSpec,
    Report,
    SortKey,
    Statement,
    delete_statement,
    insert_statement,
    is_template,
    key_filter,
    parse_filter,
    row_decoder,
    select_statement,
    update_statement,
)
from steps.base import Evaluator, Step, StepCompiler, StepContext, StepSpec
from steps.control import run_steps_keeping_signals
from steps.database.tables import Row, TableSpec, _Data, _record, _TableStep, _unknown_column

NOT_FOUND = "ERROR_CODE_NOT_FOUND"  # Xano's code for a miss, what `$error.code` shows


def _none(ctx: StepContext) -> None:
    return None


class MatchSpec(TableSpec, kw_only=True, forbid_unknown_fields=True):
    field_name: str
    field_value: Any


class AddOrEditRecordSpec(MatchSpec, kw_only=True, forbid_unknown_fields=True):
    data: Any


class PatchRecordSpec(MatchSpec, kw_only=True, forbid_unknown_fields=True):
    data: Any


class BulkItemsSpec(TableSpec, kw_only=True, forbid_unknown_fields=True):
    items: Any


class BulkDeleteRecordsSpec(TableSpec, kw_only=True, forbid_unknown_fields=True):
    filter: Any


class ClearAllRecordsSpec(TableSpec, kw_only=True, forbid_unknown_fields=True):
    reset: bool = False


class DatabaseTransactionSpec(StepSpec, kw_only=True, forbid_unknown_fields=True):
    steps: list[Any] = []
    data_source: str | None = None


class _Statements:
    """Statements built lazily per column set (data whose keys are known only at run time)."""

    __slots__ = ("cache", "decode", "dialect", "table")

    def __init__(self, ds: DataSource, table: TableInfo) -> None:
        self.dialect = ds.dialect
        self.table = table
        self.cache: dict[tuple[str, tuple[str, ...]], Statement] = {}
        self.decode = row_decoder(table)

    def insert(self, keys: tuple[str, ...]) -> Statement:
        found = self.cache.get(("insert", keys))
        if found is None:
            _check(self.table, keys)
            found = self.cache["insert", keys] = insert_statement(self.dialect, self.table, keys)
        return found

    def update_by_key(self, keys: tuple[str, ...]) -> Statement:
        """UPDATE ... WHERE <key> = value 0; the columns' values follow."""
        found = self.cache.get(("update", keys))
        if found is None:
            _check(self.table, keys)
            where = key_filter(_none, self.table.key_column)
            found = update_statement(self.dialect, self.table, where, keys)
            self.cache["update", keys] = found
        return found


def _check(table: TableInfo, keys: Sequence[str]) -> None:
    for key in keys:
        if key not in table.columns:
            raise DatabaseError(_unknown_column(table, key))


class _MatchStep(_TableStep):
    """A step on the first record where `field_name` = `field_value`."""

    __slots__ = ("_field", "_value")

    def __init__(self, spec: Any, c: StepCompiler) -> None:
        super().__init__(spec, c)
        self._field: str = spec.field_name
        if not spec.field_name or is_template(spec.field_name):
            c.error("field_name", "field_name must be a column name")
        self._value: Evaluator = c.template(spec.field_value, "field_value")

    def _find(self, ds: DataSource, table: TableInfo, report: Report, **kw: Any) -> Statement:
        """SELECT the first match (by primary key) : value 0 is field_value, value 1 the limit."""
        where = key_filter(self._value, self._field, "field_value")
        key = table.key_column
        sort = [SortKey(key, False, "field_name")] if key in table.columns else []
        return select_statement(ds.dialect, table, where, sort=sort, limit=1, report=report, **kw)

    def _check_field(self, table: TableInfo, report: Report) -> bool:
        if self._field in table.columns:
            return True
        report("field_name", _unknown_column(table, self._field))
        return False

    async def _first(self, ctx: StepContext, db: DataSource, find: Statement) -> Row | None:
        value = self._value(ctx)
        if value is None:
            raise DatabaseError("Missing param: field_value (it is null)")
        sql, params = find.bind([value, 1])
        return await db.fetchrow(sql, params)


class _Plan:
    __slots__ = ("find", "statements")

    def __init__(self, find: Statement, statements: _Statements) -> None:
        self.find = find
        self.statements = statements


class _WriteMatch(_MatchStep):
    """Add or Edit / Patch: find the first match, then update it by key (or insert)."""

    __slots__ = ("_data",)

    def __init__(self, spec: Any, c: StepCompiler) -> None:
        super().__init__(spec, c)
        self._data = _Data(spec.data, c)
        self._compile_plan(c)

    def build(self, ds: DataSource, table: TableInfo, report: Report) -> _Plan:
        self._check_field(table, report)
        self._data.check(table, report)
        return _Plan(self._find(ds, table, report), _Statements(ds, table))

    def _values(self, ctx: StepContext) -> dict[str, Any]:
        if self._data.dynamic is not None:
            return _record(ctx, self._data.dynamic, "data")
        return {k: ev(ctx) for k, ev in zip(self._data.keys, self._data.evaluators, strict=True)}

    async def _update(self, db: DataSource, plan: _Plan, row: Row, data: dict[str, Any]) -> Row:
        table = plan.statements.table
        key = table.key_column
        if not data:  # nothing to change: the record as it is
            return plan.statements.decode(row)
        statement = plan.statements.update_by_key(tuple(data))
        sql, params = statement.bind([row[key], *data.values()])
        updated = await db.fetchrow(sql, params)
        if updated is None:  # pragma: no cover - deleted between the two statements
            raise DatabaseError(f"record {key} = {row[key]!r} vanished while it was updated")
        return plan.statements.decode(updated)


class AddOrEditRecord(_WriteMatch):
    """Update the first record where field_name = field_value with `data`, or insert `data`
    (with field_name set to field_value) when there is none; returns the record."""

    Spec = AddOrEditRecordSpec
    function = "add_or_edit_record"
    display_name = "Add or Edit Record"

    __slots__ = ()

    async def run(self, ctx: StepContext) -> Row:
        db = ctx.db(self.data_source)
        plan: _Plan = self._plan or self.plan(db)
        async with db.transaction():
            row = await self._first(ctx, db, plan.find)
            data = self._values(ctx)
            if row is not None:
                return await self._update(db, plan, row, data)
            table = plan.statements.table
            if self._field not in data and self._field != table.key_column:
                data = {**data, self._field: self._value(ctx)}
            sql, params = plan.statements.insert(tuple(data)).bind(list(data.values()))
            inserted = await db.fetchrow(sql, params)
        assert inserted is not None  # INSERT ... RETURNING * returns the row
        return plan.statements.decode(inserted)


class PatchRecord(_WriteMatch):
    """Change only the keys of `data` on the first record where field_name = field_value;
    returns the updated record; no such record fails the step (Xano's NotFound)."""

    Spec = PatchRecordSpec
    function = "patch_record"
    display_name = "Patch Record"

    __slots__ = ()

    async def run(self, ctx: StepContext) -> Row:
        db = ctx.db(self.data_source)
        plan: _Plan = self._plan or self.plan(db)
        row = await self._first(ctx, db, plan.find)
        if row is None:
            raise _not_found(self.table_name, self._field, self._value(ctx))
        return await self._update(db, plan, row, self._values(ctx))


def _not_found(table: str, field: str, value: Any) -> DatabaseError:
    return DatabaseError(f'no record in "{table}" where {field} = {value!r:.80}', code=NOT_FOUND)


class HasRecord(_MatchStep):
    """Whether a record where field_name = field_value exists."""

    Spec = MatchSpec
    function = "has_record"
    display_name = "Has Record"

    __slots__ = ()

    def __init__(self, spec: MatchSpec, c: StepCompiler) -> None:
        super().__init__(spec, c)
        self._compile_plan(c)

    def build(self, ds: DataSource, table: TableInfo, report: Report) -> Statement:
        self._check_field(table, report)
        return self._find(ds, table, report, fields=[self._field], fields_path="field_name")

    async def run(self, ctx: StepContext) -> bool:
        db = ctx.db(self.data_source)
        find: Statement = self._plan or self.plan(db)
        return await self._first(ctx, db, find) is not None


class _BulkItems(_TableStep):
    """Bulk Update / Patch: `items`, each with the table's primary key, updated in one
    transaction; the result is how many records were updated."""

    replace = False  # Update: columns an item leaves out are set to null

    __slots__ = ("_items",)

    def __init__(self, spec: BulkItemsSpec, c: StepCompiler) -> None:
        super().__init__(spec, c)
        if not isinstance(spec.items, list) and not is_template(spec.items):
            c.error("items", "items must be a list of objects or a template yielding one")
        self._items = c.template(spec.items, "items")
        self._compile_plan(c)

    def build(self, ds: DataSource, table: TableInfo, report: Report) -> _Statements:
        if table.primary_key is None and "id" not in table.columns:
            report("table", f'table "{table.name}" has no primary key to match items by')
        return _Statements(ds, table)

    async def run(self, ctx: StepContext) -> int:
        db = ctx.db(self.data_source)
        statements: _Statements = self._plan or self.plan(db)
        items = self._items(ctx)
        if not isinstance(items, list):
            raise DatabaseError(f"items must be a list, got {type(items).__name__}")
        table = statements.table
        key = table.key_column
        others = tuple(c for c in table.columns if c != key)
        count = 0
        async with db.transaction():
            for i, item in enumerate(items):
                if not isinstance(item, dict) or item.get(key) is None:
                    raise DatabaseError(f'items[{i}] must be an object with its "{key}"')
                cols = others if self.replace else tuple(k for k in item if k != key)
                if not self.replace:
                    _check(table, cols)
                elif unknown := [k for k in item if k not in table.columns]:
                    raise DatabaseError(f"items[{i}]: {_unknown_column(table, unknown[0])}")
                if not cols:
                    continue
                sql, params = statements.update_by_key(cols).bind(
                    [item[key], *(item.get(c) for c in cols)]
                )
                count += len(await db.fetch(sql, params))
        return count


class BulkUpdateRecords(_BulkItems):
    """Replace whole records by primary key: columns an item leaves out become null."""

    Spec = BulkItemsSpec
    function = "bulk_update_records"
    display_name = "Bulk Update Records"
    replace = True

    __slots__ = ()


class BulkPatchRecords(_BulkItems):
    """Change only the given keys of each record, matched by primary key."""

    Spec = BulkItemsSpec
    function = "bulk_patch_records"
    display_name = "Bulk Patch Records"

    __slots__ = ()


class BulkDeleteRecords(_TableStep):
    """Delete every record matching `filter` (required: an empty one would clear the table,
    which is Clear All Records); returns the count."""

    Spec = BulkDeleteRecordsSpec
    function = "bulk_delete_records"
    display_name = "Bulk Delete Records"

    __slots__ = ("_filter",)

    def __init__(self, spec: BulkDeleteRecordsSpec, c: StepCompiler) -> None:
        super().__init__(spec, c)
        self._filter: FilterSpec = parse_filter(spec.filter, c)
        if self._filter.empty:
            c.error("filter", "an empty filter deletes every record; use Clear All Records")
        self._compile_plan(c)

    def build(self, ds: DataSource, table: TableInfo, report: Report) -> Statement:
        return delete_statement(ds.dialect, table, self._filter, report=report)

    async def run(self, ctx: StepContext) -> int:
        db = ctx.db(self.data_source)
        statement: Statement = self._plan or self.plan(db)
        sql, params = statement.bind([ev(ctx) for ev in self._filter.evaluators])
        return await db.execute(sql, params)


_Sql = tuple[str, list[Any]]


class ClearAllRecords(_TableStep):
    """Delete every record of a table (XanoScript `db.truncate`); `reset` restarts its ids."""

    Spec = ClearAllRecordsSpec
    function = "clear_all_records"
    display_name = "Clear All Records"

    __slots__ = ("_reset",)

    def __init__(self, spec: ClearAllRecordsSpec, c: StepCompiler) -> None:
        super().__init__(spec, c)
        self._reset = spec.reset
        self._compile_plan(c)

    def build(self, ds: DataSource, table: TableInfo, report: Report) -> list[_Sql]:
        name = ds.quote(table.name)
        if ds.dialect == "postgresql":
            return [(f"TRUNCATE {name}" + (" RESTART IDENTITY" if self._reset else ""), [])]
        sql: list[_Sql] = [(f"DELETE FROM {name}", [])]
        if self._reset:
            # AUTOINCREMENT tables keep their counter here (plain rowid tables restart anyway).
            sql.append(("DELETE FROM sqlite_sequence WHERE name = ?", [table.name]))
        return sql

    async def run(self, ctx: StepContext) -> None:
        db = ctx.db(self.data_source)
        statements: list[_Sql] = self._plan or self.plan(db)
        async with db.transaction():
            for sql, params in statements:
                try:
                    await db.execute(sql, params)
                except DatabaseError:
                    if "sqlite_sequence" not in sql:
                        raise
        return None


class DatabaseTransaction(Step):
    """Run `steps` all or nothing on the task's data source (or `data_source`): an error inside
    rolls back every statement they sent and propagates; Return, Break and Continue commit.
    HTTP calls, cache writes and e-mails inside are not undone."""

    Spec = DatabaseTransactionSpec
    function = "database_transaction"
    display_name = "Database Transaction"

    __slots__ = ("_steps", "data_source")

    def __init__(self, spec: DatabaseTransactionSpec, c: StepCompiler) -> None:
        self.data_source = spec.data_source
        c.require_datasource(spec.data_source)
        self._steps = c.steps(spec.steps, "steps")
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> None:
        db = ctx.db(self.data_source)
        async with db.transaction():
            signal = await run_steps_keeping_signals(ctx, self._steps)
        if signal is not None:
            raise signal
        return None

    def children(self) -> Sequence[Sequence[Step]]:
        return (self._steps,)


RECORD_STEPS: tuple[type[Step], ...] = (
    AddOrEditRecord,
    PatchRecord,
    HasRecord,
    BulkUpdateRecords,
    BulkPatchRecords,
    BulkDeleteRecords,
    ClearAllRecords,
    DatabaseTransaction,
)
