"""The Direct Database Query step: SQL as written, values bound as parameters."""

from __future__ import annotations

from typing import Any, Literal

from daemon.core.errors import DatabaseError, join_path
from daemon.resources.db.values import decode_rows, sqlite_param
from steps._sql import is_template
from steps.base import Evaluator, Step, StepCompiler, StepContext, StepSpec


class DirectDatabaseQuerySpec(StepSpec, kw_only=True, forbid_unknown_fields=True):
    sql: str
    params: Any = None
    data_source: str | None = None
    # "?": the SQL marks values with `?` on every data source (XanoScript's `arg`s); "native":
    # the data source's own ($1 on PostgreSQL, ? on SQLite).
    placeholders: Literal["native", "?"] = "native"
    response_type: Literal["list", "single"] = "list"  # single: the first row, or null


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
