"""Filter/sort/limit compilation: SQL text and bound parameters per dialect, and name checks."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from daemon.core.errors import DatabaseError
from daemon.engine.compiler import StackCompiler
from daemon.engine.context import RunContext, TaskInfo
from daemon.resources.bundle import Resources
from daemon.resources.db.base import Dialect, TableInfo
from daemon.resources.db.values import column_info
from steps._sql import (
    delete_statement,
    insert_statement,
    parse_filter,
    parse_sort,
    select_statement,
    update_statement,
)
from steps.base import Registry

COLUMNS = [
    ("id", {"postgresql": "int4", "sqlite": "integer"}),
    ("status", {"postgresql": "text", "sqlite": "text"}),
    ("total", {"postgresql": "numeric", "sqlite": "numeric"}),
    ("created_at", {"postgresql": "timestamptz", "sqlite": "timestamp"}),
    ("note", {"postgresql": "text", "sqlite": "text"}),
]
T0 = 1772964000000  # 2026-03-08T10:00:00Z
T0_PG = datetime(2026, 3, 8, 10, tzinfo=UTC)
T0_SQLITE = "2026-03-08T10:00:00.000Z"


def table(dialect: Dialect) -> TableInfo:
    cols = {name: column_info(dialect, name, types[dialect]) for name, types in COLUMNS}
    return TableInfo("orders", cols, "id")


def compiler() -> StackCompiler:
    return StackCompiler(registry=Registry(()), file="t.json", defined=["a", "b", "ids", "s"])


def context(**variables: Any) -> RunContext:
    ctx = RunContext(
        task=TaskInfo(name="t", run_id="r", slot_id="s", scheduled_at=0),
        resources=Resources(),
        tz=ZoneInfo("UTC"),
    )
    ctx.scope.update(variables)
    return ctx


def compile_select(
    dialect: Dialect, raw_filter: Any, **kw: Any
) -> tuple[str, list[Any], StackCompiler]:
    c = compiler()
    spec = parse_filter(raw_filter, c)
    sort = parse_sort(kw.pop("sort", None), c)
    statement = select_statement(
        dialect, table(dialect), spec, sort=sort, report=c.error, fields=kw.pop("fields", None)
    )
    values = [ev(context(**kw)) for ev in spec.evaluators]
    sql, params = statement.bind(values)
    return sql, params, c


SELECT = 'SELECT * FROM "orders"'

# (filter, variables, postgres (sql, params), sqlite (sql, params))
CASES: list[tuple[Any, dict[str, Any], tuple[str, list[Any]], tuple[str, list[Any]]]] = [
    ({}, {}, (SELECT, []), (SELECT, [])),
    (
        {"status": "completed"},
        {},
        (SELECT + ' WHERE "status" = $1', ["completed"]),
        (SELECT + ' WHERE "status" = ?', ["completed"]),
    ),
    (
        {"note": None},
        {},
        (SELECT + ' WHERE "note" IS NULL', []),
        (SELECT + ' WHERE "note" IS NULL', []),
    ),
    (
        {"note": {"!=": None}},
        {},
        (SELECT + ' WHERE "note" IS NOT NULL', []),
        (SELECT + ' WHERE "note" IS NOT NULL', []),
    ),
    (
        {"note": "{{a}}"},
        {"a": None},
        (SELECT + ' WHERE "note" IS NULL', []),
        (SELECT + ' WHERE "note" IS NULL', []),
    ),
    (
        {"status": "completed", "created_at": {">=": "{{a}}", "<": "{{b}}"}},
        {"a": T0, "b": T0 + 1},
        (
            SELECT + ' WHERE "status" = $1 AND "created_at" >= $2 AND "created_at" < $3',
            ["completed", T0_PG, datetime(2026, 3, 8, 10, 0, 0, 1000, tzinfo=UTC)],
        ),
        (
            SELECT + ' WHERE "status" = ? AND "created_at" >= ? AND "created_at" < ?',
            ["completed", T0_SQLITE, "2026-03-08T10:00:00.001Z"],
        ),
    ),
    (
        {"$or": [{"status": "a"}, {"$and": [{"total": {">": "10"}}, {"note": {"is_null": True}}]}]},
        {},
        (
            SELECT + ' WHERE ("status" = $1 OR ("total" > $2 AND "note" IS NULL))',
            ["a", Decimal("10")],
        ),
        (SELECT + ' WHERE ("status" = ? OR ("total" > ? AND "note" IS NULL))', ["a", 10]),
    ),
    (
        {"id": {"in": "{{ids}}"}, "status": {"not_in": ["x", "y"]}},
        {"ids": [1, "2", 3]},
        (SELECT + ' WHERE "id" = ANY($1) AND "status" <> ALL($2)', [[1, 2, 3], ["x", "y"]]),
        (
            SELECT + ' WHERE "id" IN (SELECT value FROM json_each(?))'
            ' AND "status" NOT IN (SELECT value FROM json_each(?))',
            ["[1,2,3]", '["x","y"]'],
        ),
    ),
    (
        {"note": {"like": "a%", "ilike": "%B"}, "total": {"is_null": False}},
        {},
        (
            SELECT + ' WHERE "note" LIKE $1 AND "note" ILIKE $2 AND "total" IS NOT NULL',
            ["a%", "%B"],
        ),
        (
            # SQLite's LIKE ignores ASCII case: `like` is a GLOB there (case-sensitive).
            SELECT + ' WHERE "note" GLOB ? AND "note" LIKE ? AND "total" IS NOT NULL',
            ["a*", "%B"],
        ),
    ),
    (
        {"$or": []},
        {},
        (SELECT + " WHERE FALSE", []),
        (SELECT + " WHERE FALSE", []),
    ),
]


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
@pytest.mark.parametrize(("raw", "variables", "pg", "lite"), CASES)
def test_filter_compiles_to_sql_and_params(
    dialect: Dialect, raw: Any, variables: dict[str, Any], pg: Any, lite: Any
) -> None:
    """Each filter shape becomes one SQL text per dialect; values become coerced parameters."""
    sql, params, c = compile_select(dialect, raw, **variables)
    assert c.issues == []
    expected = pg if dialect == "postgresql" else lite
    assert (sql, params) == expected


def test_null_variant_is_built_on_demand_and_cached() -> None:
    """A templated equality is `= $1` normally and `IS NULL` when the value is null at run time."""
    c = compiler()
    spec = parse_filter({"note": "{{a}}", "status": "{{b}}"}, c)
    stmt = select_statement("postgresql", table("postgresql"), spec, report=c.error)
    assert stmt.bind(["x", "y"]) == (SELECT + ' WHERE "note" = $1 AND "status" = $2', ["x", "y"])
    assert stmt.bind([None, "y"]) == (SELECT + ' WHERE "note" IS NULL AND "status" = $1', ["y"])
    assert stmt.bind(["x", None]) == (
        SELECT + ' WHERE "note" = $1 AND "status" IS NULL',
        ["x"],
    )


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_sort_fields_limit_offset(dialect: Dialect) -> None:
    """Sort accepts objects and "-name" strings; limit/offset are bound and validated."""
    c = compiler()
    spec = parse_filter({"status": "a"}, c)
    sort = parse_sort([{"field": "total", "order": "desc"}, "-created_at", "id"], c)
    stmt = select_statement(
        dialect, table(dialect), spec, sort=sort, fields=["id", "total"], limit=1, offset=2
    )
    sql, params = stmt.bind(["a", 10, "5"])
    if dialect == "postgresql":
        assert sql == (
            'SELECT "id", "total" FROM "orders" WHERE "status" = $1'
            ' ORDER BY "total" DESC, "created_at" DESC, "id" ASC LIMIT $2 OFFSET $3'
        )
    else:
        assert sql.endswith("LIMIT ? OFFSET ?")
    assert params == ["a", 10, 5]
    with pytest.raises(DatabaseError, match="invalid value for limit"):
        stmt.bind(["a", -1, 0])
    only_offset = select_statement(dialect, table(dialect), None, offset=0)
    expected = " LIMIT -1 OFFSET ?" if dialect == "sqlite" else " OFFSET $1"
    assert only_offset.sql == SELECT + expected


@pytest.mark.parametrize(
    ("raw", "sort", "fields", "path", "message"),
    [
        (
            {"stauts": "x"},
            None,
            None,
            "filter.stauts",
            'unknown column "stauts" in table "orders" (did you mean "status"?)',
        ),
        ({"$or": [{"totl": 1}]}, None, None, "filter.$or[0].totl", '(did you mean "total"?)'),
        ({"status": {"~": 1}}, None, None, "filter.status.~", 'unknown operator "~"'),
        ({"status": {"in": 3}}, None, None, "filter.status.in", "in takes a list"),
        ({"status": {"is_null": "yes"}}, None, None, "filter.status.is_null", "true or false"),
        ({"$not": {}}, None, None, "filter.$not", 'unknown filter keyword "$not"'),
        ({}, {"field": "view_cont"}, None, "sort.field", 'unknown column "view_cont"'),
        ({}, {"field": "id", "order": "up"}, None, "sort.order", 'order must be "asc" or "desc"'),
        ({}, None, ["id", "nope"], "fields.nope", 'unknown column "nope"'),
        (
            {'orders"; DROP TABLE orders; --': 1},
            None,
            None,
            'filter.orders"; DROP TABLE orders; --',
            'unknown column "orders"; DROP TABLE orders; --"',
        ),
    ],
)
def test_bad_names_are_reported_with_paths(
    raw: Any, sort: Any, fields: Any, path: str, message: str
) -> None:
    """Unknown columns/operators are load-time errors naming the field path, with did-you-mean."""
    _, _, c = compile_select("postgresql", raw, sort=sort, fields=fields)
    assert [i.path for i in c.issues] == [path]
    assert message in c.issues[0].message


def test_write_statements() -> None:
    """INSERT/UPDATE/DELETE texts: RETURNING *, SET before WHERE, placeholders in text order."""
    t = table("postgresql")
    ins = insert_statement("postgresql", t, ["status", "created_at"])
    assert ins.bind(["a", T0]) == (
        'INSERT INTO "orders" ("status", "created_at") VALUES ($1, $2) RETURNING *',
        ["a", T0_PG],
    )
    assert insert_statement("sqlite", table("sqlite"), []).sql == (
        'INSERT INTO "orders" DEFAULT VALUES RETURNING *'
    )
    c = compiler()
    spec = parse_filter({"status": "{{s}}", "id": {"in": [1, 2]}}, c)
    upd = update_statement("postgresql", t, spec, ["note", "total"])
    assert upd.bind(["a", [1, 2], "n", 3.5]) == (
        'UPDATE "orders" SET "note" = $1, "total" = $2 WHERE "status" = $3 AND "id" = ANY($4)'
        " RETURNING *",
        ["n", Decimal("3.5"), "a", [1, 2]],
    )
    assert upd.bind([None, [1], "n", 1])[0].endswith(
        'WHERE "status" IS NULL AND "id" = ANY($3) RETURNING *'
    )
    lite = update_statement("sqlite", table("sqlite"), spec, ["note"])
    assert lite.bind(["a", [1], "n"])[1] == ["n", "a", "[1]"]
    dele = delete_statement("sqlite", table("sqlite"), spec)
    assert dele.sql == (
        'DELETE FROM "orders" WHERE "status" = ? AND "id" IN (SELECT value FROM json_each(?))'
    )


def test_bad_value_names_the_column() -> None:
    """A value that cannot be coerced fails the bind with the column's name."""
    c = compiler()
    spec = parse_filter({"id": "{{a}}"}, c)
    stmt = select_statement("postgresql", table("postgresql"), spec)
    with pytest.raises(DatabaseError, match='invalid value for column "id"'):
        stmt.bind(["abc"])


def test_identifiers_are_quoted() -> None:
    """Names are always emitted quoted, with embedded quotes doubled."""
    t = TableInfo('we"ird', {'c"ol': column_info("sqlite", 'c"ol', "text")}, None)
    c = compiler()
    stmt = select_statement("sqlite", t, parse_filter({'c"ol': 1}, c), report=c.error)
    assert stmt.sql == 'SELECT * FROM "we""ird" WHERE "c""ol" = ?'
