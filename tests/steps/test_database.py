"""Database steps on real PostgreSQL and SQLite, compiled by the real compiler and run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from daemon.core.errors import ConfigError, DatabaseError
from daemon.engine.compiler import StackCompiler, compile_stack
from daemon.engine.context import RunContext, TaskInfo
from daemon.resources.bundle import Resources
from daemon.resources.db import create_datasource
from daemon.resources.db.base import DataSource
from steps import build_registry
from steps.base import Step

REGISTRY = build_registry()
T0 = 1772964000000  # 2026-03-08T10:00:00Z
DAY = 24 * 3600 * 1000

DDL = {
    "postgresql": """
        DROP TABLE IF EXISTS orders, user_sessions, archived_sessions CASCADE;
        CREATE TABLE orders (
            id serial PRIMARY KEY, status text NOT NULL DEFAULT 'new', total numeric(10, 2),
            created_at timestamptz, day date, meta jsonb, paid boolean
        );
        CREATE TABLE user_sessions (
            id serial PRIMARY KEY, user_id int NOT NULL, created_at timestamptz NOT NULL
        );
        CREATE TABLE archived_sessions (
            id int PRIMARY KEY, user_id int NOT NULL, created_at timestamptz NOT NULL
        );
    """,
    "sqlite": """
        DROP TABLE IF EXISTS orders;
        DROP TABLE IF EXISTS user_sessions;
        DROP TABLE IF EXISTS archived_sessions;
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT NOT NULL DEFAULT 'new',
            total NUMERIC, created_at TIMESTAMP, day DATE, meta JSON, paid BOOLEAN
        );
        CREATE TABLE user_sessions (
            id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE archived_sessions (
            id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, created_at TIMESTAMP NOT NULL
        );
    """,
}

ORDERS = [
    {"status": "completed", "total": 10, "created_at": T0 + 1000, "paid": True},
    {"status": "completed", "total": 12.5, "created_at": T0 + 2000, "paid": True},
    {"status": "pending", "total": 3, "created_at": T0 + 3000, "paid": False},
    {"status": "completed", "total": 99, "created_at": T0 - DAY, "paid": True},
    {"status": "cancelled", "total": None, "created_at": None, "paid": None},
]


@pytest.fixture
async def ds(db_url: str, tmp_path: Path) -> AsyncIterator[DataSource]:
    dialect = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    (tmp_path / "schema.sql").write_text(DDL[dialect])
    source = create_datasource("primary", db_url, base_dir=tmp_path, init_sql=[Path("schema.sql")])
    await source.open()
    try:
        yield source
    finally:
        await source.close()


def resources(ds: DataSource) -> Resources:
    return Resources(datasources={"primary": ds}, default_datasource="primary")


def compile_(raw: list[dict[str, Any]], ds: DataSource, *, lazy: bool = False) -> list[Step]:
    """Compile with the schema at hand, or (lazy) as if the database was down during load."""
    if not lazy:
        return compile_stack(raw, registry=REGISTRY, resources=resources(ds)).steps
    comp = StackCompiler(
        registry=REGISTRY,
        file="<test>",
        datasources={},
        configured_datasources=["primary"],
        default_datasource="primary",
    )
    steps = comp.compile_list(raw, "function_stack")
    assert [i for i in comp.issues if i.severity == "error"] == []
    return steps


async def run(
    ds: DataSource, raw: list[dict[str, Any]], *, lazy: bool = False, **variables: Any
) -> Any:
    """Run the stack step by step; the last step's value is returned."""
    steps = compile_(raw, ds, lazy=lazy)
    ctx = RunContext(
        task=TaskInfo(name="t", run_id="r", slot_id="s", scheduled_at=T0),
        resources=resources(ds),
        tz=ZoneInfo("UTC"),
        started_ms=T0,
    )
    ctx.scope.update(variables)
    value = None
    for step in steps:
        value = await ctx.run_step(step)
    return value


async def seed_orders(ds: DataSource) -> int:
    return int(
        await run(ds, [{"function": "Bulk Add Records", "table": "orders", "items": ORDERS}])
    )


def step_issues(raw: list[dict[str, Any]], ds: DataSource) -> list[str]:
    with pytest.raises(ConfigError) as info:
        compile_(raw, ds)
    return [f"{i.path}: {i.message}" for i in info.value.issues if i.severity == "error"]


@pytest.mark.parametrize("lazy", [False, True], ids=["schema", "lazy"])
async def test_query_all_records_seed_report(ds: DataSource, lazy: bool) -> None:
    """The seed's daily report query: status + ms range on a timestamp column, JSON-shaped rows."""
    assert await seed_orders(ds) == 5
    raw = [
        {
            "function": "Query All Records",
            "table": "orders",
            "filter": {
                "status": "completed",
                "created_at": {">=": "{{start_of_day}}", "<": "{{end_of_day}}"},
            },
            "sort": {"field": "total", "order": "desc"},
            "return_variable": "daily_orders",
        }
    ]
    rows = await run(ds, raw, lazy=lazy)
    assert [r["total"] for r in rows] == [12.5, 10]
    assert rows[0]["created_at"] == T0 + 2000
    assert rows[0]["paid"] is True
    assert isinstance(rows[1]["total"], int)


async def test_query_fields_limit_offset_in_null(ds: DataSource) -> None:
    """fields, templated limit/offset, in-lists of any length and null equality."""
    await seed_orders(ds)
    rows = await run(
        ds,
        [
            {
                "function": "query_all_records",
                "table": "orders",
                "filter": {"status": {"in": "{{wanted}}"}},
                "sort": "-created_at",
                "fields": ["id", "status"],
                "limit": "{{n}}",
                "offset": 1,
            }
        ],
        wanted=["completed", "pending"],
        n=2,
    )
    assert rows == [{"id": 2, "status": "completed"}, {"id": 1, "status": "completed"}]
    nulls = await run(
        ds,
        [{"function": "Query All Records", "table": "orders", "filter": {"total": "{{x}}"}}],
        x=None,
    )
    assert [r["status"] for r in nulls] == ["cancelled"]
    with pytest.raises(DatabaseError, match="limit"):
        await run(
            ds,
            [{"function": "Query All Records", "table": "orders", "limit": "{{n}}"}],
            n=-1,
        )


async def test_get_record(ds: DataSource) -> None:
    """By record_id (primary key) or filter; null when nothing matches."""
    await seed_orders(ds)
    got = await run(
        ds, [{"function": "Get Record", "table": "orders", "record_id": "{{i}}"}], i="3"
    )
    assert got["status"] == "pending"
    assert got["created_at"] == T0 + 3000
    by_filter = await run(
        ds, [{"function": "Get Record", "table": "orders", "filter": {"status": "cancelled"}}]
    )
    assert by_filter["id"] == 5
    assert await run(ds, [{"function": "Get Record", "table": "orders", "record_id": 999}]) is None


async def test_add_record_coerces_and_returns_the_row(ds: DataSource) -> None:
    """Add Record inserts with ms -> timestamp coercion and returns the stored record."""
    raw = [
        {
            "function": "Add Record",
            "table": "orders",
            "data": {
                "total": "{{t}}",
                "created_at": "{{timestamp}}",
                "day": "{{current_date}}",
                "meta": {"by": "{{task.name}}"},
            },
        }
    ]
    rec = await run(ds, raw, t=7.25)
    assert rec == {
        "id": 1,
        "status": "new",
        "total": 7.25,
        "created_at": T0,
        "day": "2026-03-08",
        "meta": {"by": "t"},
        "paid": None,
    }
    stored = await ds.fetch("SELECT status, total FROM orders", [])
    assert len(stored) == 1 and stored[0]["status"] == "new"


async def test_seed_archival_copies_whole_records(ds: DataSource) -> None:
    """The seed's archival: query old sessions, Loop: Add Record data={{session}}, Delete Record."""
    sessions = [{"user_id": i, "created_at": T0 - (40 - i) * DAY} for i in range(1, 20)]
    assert (
        await run(
            ds, [{"function": "Bulk Add Records", "table": "user_sessions", "items": sessions}]
        )
        == 19
    )
    raw = [
        {
            "function": "Query All Records",
            "table": "user_sessions",
            "filter": {"created_at": {"<": "{{timestamp - (30 * 24 * 60 * 60 * 1000)}}"}},
            "return_variable": "old_sessions",
        },
        {
            "function": "Loop",
            "input_array": "{{old_sessions}}",
            "loop_item_variable": "session",
            "steps": [
                {"function": "Add Record", "table": "archived_sessions", "data": "{{session}}"},
                {
                    "function": "Delete Record",
                    "table": "user_sessions",
                    "record_id": "{{session.id}}",
                },
            ],
        },
    ]
    await run(ds, raw)
    archived = await ds.fetch("SELECT id, user_id FROM archived_sessions ORDER BY id", [])
    assert [r["user_id"] for r in archived] == list(range(1, 10))
    left = await ds.fetch("SELECT count(*) AS n FROM user_sessions", [])
    assert left[0]["n"] == 10
    copied = await run(
        ds, [{"function": "Get Record", "table": "archived_sessions", "record_id": 1}]
    )
    assert copied["created_at"] == T0 - 39 * DAY


async def test_dynamic_data_unknown_column(ds: DataSource) -> None:
    """Templated data is checked at run time: an unknown key fails with did-you-mean."""
    raw = [{"function": "Add Record", "table": "orders", "data": "{{rec}}"}]
    with pytest.raises(
        DatabaseError, match=r'unknown column "totl" in table "orders" \(did you mean "total"\?\)'
    ):
        await run(ds, raw, rec={"status": "x", "totl": 1})
    with pytest.raises(DatabaseError, match='invalid value for column "total"'):
        await run(ds, raw, rec={"status": "x", "total": "lots"})
    assert await ds.fetch("SELECT * FROM orders", []) == []


async def test_edit_record(ds: DataSource) -> None:
    """Edit by record_id returns the record (or null); by filter returns every updated record."""
    await seed_orders(ds)
    one = await run(
        ds,
        [
            {
                "function": "Edit Record",
                "table": "orders",
                "record_id": 3,
                "data": {"status": "done", "created_at": "{{timestamp}}"},
            }
        ],
    )
    assert (one["status"], one["created_at"]) == ("done", T0)
    many = await run(
        ds,
        [
            {
                "function": "Edit Record",
                "table": "orders",
                "filter": {"status": "completed", "total": {">": 10}},
                "data": "{{patch}}",
            }
        ],
        patch={"paid": False, "meta": {"flag": 1}},
    )
    assert sorted(r["id"] for r in many) == [2, 4]
    assert all(r["paid"] is False and r["meta"] == {"flag": 1} for r in many)
    missing = await run(
        ds,
        [{"function": "Edit Record", "table": "orders", "record_id": 999, "data": {"status": "x"}}],
    )
    assert missing is None


async def test_delete_record(ds: DataSource) -> None:
    """Delete by record_id or filter returns the number of rows deleted."""
    await seed_orders(ds)
    assert await run(ds, [{"function": "Delete Record", "table": "orders", "record_id": 1}]) == 1
    assert await run(ds, [{"function": "Delete Record", "table": "orders", "record_id": 1}]) == 0
    deleted = await run(
        ds,
        [
            {
                "function": "Delete Record",
                "table": "orders",
                "filter": {"$or": [{"status": "pending"}, {"paid": {"is_null": True}}]},
            }
        ],
    )
    assert deleted == 2
    left = await ds.fetch("SELECT id FROM orders ORDER BY id", [])
    assert [r["id"] for r in left] == [2, 4]


async def test_direct_database_query(ds: DataSource) -> None:
    """Raw SQL with the data source's own placeholders; rows come back JSON-shaped."""
    await seed_orders(ds)
    p1, p2 = ds.placeholder(1), ds.placeholder(2)
    raw = [
        {
            "function": "Direct Database Query",
            "sql": f"SELECT id, created_at, total FROM orders WHERE status = {p1} AND total > {p2}"
            " ORDER BY id",
            "params": ["{{s}}", 10],
        }
    ]
    rows = await run(ds, raw, s="completed")
    assert [r["id"] for r in rows] == [2, 4]
    if ds.dialect == "postgresql":
        assert rows[0] == {"id": 2, "created_at": T0 + 2000, "total": 12.5}
    with pytest.raises(DatabaseError):
        await run(ds, [{"function": "Direct Database Query", "sql": "SELECT nope FROM orders"}])


async def test_bulk_add_records(ds: DataSource) -> None:
    """Bulk add returns the count; differently shaped items keep their column defaults."""
    items = [{"total": i, "created_at": T0 + i} for i in range(100)] + [{"status": "odd"}]
    bulk = {"function": "Bulk Add Records", "table": "orders", "items": "{{items}}"}
    count = await run(
        ds, [{"function": "Bulk Add Records", "table": "orders", "items": "{{items}}"}], items=items
    )
    assert count == 101
    rows = await ds.fetch(
        "SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY status", []
    )
    assert [(r["status"], r["n"]) for r in rows] == [("new", 100), ("odd", 1)]
    mixed = [{"total": 1}, {"status": "solo"}, {"total": 2, "created_at": "2026-03-08T10:00:00Z"}]
    assert await run(ds, [bulk], items=mixed) == 3
    got = await ds.fetch("SELECT status FROM orders WHERE id > 101 ORDER BY id", [])
    assert [r["status"] for r in got] == ["new", "solo", "new"]
    with pytest.raises(DatabaseError, match='invalid value for column "created_at"'):
        await run(ds, [bulk], items=[{"created_at": T0}, {"created_at": "not a time"}])
    with pytest.raises(DatabaseError, match=r'items\[1\]: unknown column "nope"'):
        await run(
            ds,
            [{"function": "Bulk Add Records", "table": "orders", "items": "{{items}}"}],
            items=[{"total": 1}, {"nope": 1}],
        )


async def test_load_time_errors_name_paths(ds: DataSource) -> None:
    """Unknown tables and columns are load-time errors with did-you-mean, at their field path."""
    issues = step_issues(
        [
            {"function": "Query All Records", "table": "order"},
            {"function": "Query All Records", "table": "orders", "filter": {"stauts": "x"}},
            {"function": "Add Record", "table": "orders", "data": {"totl": 1}},
            {"function": "Delete Record", "table": "orders"},
            {"function": "Edit Record", "table": "orders", "filter": {}, "data": {"status": "x"}},
        ],
        ds,
    )
    assert issues == [
        'function_stack[0].table: unknown table "order" (did you mean "orders"?)',
        "function_stack[1].filter.stauts: "
        'unknown column "stauts" in table "orders" (did you mean "status"?)',
        "function_stack[2].data.totl: "
        'unknown column "totl" in table "orders" (did you mean "total"?)',
        "function_stack[3].record_id: record_id or filter is required",
        "function_stack[4].filter: "
        "an empty filter matches every row; use Direct Database Query for that",
    ]


async def test_injection_is_only_an_unknown_name(ds: DataSource) -> None:
    """A hostile table/column name is an unknown name (load time or run time); values are bound."""
    hostile = 'orders"; DROP TABLE orders; --'
    await seed_orders(ds)
    issues = step_issues([{"function": "Query All Records", "table": hostile}], ds)
    assert issues == [f'function_stack[0].table: unknown table "{hostile}"']
    with pytest.raises(DatabaseError, match="unknown table"):
        await run(ds, [{"function": "Query All Records", "table": hostile}], lazy=True)
    with pytest.raises(DatabaseError, match="unknown column"):
        await run(
            ds,
            [{"function": "Query All Records", "table": "orders", "filter": {hostile: 1}}],
            lazy=True,
        )
    rec = await run(
        ds, [{"function": "Add Record", "table": "orders", "data": {"status": "{{v}}"}}], v=hostile
    )
    assert rec["status"] == hostile
    assert len(await ds.fetch("SELECT id FROM orders", [])) == 6


async def test_step_data_source_override(ds: DataSource, tmp_path: Path) -> None:
    """A step's data_source picks another configured data source over the task's."""
    other = create_datasource("other", "sqlite://:memory:", base_dir=tmp_path)
    await other.open()
    try:
        await other.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)", [])
        await other.refresh_schema()
        res = Resources(datasources={"primary": ds, "other": other}, default_datasource="primary")
        steps = compile_stack(
            [
                {
                    "function": "Add Record",
                    "table": "notes",
                    "data_source": "other",
                    "data": {"body": "hi"},
                }
            ],
            registry=REGISTRY,
            resources=res,
        ).steps
        ctx = RunContext(task=TaskInfo("t", "r", "s", T0), resources=res, tz=ZoneInfo("UTC"))
        assert await ctx.run_step(steps[0]) == {"id": 1, "body": "hi"}
    finally:
        await other.close()
