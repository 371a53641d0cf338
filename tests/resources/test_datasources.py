"""Data sources on real PostgreSQL and SQLite: open, init_sql, introspection, coercion, errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.core.errors import DatabaseError
from daemon.resources.db import create_datasource
from daemon.resources.db.base import DataSource, redact_url
from daemon.resources.db.sqlite import sqlite_path

T0 = 1772964000123  # 2026-03-08T10:00:00.123Z

DDL = {
    "postgresql": """
        DROP VIEW IF EXISTS paid_orders;
        DROP TABLE IF EXISTS orders;
        CREATE TABLE orders (
            id serial PRIMARY KEY, status text NOT NULL, total numeric(10, 2),
            created_at timestamptz, local_at timestamp, day date, meta jsonb, paid boolean,
            ref uuid, blob bytea, qty int8, ratio float8
        );
        CREATE VIEW paid_orders AS SELECT * FROM orders WHERE paid;
    """,
    "sqlite": """
        DROP VIEW IF EXISTS paid_orders;
        DROP TABLE IF EXISTS orders;
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT NOT NULL, total NUMERIC,
            created_at TIMESTAMP, local_at DATETIME, day DATE, meta JSON, paid BOOLEAN,
            ref TEXT, blob BLOB, qty INTEGER, ratio REAL
        );
        CREATE VIEW paid_orders AS SELECT * FROM orders WHERE paid;
    """,
}


def dialect_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


@pytest.fixture
async def ds(db_url: str, tmp_path: Path) -> AsyncIterator[DataSource]:
    script = tmp_path / "schema.sql"
    script.write_text(DDL[dialect_of(db_url)])
    source = create_datasource("primary", db_url, base_dir=tmp_path, init_sql=[Path("schema.sql")])
    await source.open()
    try:
        yield source
    finally:
        await source.close()


async def test_schema_is_introspected(ds: DataSource) -> None:
    """Tables and views are known with their columns, types and primary key."""
    orders = ds.table("orders")
    assert orders.primary_key == "id"
    assert list(orders.columns)[:4] == ["id", "status", "total", "created_at"]
    assert orders.columns["status"].nullable is False
    assert orders.columns["total"].nullable is True
    expected = "timestamptz" if ds.dialect == "postgresql" else "timestamp"
    assert orders.column("created_at").type == expected
    assert "status" in ds.table("paid_orders").columns


async def test_unknown_names_suggest_the_closest(ds: DataSource) -> None:
    """Lookups of unknown tables/columns raise LookupError with a did-you-mean."""
    with pytest.raises(LookupError, match=r'unknown table "order" \(did you mean "orders"\?\)'):
        ds.table("order")
    with pytest.raises(
        LookupError, match=r'unknown column "staus" in table "orders" \(did you mean "status"\?\)'
    ):
        ds.table("orders").column("staus")
    with pytest.raises(LookupError, match='unknown table "orders\\"; DROP TABLE orders; --"'):
        ds.table('orders"; DROP TABLE orders; --')


async def test_values_round_trip_json_shaped(ds: DataSource) -> None:
    """ms -> timestamptz/timestamp/date and back; numeric, json, uuid, bool, bytes decode."""
    t = ds.table("orders")
    raw = {
        "status": "new",
        "total": "12.50",
        "created_at": T0,
        "local_at": "2026-03-08T10:00:00.123Z",
        "day": T0,
        "meta": {"a": [1, 2]},
        "paid": "true",
        "ref": "12345678-1234-5678-1234-567812345678",
        "blob": "00ff",
        "qty": "7",
        "ratio": "0.5",
    }
    cols = list(raw)
    values = [t.column(c).coerce(v) for c, v in raw.items()]
    marks = ", ".join(ds.placeholder(i + 1) for i in range(len(cols)))
    names = ", ".join(ds.quote(c) for c in cols)
    row = await ds.fetchrow(f"INSERT INTO orders ({names}) VALUES ({marks}) RETURNING *", values)
    assert row is not None
    decoded = {k: (t.columns[k].decode or (lambda v: v))(v) for k, v in row.items()}
    assert decoded == {
        "id": 1,
        "status": "new",
        "total": 12.5,
        "created_at": T0,
        "local_at": T0,
        "day": "2026-03-08",
        "meta": {"a": [1, 2]},
        "paid": True,
        "ref": "12345678-1234-5678-1234-567812345678",
        "blob": "00ff",
        "qty": 7,
        "ratio": 0.5,
    }
    # The stored timestamp is the instant, not text or a number: compare inside the database.
    if ds.dialect == "postgresql":
        check = "SELECT created_at = to_timestamp(1772964000.123) AS same FROM orders"
        assert await ds.fetch(check, []) == [{"same": True}]
    else:
        assert (await ds.fetch("SELECT created_at FROM orders", [])) == [
            {"created_at": "2026-03-08T10:00:00.123Z"}
        ]


async def test_execute_counts_and_insert_many(ds: DataSource) -> None:
    """execute returns affected rows; insert_many bulk-loads and returns the count."""
    t = ds.table("orders")
    conv = [t.column(c).coerce for c in ("status", "created_at", "qty")]
    rows = [tuple(f(v) for f, v in zip(conv, ("s", T0 + i, i), strict=True)) for i in range(50)]
    assert await ds.insert_many(t, ["status", "created_at", "qty"], rows) == 50
    p = ds.placeholder(1)
    assert await ds.execute(f"UPDATE orders SET status = 'x' WHERE qty < {p}", [10]) == 10
    assert await ds.execute("DELETE FROM orders", []) == 50
    assert await ds.insert_many(t, ["status"], []) == 0


async def test_query_errors_are_database_errors(ds: DataSource) -> None:
    """Driver errors surface as DatabaseError naming the data source."""
    with pytest.raises(DatabaseError, match='data source "primary"'):
        await ds.fetch("SELECT nope FROM orders", [])
    with pytest.raises(DatabaseError):
        await ds.execute("INSERT INTO orders (status) VALUES (NULL)", [])


async def test_refresh_schema_sees_new_tables(ds: DataSource) -> None:
    """The schema is cached; refresh_schema picks up DDL done since open."""
    await ds.execute("CREATE TABLE later (id integer PRIMARY KEY, v text)", [])
    with pytest.raises(LookupError):
        ds.table("later")
    await ds.refresh_schema()
    assert ds.table("later").primary_key == "id"
    await ds.execute("DROP TABLE later", [])


async def test_init_sql_error_names_the_file(db_url: str, tmp_path: Path) -> None:
    """A failing init_sql script is reported with its path."""
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE ok_one (id integer);\nTHIS IS NOT SQL;")
    source = create_datasource("primary", db_url, base_dir=tmp_path, init_sql=[bad])
    with pytest.raises(DatabaseError, match=r"init_sql .*bad\.sql"):
        await source.open()
    missing = create_datasource("primary", db_url, base_dir=tmp_path, init_sql=[Path("nope.sql")])
    with pytest.raises(DatabaseError, match=r"nope\.sql"):
        await missing.open()


async def test_connection_error_hides_the_password(tmp_path: Path) -> None:
    """An unreachable server is a DatabaseError whose message never shows the password."""
    url = "postgresql://root:s3cret@127.0.0.1:1/test"
    source = create_datasource("primary", url, base_dir=tmp_path)
    with pytest.raises(DatabaseError) as info:
        await source.open()
    assert "s3cret" not in str(info.value)
    assert "cannot connect" in str(info.value)
    assert "s3cret" not in repr(source)


def test_urls() -> None:
    """SQLite paths resolve as the contract says; unknown schemes are rejected; passwords hidden."""
    base = Path("/etc/cronstack")
    assert sqlite_path("sqlite:///var/db.sqlite", base) == "/etc/cronstack/var/db.sqlite"
    assert sqlite_path("sqlite:////abs/db.sqlite", base) == "/abs/db.sqlite"
    assert sqlite_path("sqlite://:memory:", base) == ":memory:"
    assert redact_url("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
    with pytest.raises(DatabaseError, match="unsupported URL 'mysql://u:\\*\\*\\*@h/d'"):
        create_datasource("x", "mysql://u:pw@h/d", base_dir=base)


async def test_sqlite_memory_and_relative(tmp_path: Path) -> None:
    """`sqlite://:memory:` works; a relative file lands under base_dir."""
    mem = create_datasource("m", "sqlite://:memory:", base_dir=tmp_path)
    await mem.open()
    assert await mem.fetch("SELECT 1 AS one", []) == [{"one": 1}]
    await mem.close()
    rel = create_datasource("r", "sqlite:///sub/r.db", base_dir=tmp_path)
    await rel.open()
    await rel.close()
    assert (tmp_path / "sub" / "r.db").exists()


async def test_raw_sql_session_changes_are_undone(db_url: str, tmp_path: Path) -> None:
    """SET in user-written SQL does not leak to the next statement on the pooled connection."""
    if dialect_of(db_url) == "sqlite":
        pytest.skip("SQLite has no session settings to leak")
    source = create_datasource("primary", db_url, base_dir=tmp_path, max_size=1)
    await source.open()
    try:
        await source.fetch_raw("SET application_name = 'leaked'", [])
        assert await source.fetch("SHOW application_name", []) == [
            {"application_name": "cronstack"}
        ]
        # Table-step statements keep the connection as it is (no reset round trip needed).
        await source.execute("SELECT 1", [])
        assert await source.fetch("SHOW application_name", []) == [
            {"application_name": "cronstack"}
        ]
    finally:
        await source.close()


async def test_replicas_opening_together_run_init_sql_one_at_a_time(
    pg_url: str, tmp_path: Path
) -> None:
    """Several processes opening one PostgreSQL data source at once all start: init_sql's
    CREATE TABLE IF NOT EXISTS, which races in PostgreSQL, runs under an advisory lock."""
    table = f"race_{uuid.uuid4().hex[:8]}"
    script = tmp_path / "init.sql"
    script.write_text(
        f"CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, note text);\n"
        f"CREATE INDEX IF NOT EXISTS {table}_note ON {table} (note);\n"
    )
    sources = [
        create_datasource(f"r{i}", pg_url, base_dir=tmp_path, init_sql=[script]) for i in range(6)
    ]
    try:
        await asyncio.gather(*(ds.open() for ds in sources))
        assert all(ds.table(table).name == table for ds in sources)
    finally:
        await asyncio.gather(*(ds.close() for ds in sources))
