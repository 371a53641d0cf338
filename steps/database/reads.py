"""Database steps that read: Query All Records (filter, sort, paging, counts) and Get Record."""

from __future__ import annotations

from typing import Any

from daemon.core.errors import DatabaseError
from daemon.resources.db.base import DataSource, TableInfo
from steps._sql import (
    Report,
    SortKey,
    Statement,
    count_statement,
    parse_filter,
    parse_sort,
    row_decoder,
    select_statement,
    to_count,
)
from steps.base import Evaluator, StepCompiler, StepContext
from steps.database.tables import (
    Decoder,
    GetRecordSpec,
    PagingSpec,
    QueryAllRecordsSpec,
    Row,
    _TableStep,
    _target,
    _where,
)


def _one(ctx: StepContext) -> int:
    return 1


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
