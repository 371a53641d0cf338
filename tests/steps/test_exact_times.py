"""Timestamps move between rows exactly (microseconds kept) while expressions see ms."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from daemon.core.millis import Millis, plain
from daemon.engine.compiler import compile_stack
from daemon.engine.context import RunContext, TaskInfo
from daemon.expr.parser import compile_template
from daemon.resources.bundle import Resources
from daemon.resources.db import create_datasource
from daemon.resources.db.base import DataSource
from daemon.xano import values as xv
from steps import build_registry

REGISTRY = build_registry()
EXACT = datetime(2026, 10, 23, 6, 11, 54, 134827, tzinfo=UTC)
EXACT_MS = 1792735914134  # EXACT, cut to whole milliseconds

DDL = {
    "postgresql": """
        DROP TABLE IF EXISTS src, dst;
        CREATE TABLE src (id int PRIMARY KEY, at timestamptz, local_at timestamp, n bigint);
        CREATE TABLE dst (id int PRIMARY KEY, at timestamptz, local_at timestamp, n bigint);
        INSERT INTO src VALUES
            (1, '2026-10-23 06:11:54.134827+00', '2026-10-23 06:11:54.134827', 1),
            (2, '2026-10-23 08:11:54.000001+02', '1999-12-31 23:59:59.999999', 2);
    """,
    # SQLite keeps timestamps as text: written back exactly as they were stored.
    "sqlite": """
        DROP TABLE IF EXISTS src;
        DROP TABLE IF EXISTS dst;
        CREATE TABLE src (id INTEGER PRIMARY KEY, at TIMESTAMP, local_at DATETIME, n INTEGER);
        CREATE TABLE dst (id INTEGER PRIMARY KEY, at TIMESTAMP, local_at DATETIME, n INTEGER);
        INSERT INTO src VALUES
            (1, '2026-10-23T06:11:54.134827Z', '2026-10-23 06:11:54.134827', 1),
            (2, '2026-10-23 08:11:54.000001+02:00', '1999-12-31T23:59:59.999999', 2);
    """,
}


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


async def run(ds: DataSource, raw: list[dict[str, Any]]) -> Any:
    """Compile against the schema and run the steps in one context; the last value returned."""
    res = Resources(datasources={"primary": ds}, default_datasource="primary")
    steps = compile_stack(raw, registry=REGISTRY, resources=res).steps
    ctx = RunContext(
        task=TaskInfo(name="t", run_id="r", slot_id="s", scheduled_at=0),
        resources=res,
        tz=ZoneInfo("UTC"),
    )
    value = None
    for step in steps:
        value = await ctx.run_step(step)
    return value


async def table(ds: DataSource, name: str) -> list[tuple[Any, ...]]:
    """Raw driver values (datetimes on PostgreSQL, stored text on SQLite), by id."""
    rows = await ds.fetch(f"SELECT id, at, local_at, n FROM {name} ORDER BY id", [])
    return [(r["id"], r["at"], r["local_at"], r["n"]) for r in rows]


QUERY = {"function": "Query All Records", "table": "src", "sort": "id", "return_variable": "rows"}
COPIES: dict[str, list[dict[str, Any]]] = {
    "loop-add-record-whole": [
        QUERY,
        {
            "function": "Loop",
            "input_array": "{{rows}}",
            "loop_item_variable": "row",
            "steps": [{"function": "Add Record", "table": "dst", "data": "{{row}}"}],
        },
    ],
    "loop-add-record-fields": [
        QUERY,
        {
            "function": "Loop",
            "input_array": "{{rows}}",
            "loop_item_variable": "row",
            "steps": [
                {
                    "function": "Add Record",
                    "table": "dst",
                    "data": {
                        "id": "{{row.id}}",
                        "at": "{{row.at}}",
                        "local_at": "{{row.local_at}}",
                        "n": "{{row.n}}",
                    },
                }
            ],
        },
    ],
    "bulk-add-records": [
        QUERY,
        {"function": "Bulk Add Records", "table": "dst", "items": "{{rows}}"},
    ],
    "edit-record": [
        QUERY,
        {"function": "Bulk Add Records", "table": "dst", "items": [{"id": 1}, {"id": 2}]},
        {
            "function": "Loop",
            "input_array": "{{rows}}",
            "loop_item_variable": "row",
            "steps": [
                {
                    "function": "Edit Record",
                    "table": "dst",
                    "record_id": "{{row.id}}",
                    "data": {"at": "{{row.at}}", "local_at": "{{row.local_at}}", "n": "{{row.n}}"},
                }
            ],
        },
    ],
    "direct-query-then-add": [
        {
            "function": "Direct Database Query",
            "sql": "SELECT id, at, local_at, n FROM src ORDER BY id",
            "return_variable": "rows",
        },
        {"function": "Bulk Add Records", "table": "dst", "items": "{{rows}}"},
    ],
}


def instants(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """SQLite text timestamps as aware datetimes (naive text read as UTC)."""

    def parse(v: Any) -> Any:
        if not isinstance(v, str):
            return v
        dt = datetime.fromisoformat(v)
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)

    return [tuple(parse(v) for v in row) for row in rows]


@pytest.mark.parametrize("stack", COPIES.values(), ids=COPIES.keys())
async def test_copied_rows_keep_every_microsecond(ds: DataSource, stack: list[Any]) -> None:
    """Read, then write to a column of the same type: the stored values are identical (SQLite
    text as it was; raw SQL hands SQLite's text over as text, which keeps the exact instant)."""
    await run(ds, stack)
    copied, source = await table(ds, "dst"), await table(ds, "src")
    if ds.dialect == "sqlite" and stack[0]["function"] == "Direct Database Query":
        copied, source = instants(copied), instants(source)
    assert copied == source


async def test_expressions_see_ms_and_arithmetic_is_plain(ds: DataSource) -> None:
    """A read timestamp is ms to expressions and JSON; arithmetic on it yields a plain int."""
    rows = await run(ds, [QUERY])
    at = rows[0]["at"]
    assert at == EXACT_MS and orjson.loads(orjson.dumps(rows[0]))["at"] == EXACT_MS
    later = await run(
        ds,
        [
            QUERY,
            {"function": "Create Variable", "name": "t", "value": "{{rows[0].at + 1}}"},
            {"function": "Create Variable", "name": "u", "value": "{{rows[0].at / 2}}"},
            {"function": "Create Variable", "name": "both", "value": "{{[t, u]}}"},
        ],
    )
    assert later == [EXACT_MS + 1, EXACT_MS // 2] and [type(v) for v in later] == [int, int]


async def test_a_computed_time_is_written_as_whole_milliseconds(ds: DataSource) -> None:
    """`row.at + 0` is a new number: it is written as the ms it says (no hidden microseconds)."""
    await run(
        ds,
        [
            QUERY,
            {
                "function": "Add Record",
                "table": "dst",
                "data": {"id": 1, "at": "{{rows[0].at + 0}}"},
            },
        ],
    )
    got = await run(ds, [{"function": "Get Record", "table": "dst", "record_id": 1}])
    assert got["at"] == EXACT_MS
    assert Millis.aware(got["at"]) == EXACT.replace(microsecond=134000)


async def test_cross_database_copy_keeps_microseconds(
    pg_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    """PostgreSQL timestamptz -> SQLite TIMESTAMP text -> PostgreSQL: the instant is unchanged."""
    (tmp_path / "pg.sql").write_text(DDL["postgresql"])
    (tmp_path / "lite.sql").write_text(DDL["sqlite"].split("INSERT")[0])
    pg = create_datasource("pg", pg_url, base_dir=tmp_path, init_sql=[Path("pg.sql")])
    lite = create_datasource("lite", sqlite_url, base_dir=tmp_path, init_sql=[Path("lite.sql")])
    await pg.open()
    await lite.open()
    try:
        res = Resources(datasources={"pg": pg, "lite": lite}, default_datasource="pg")
        stack = [
            {**QUERY, "data_source": "pg"},
            {"function": "Bulk Add Records", "table": "src", "items": "{{rows}}",
             "data_source": "lite"},
            {"function": "Query All Records", "table": "src", "sort": "id", "data_source": "lite",
             "return_variable": "back"},
            {"function": "Bulk Add Records", "table": "dst", "items": "{{back}}",
             "data_source": "pg"},
        ]  # fmt: skip
        steps = compile_stack(stack, registry=REGISTRY, resources=res).steps
        ctx = RunContext(
            task=TaskInfo(name="t", run_id="r", slot_id="s", scheduled_at=0),
            resources=res,
            tz=ZoneInfo("UTC"),
        )
        for step in steps:
            await ctx.run_step(step)
        text = await lite.fetch("SELECT at FROM src ORDER BY id", [])
        assert text[0]["at"] == "2026-10-23T06:11:54.134827Z"
        assert await table(pg, "dst") == await table(pg, "src")
    finally:
        await lite.close()
        await pg.close()


MILLIS = Millis(EXACT)
PLAIN_INT_CASES = {
    "add": MILLIS + 1,
    "radd": 1 + MILLIS,
    "sub": MILLIS - 1,
    "mul": MILLIS * 1,
    "floordiv": MILLIS // 1,
    "mod": MILLIS % 10**15,
    "neg": -MILLIS,
    "pos": +MILLIS,
    "abs": abs(MILLIS),
    "round": round(MILLIS),
    "int": int(MILLIS),
}


@pytest.mark.parametrize("value", PLAIN_INT_CASES.values(), ids=PLAIN_INT_CASES.keys())
def test_millis_arithmetic_returns_plain_ints(value: Any) -> None:
    """Every arithmetic operation on a Millis returns a plain int (no exact time carried on)."""
    assert type(value) is int


SERIALIZED = {
    "orjson": lambda v: orjson.loads(orjson.dumps(v)),
    "json": lambda v: json.loads(json.dumps(v)),
    "str": lambda v: int(str(v)),
    "repr": lambda v: int(repr(v)),
    "render": lambda v: int(compile_template("x{{ v }}").evaluate(_Scope(v))[1:]),
}


@pytest.mark.parametrize("dump", SERIALIZED.values(), ids=SERIALIZED.keys())
def test_millis_serializes_as_its_number(dump: Any) -> None:
    """JSON (orjson and json), str, repr and template text all show the ms number."""
    assert dump(MILLIS) == EXACT_MS


def test_millis_survives_copy_and_pickle_and_plain_strips_it() -> None:
    """copy/deepcopy/pickle keep the exact datetime; `plain` turns it into the int it shows."""
    for clone in (copy.copy(MILLIS), copy.deepcopy(MILLIS), pickle.loads(pickle.dumps(MILLIS))):
        assert type(clone) is Millis and clone.dt == EXACT and clone == EXACT_MS
    assert type(plain(MILLIS)) is int and [type(v) for v in plain([MILLIS, 1])] == [int, int]


class _Scope:
    def __init__(self, v: Any) -> None:
        self.vars = {"v": v}
        self.tz = ZoneInfo("UTC")

    def builtin(self, name: str) -> Any:
        raise KeyError(name)


FILTERED = {
    "format_timestamp": (
        "{{ rows[0].at|format_timestamp:'Y-m-d H:i:s.v' }}",
        "2026-10-23 06:11:54.134",
    ),
    "add": ("{{ rows[0].at|add:1 }}", EXACT_MS + 1),
    "is_int": ("{{ rows[0].at|is_int }}", True),
    "to_text": ("{{ rows[0].at|to_text }}", str(EXACT_MS)),
    # A list of them: row 2 is 06:11:54.000001 UTC, the same second, 134 ms earlier.
    "sum of a list": ("{{ rows.at|sum }}", EXACT_MS + EXACT_MS - 134),
}


@pytest.mark.parametrize(("template", "expected"), FILTERED.values(), ids=FILTERED.keys())
async def test_filters_see_a_read_time_as_its_number(
    ds: DataSource, template: str, expected: Any
) -> None:
    """The `|` filters take a time read from a column as the plain ms number."""
    value = await run(ds, [QUERY, {"function": "Create Variable", "name": "v", "value": template}])
    assert value == expected and type(value) is type(expected)


XANO_OPS = {
    "add": (lambda m: xv.add(m, 1), EXACT_MS + 1),
    "add text": (lambda m: xv.add(m, "x"), f"{EXACT_MS}x"),
    "subtract": (lambda m: xv.numeric(xv.SUB, lambda a, b: a - b)(m, 1), EXACT_MS - 1),
    "loose ==": (lambda m: xv.loose_eq(m, str(EXACT_MS)), True),
    "ordered <": (lambda m: xv.ordered(lambda c: c < 0, lambda a, b: a < b)(m, "9" * 20), True),
    "text": (lambda m: xv.text(m), str(EXACT_MS)),
}


@pytest.mark.parametrize(("op", "expected"), XANO_OPS.values(), ids=XANO_OPS.keys())
def test_xanoscript_operators_see_a_read_time_as_its_number(op: Any, expected: Any) -> None:
    """XanoScript's PHP-like operators take a Millis as the plain ms number."""
    assert op(MILLIS) == expected
