"""Database steps: query, get, add, bulk add, edit, delete records, and direct SQL."""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any, Literal

import msgspec

from daemon.core.errors import DatabaseError, join_path
from daemon.core.text import did_you_mean
from daemon.resources.db.base import DataSource, TableInfo
from daemon.resources.db.values import coerce_column, decode_rows, sqlite_param
from steps._sql import (
    FilterSpec,
    Report,
    SortKey,
    Statement,
    count_statement,
    is_template,
    key_filter,
    parse_filter,
    parse_sort,
    raise_report,
    row_decoder,
    select_statement,
    to_count,
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
from steps.base import Evaluator, Step, StepCompiler, StepContext, StepSpec

Row = dict[str, Any]
Decoder = Callable[[Row], Row]


def _one(ctx: StepContext) -> int:
    return 1


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


class DirectDatabaseQuerySpec(StepSpec, kw_only=True, forbid_unknown_fields=True):
    sql: str
    params: Any = None
    data_source: str | None = None
    # "?": the SQL marks values with `?` on every data source (XanoScript's `arg`s); "native":
    # the data source's own ($1 on PostgreSQL, ? on SQLite).
    placeholders: Literal["native", "?"] = "native"
    response_type: Literal["list", "single"] = "list"  # single: the first row, or null


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


# --- steps ---------------------------------------------------------------------------------------


class _QueryPlan:
    __slots__ = ("count", "decode", "statement")

    def __init__(
        self, statement: Statement, decode: Decoder, count: Statement | None = None
    ) -> None:
        self.statement = statement
        self.decode = decode
        self.count = count


class QueryAllRecords(_TableStep):
    """Rows of a table matching a filter, sorted and paged; each decoded to a JSON-shaped record.

    `return_type` (Xano's): `list` (default), `single` (the first row or null), `count`,
    `exists`. `paging` pages a list the way Xano does, in its envelope (`items`,
    `itemsReceived`, `curPage`, `nextPage`, `prevPage`, `offset`, `perPage`, and with `totals`
    `itemsTotal`, `pageTotal`) unless `metadata` is false.
    """

    Spec = QueryAllRecordsSpec
    function = "query_all_records"
    display_name = "Query All Records"

    __slots__ = (
        "_evaluators",
        "_fields",
        "_filter",
        "_limit",
        "_offset",
        "_paging",
        "_return",
        "_sort",
    )

    def __init__(self, spec: QueryAllRecordsSpec, c: StepCompiler) -> None:
        super().__init__(spec, c)
        self._filter = parse_filter(spec.filter, c)
        self._sort = parse_sort(spec.sort, c)
        self._fields = spec.fields
        self._return = spec.return_type
        self._evaluators = list(self._filter.evaluators)
        self._limit = self._offset = None
        self._paging: tuple[Evaluator, Evaluator, Evaluator, PagingSpec] | None = None
        if spec.paging is not None:
            if spec.limit is not None or spec.offset is not None:
                c.error("paging", "give paging or limit/offset, not both")
            if spec.return_type != "list":
                c.error("paging", "paging applies to a list (return_type list)")
            p = spec.paging
            self._paging = (
                c.template(p.page, "paging.page"),
                c.template(p.per_page, "paging.per_page"),
                c.template(p.offset, "paging.offset"),
                p,
            )
        # limit/offset values follow the filter's in the evaluated-values layout.
        if spec.limit is not None or self._paging is not None or self._return != "list":
            self._limit = len(self._evaluators)
            limit = 1 if self._return != "list" else spec.limit
            self._evaluators.append(c.template(limit, "limit"))
        if spec.offset is not None or self._paging is not None:
            self._offset = len(self._evaluators)
            self._evaluators.append(c.template(spec.offset, "offset"))
        self._compile_plan(c)

    def build(self, ds: DataSource, table: TableInfo, report: Report) -> _QueryPlan:
        fields = self._fields
        if self._return in ("count", "exists"):
            fields = None
        sort = self._sort
        if not sort and (self._paging is not None or self._return == "single"):
            # Pages and "the first match" need an order: the primary key's (XANOSCRIPT.md §6.34).
            key = table.key_column
            sort = [SortKey(key, False, "sort")] if key in table.columns else []
        statement = select_statement(
            ds.dialect,
            table,
            self._filter,
            sort=sort if self._return != "exists" else (),
            fields=fields,
            limit=self._limit,
            offset=self._offset,
            report=report,
        )
        count = None
        if self._return == "count" or (self._paging is not None and self._paging[3].totals):
            count = count_statement(ds.dialect, table, self._filter, report=report)
        return _QueryPlan(statement, row_decoder(table), count)

    async def run(self, ctx: StepContext) -> Any:
        db = ctx.db(self.data_source)
        plan: _QueryPlan = self._plan or self.plan(db)
        values = [ev(ctx) for ev in self._evaluators]
        if self._return == "count":
            assert plan.count is not None
            sql, params = plan.count.bind(values)
            row = await db.fetchrow(sql, params)
            return int(next(iter(row.values()))) if row else 0
        paging = self._paging
        page = per_page = skip = 0
        if paging is not None:
            page, per_page, skip = _page_numbers(paging, ctx)
            # One row more than a page tells whether a next page exists.
            values[self._limit or 0] = per_page + 1
            values[self._offset or 0] = (page - 1) * per_page + skip
        sql, params = plan.statement.bind(values)
        rows = await db.fetch(sql, params)
        if self._return == "exists":
            return bool(rows)
        decode = plan.decode
        if self._return == "single":
            return decode(rows[0]) if rows else None
        if paging is None:
            return [decode(row) for row in rows]
        more = len(rows) > per_page
        items = [decode(row) for row in rows[:per_page]]
        if not paging[3].metadata:
            return items
        envelope: dict[str, Any] = {
            "itemsReceived": len(items),
            "curPage": page,
            "nextPage": page + 1 if more else None,
            "prevPage": page - 1 if page > 1 else None,
            "offset": (page - 1) * per_page + skip,
            "perPage": per_page,
            "items": items,
        }
        if paging[3].totals:
            assert plan.count is not None
            sql, params = plan.count.bind(values)
            row = await db.fetchrow(sql, params)
            total = int(next(iter(row.values()))) if row else 0
            envelope["itemsTotal"] = total
            envelope["pageTotal"] = -(-max(total - skip, 0) // per_page)
        return envelope


def _page_numbers(
    paging: tuple[Evaluator, Evaluator, Evaluator, PagingSpec], ctx: StepContext
) -> tuple[int, int, int]:
    numbers = []
    for ev, name, low in zip(paging[:3], ("page", "per_page", "offset"), (1, 1, 0), strict=True):
        value = ev(ctx)
        try:
            number = to_count(0 if value is None and name == "offset" else value)
        except (TypeError, ValueError) as exc:
            raise DatabaseError(f"paging.{name}: {exc}") from None
        if number is None or number < low:
            raise DatabaseError(f"paging.{name} must be at least {low}, got {value!r}")
        numbers.append(number)
    return numbers[0], numbers[1], numbers[2]


class GetRecord(_TableStep):
    """One record by primary key (`record_id`) or the first matching `filter`; null if none."""

    Spec = GetRecordSpec
    function = "get_record"
    display_name = "Get Record"

    __slots__ = ("_evaluators", "_filter", "_record_id")

    def __init__(self, spec: GetRecordSpec, c: StepCompiler) -> None:
        super().__init__(spec, c)
        self._record_id, self._filter = _target(spec, c, allow_all=True)
        self._evaluators: list[Evaluator] = []
        if self._record_id is not None:
            self._evaluators = [self._record_id, _one]
        elif self._filter is not None:
            self._evaluators = [*self._filter.evaluators, _one]
        if self._record_id is not None or self._filter is not None:
            self._compile_plan(c)

    def build(self, ds: DataSource, table: TableInfo, report: Report) -> _QueryPlan:
        where = _where(table, self._record_id, self._filter)
        limit = len(self._evaluators) - 1
        statement = select_statement(ds.dialect, table, where, limit=limit, report=report)
        return _QueryPlan(statement, row_decoder(table))

    async def run(self, ctx: StepContext) -> Row | None:
        db = ctx.db(self.data_source)
        plan: _QueryPlan = self._plan or self.plan(db)
        sql, params = plan.statement.bind([ev(ctx) for ev in self._evaluators])
        row = await db.fetchrow(sql, params)
        return None if row is None else plan.decode(row)


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


class DirectDatabaseQuery(Step):
    """Run SQL as written, with the data source's own placeholders; rows come back JSON-shaped.

    The SQL text itself is never templated (that would be injection); values go in `params`.
    """

    Spec = DirectDatabaseQuerySpec
    function = "direct_database_query"
    display_name = "Direct Database Query"

    __slots__ = ("_params", "_params_list", "_pg_sql", "_qmarks", "_single", "data_source", "sql")

    def __init__(self, spec: DirectDatabaseQuerySpec, c: StepCompiler) -> None:
        super().__init__(spec, c)
        self.data_source = spec.data_source
        self.sql = spec.sql
        self._qmarks = spec.placeholders == "?"
        self._pg_sql: str | None = None
        self._single = spec.response_type == "single"
        c.require_datasource(spec.data_source)
        if "{{" in spec.sql:
            c.error("sql", "the SQL text cannot hold templates; pass values through params")
        if not spec.sql.strip():
            c.error("sql", "sql is empty")
        self._params: list[Evaluator] = []
        self._params_list: Evaluator | None = None
        if isinstance(spec.params, list):
            self._params = [
                c.template(v, join_path("params", i)) for i, v in enumerate(spec.params)
            ]
        elif is_template(spec.params):
            self._params_list = c.template(spec.params, "params")
        elif spec.params is not None:
            c.error("params", "params must be a list of values or a template yielding one")

    async def run(self, ctx: StepContext) -> Any:
        db = ctx.db(self.data_source)
        if self._params_list is not None:
            params = self._params_list(ctx)
            if not isinstance(params, list):
                raise DatabaseError(f"params must be a list, got {type(params).__name__}")
        else:
            params = [ev(ctx) for ev in self._params]
        sql = self.sql
        if db.dialect == "sqlite":
            params = [sqlite_param(v) for v in params]
        elif self._qmarks:
            sql = self._pg_sql or qmarks_to_dollars(self.sql)
            self._pg_sql = sql
        rows = decode_rows(await db.fetch_raw(sql, params))
        if self._single:
            return rows[0] if rows else None
        return rows


def qmarks_to_dollars(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2…`, leaving quoted text, quoted names and
    comments alone."""
    out: list[str] = []
    n = 0
    i = 0
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"":
            end = sql.find(ch, i + 1)
            while end != -1 and sql[end + 1 : end + 2] == ch:  # a doubled quote inside
                end = sql.find(ch, end + 2)
            end = len(sql) if end == -1 else end + 1
            out.append(sql[i:end])
            i = end
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = len(sql) if end == -1 else end
            out.append(sql[i:end])
            i = end
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


DATABASE_STEPS: tuple[type[Step], ...] = (
    QueryAllRecords,
    GetRecord,
    AddRecord,
    BulkAddRecords,
    EditRecord,
    DeleteRecord,
    DirectDatabaseQuery,
)
