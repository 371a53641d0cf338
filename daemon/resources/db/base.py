"""Data sources: one interface for the database steps, backed by an asyncpg pool or aiosqlite."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import re
import sqlite3
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import aiosqlite
import asyncpg
import orjson

from daemon.core.errors import DatabaseError
from daemon.core.text import did_you_mean

Dialect = Literal["postgresql", "sqlite"]
Converter = Callable[[Any], Any]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


# --- names ---------------------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """Double-quote an identifier (same rule on PostgreSQL and SQLite)."""
    return '"' + name.replace('"', '""') + '"'


def redact_url(url: str) -> str:
    """The URL with any password removed, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """One column: its normalized type and the converters chosen for that type at introspection."""

    name: str
    type: str
    nullable: bool
    coerce: Converter  # JSON-ish value -> DB parameter value; raises ValueError/TypeError
    decode: Converter | None  # DB value -> JSON-shaped value; None when the value is already so
    # Value types `coerce` returns unchanged: bulk paths skip a whole column when every value
    # already has one of them (one C-level type scan instead of a Python call per value).
    native: frozenset[builtins.type] = frozenset()


@dataclass(frozen=True, slots=True)
class TableInfo:
    """A table or view as introspected: columns in order and the single-column primary key."""

    name: str
    columns: dict[str, ColumnInfo]
    primary_key: str | None
    schema: str | None = None  # PostgreSQL schema the name resolved to (for COPY)

    def column(self, name: str) -> ColumnInfo:
        col = self.columns.get(name)
        if col is None:
            raise LookupError(
                f'unknown column "{name}" in table "{self.name}"{did_you_mean(name, self.columns)}'
            )
        return col

    @property
    def key_column(self) -> str:
        """The column `record_id` matches: the primary key, else `id`."""
        return self.primary_key or "id"


# --- value conversion -----------------------------------------------------------------------------
# Time values travel as ms since the epoch (DESIGN.md "Time values"); ISO strings are accepted too.


def _parse_datetime(value: Any) -> datetime:
    """ms (int/float/digit string), ISO-8601 text, date or datetime -> aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise TypeError("expected a timestamp, got a boolean")
    if isinstance(value, int | float):
        return EPOCH + timedelta(0, 0, 0, value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return EPOCH + timedelta(milliseconds=float(text))
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise TypeError(f"expected a timestamp, got {type(value).__name__}")


def _to_timestamptz(value: Any) -> Any:
    if type(value) is int:  # the common case (ms from a template or a decoded row) first
        return EPOCH + timedelta(0, 0, 0, value)  # positional: ~2x faster than milliseconds=
    return None if value is None else _parse_datetime(value)


def _to_timestamp(value: Any) -> Any:
    if value is None:
        return None
    return _parse_datetime(value).astimezone(UTC).replace(tzinfo=None)


def _to_date(value: Any) -> Any:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, str) and len(value.strip()) == 10:
        return date.fromisoformat(value.strip())
    return _parse_datetime(value).astimezone(UTC).date()


def _to_int(value: Any) -> Any:
    if value is None or type(value) is int:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float | Decimal):
        if value != int(value):
            raise ValueError(f"{value!r} is not an integer")
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _to_float(value: Any) -> Any:
    if value is None or type(value) is float:
        return value
    if isinstance(value, int | float | Decimal | str) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _to_decimal(value: Any) -> Any:
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, float | str):
        return Decimal(str(value).strip())
    raise TypeError(f"expected a number, got {type(value).__name__}")


_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


def _to_bool(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise ValueError(f"expected a boolean, got {value!r}")


def _to_uuid(value: Any) -> Any:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


def _to_text(value: Any) -> Any:
    if value is None or type(value) is str:
        return value
    if isinstance(value, dict | list | bool):
        return orjson.dumps(value).decode()
    if isinstance(value, int | float | Decimal | uuid.UUID):
        return str(value)
    return value


def _to_bytes(value: Any) -> Any:
    if isinstance(value, str):
        return bytes.fromhex(value)
    return value


def _identity(value: Any) -> Any:
    return value


def datetime_to_ms(value: datetime) -> int:
    """Aware or naive (read as UTC) datetime -> ms since the epoch."""
    if value.tzinfo is None:
        return (value - _EPOCH_NAIVE) // _MS
    return (value - EPOCH) // _MS


def _decode_datetime(value: Any) -> Any:
    return datetime_to_ms(value) if isinstance(value, datetime) else value


def _decode_date(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _decode_decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            return float(value)
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _decode_str(value: Any) -> Any:
    return None if value is None else str(value)


def _decode_bytes(value: Any) -> Any:
    # Bytes become lowercase hex text: JSON has no bytes, and hex round-trips through `coerce`.
    return value.hex() if isinstance(value, bytes | bytearray | memoryview) else value


def decode_value(value: Any) -> Any:
    """Make any driver value JSON-shaped (used where no column type is known, e.g. raw SQL)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        return datetime_to_ms(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _decode_decimal(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, timedelta):
        return value // _MS
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [decode_value(v) for v in value]
    if isinstance(value, dict):
        return {k: decode_value(v) for k, v in value.items()}
    return str(value)


def decode_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decode every value of raw rows in place, by value type."""
    for row in rows:
        for key, value in row.items():
            if value is not None and type(value) not in (str, int, float, bool):
                row[key] = decode_value(value)
    return rows


def _pg_converters(typname: str) -> tuple[Converter, Converter | None]:
    """(coerce, decode) for a PostgreSQL type name (pg_type.typname)."""
    if typname == "timestamptz":
        return _to_timestamptz, _decode_datetime
    if typname == "timestamp":
        return _to_timestamp, _decode_datetime
    if typname == "date":
        return _to_date, _decode_date
    if typname in ("int2", "int4", "int8", "oid"):
        return _to_int, None
    if typname in ("float4", "float8"):
        return _to_float, None
    if typname in ("numeric", "money"):
        return _to_decimal, _decode_decimal
    if typname == "bool":
        return _to_bool, None
    if typname in ("json", "jsonb"):
        return _identity, None  # the pool's type codec turns dicts/lists into JSON and back
    if typname == "uuid":
        return _to_uuid, _decode_str
    if typname in ("text", "varchar", "bpchar", "name", "citext"):
        return _to_text, None
    if typname == "bytea":
        return _to_bytes, _decode_bytes
    return _identity, decode_value


def _sqlite_ts_text(value: Any) -> Any:
    if value is None:
        return None
    dt = _parse_datetime(value).astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _sqlite_decode_ts(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime_to_ms(_parse_datetime(value))
        except ValueError:
            return value
    return value


def _sqlite_date_text(value: Any) -> Any:
    return None if value is None else _to_date(value).isoformat()


def _sqlite_bool(value: Any) -> Any:
    b = _to_bool(value)
    return None if b is None else int(b)


def _sqlite_decode_bool(value: Any) -> Any:
    return bool(value) if isinstance(value, int) else value


def _sqlite_json(value: Any) -> Any:
    if isinstance(value, dict | list | bool | int | float):
        return orjson.dumps(value).decode()
    return value


def decode_json_text(value: Any) -> Any:
    """JSON stored as text (SQLite columns, run-history error/trace) back to a value; text that
    is not JSON, and values a driver already decoded, pass through unchanged."""
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _sqlite_plain(value: Any) -> Any:
    # SQLite has no native JSON/boolean/time types: store them the way the typed columns do.
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if isinstance(value, datetime):
        return _sqlite_ts_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return value


def _sqlite_int(value: Any) -> Any:
    return (
        _to_int(value) if isinstance(value, str | float | Decimal | bool) else _sqlite_plain(value)
    )


def _sqlite_real(value: Any) -> Any:
    return _to_float(value) if isinstance(value, str | Decimal) else _sqlite_plain(value)


def _sqlite_numeric(value: Any) -> Any:
    if isinstance(value, str | Decimal):
        num = _to_decimal(value)
        return int(num) if num == num.to_integral_value() else float(num)
    return _sqlite_plain(value)


def _sqlite_converters(decl: str) -> tuple[Converter, Converter | None]:
    """(coerce, decode) for a SQLite declared type (lowercased)."""
    if "timestamp" in decl or "datetime" in decl:
        return _sqlite_ts_text, _sqlite_decode_ts
    if decl == "date":
        return _sqlite_date_text, None
    if "bool" in decl:
        return _sqlite_bool, _sqlite_decode_bool
    if "json" in decl:
        return _sqlite_json, decode_json_text
    if "int" in decl:
        return _sqlite_int, None
    if any(t in decl for t in ("real", "floa", "doub")):
        return _sqlite_real, None
    if "numeric" in decl or "decimal" in decl:
        return _sqlite_numeric, None
    return _sqlite_plain, _decode_bytes


def sqlite_param(value: Any) -> Any:
    """A value bound without a known column (raw SQL, json_each lists) in SQLite's terms."""
    if isinstance(value, bool):
        return int(value)
    return _sqlite_plain(value)


_NONE = type(None)
_NATIVE: dict[Converter, frozenset[type]] = {
    _to_timestamptz: frozenset({_NONE}),  # naive datetimes still need their UTC zone
    _to_int: frozenset({int, _NONE}),
    _to_float: frozenset({float, _NONE}),
    _to_decimal: frozenset({Decimal, _NONE}),
    _to_bool: frozenset({bool, _NONE}),
    _to_uuid: frozenset({uuid.UUID, _NONE}),
    _to_text: frozenset({str, _NONE}),
    _to_bytes: frozenset({bytes, _NONE}),
    _sqlite_int: frozenset({int, _NONE}),
    _sqlite_real: frozenset({float, int, _NONE}),
    _sqlite_plain: frozenset({str, int, float, bytes, _NONE}),
}


def column_info(dialect: Dialect, name: str, type_name: str, nullable: bool = True) -> ColumnInfo:
    """A column with the converters introspection would choose for this type (also for tests)."""
    norm = type_name.strip().lower()
    pick = _pg_converters if dialect == "postgresql" else _sqlite_converters
    coerce, decode = pick(norm)
    return ColumnInfo(name, norm, nullable, coerce, decode, _NATIVE.get(coerce, frozenset()))


def coerce_column(column: ColumnInfo, values: Sequence[Any]) -> Iterable[Any]:
    """Coerce many values of one column (bulk inserts), at C speed where the types allow.

    Raises ValueError/TypeError like `column.coerce`.
    """
    types = set(map(type, values))
    if types <= column.native:
        return values
    if types == {int} and column.coerce in (_to_timestamptz, _to_timestamp):
        # ms -> datetime without a Python-level call per value: timedelta(0, 0, 0, ms).
        base = EPOCH if column.coerce is _to_timestamptz else _EPOCH_NAIVE
        zero = repeat(0)
        return list(map(base.__add__, map(timedelta, zero, zero, zero, values)))
    return list(map(column.coerce, values))


# --- the interface -------------------------------------------------------------------------------


class DataSource(ABC):
    """A configured database: schema cache, quoting, and the few query shapes the steps need."""

    name: str
    dialect: Dialect

    def __init__(self, name: str, url: str, *, init_sql: Sequence[Path] = ()) -> None:
        self.name = name
        self.url = url
        self.init_sql = list(init_sql)
        self._tables: dict[str, TableInfo] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {redact_url(self.url)}>"

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def refresh_schema(self) -> None: ...

    def table(self, name: str) -> TableInfo:
        info = self._tables.get(name)
        if info is None:
            raise LookupError(f'unknown table "{name}"{did_you_mean(name, self._tables)}')
        return info

    def tables(self) -> list[str]:
        return sorted(self._tables)

    def quote(self, ident: str) -> str:
        return quote_ident(ident)

    @abstractmethod
    def placeholder(self, n: int) -> str: ...

    @abstractmethod
    async def fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]: ...

    async def fetch_raw(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """Run user-written SQL (Direct Database Query); session changes it makes are undone."""
        return await self.fetch(sql, params)

    @abstractmethod
    async def fetchrow(self, sql: str, params: Sequence[Any]) -> dict[str, Any] | None: ...

    @abstractmethod
    async def execute(self, sql: str, params: Sequence[Any]) -> int: ...

    @abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abstractmethod
    async def insert_many(
        self, table: TableInfo, columns: list[str], rows: list[tuple[Any, ...]]
    ) -> int: ...

    def _error(self, exc: BaseException, what: str = "") -> DatabaseError:
        detail = redact_url(str(exc)) or type(exc).__name__
        prefix = f'data source "{self.name}": '
        if what:
            prefix += f"{what}: "
        return DatabaseError(prefix + detail)

    def _read_init_sql(self) -> list[tuple[Path, str]]:
        scripts = []
        for path in self.init_sql:
            try:
                scripts.append((path, path.read_text(encoding="utf-8")))
            except OSError as exc:
                raise DatabaseError(
                    f'data source "{self.name}": init_sql {path}: cannot read: {exc.strerror}'
                ) from exc
        return scripts


# --- PostgreSQL ----------------------------------------------------------------------------------

# pg_advisory_lock key serializing init_sql across processes ("cronstack" as an int).
_INIT_SQL_LOCK = 0x63726F6E737461

_PG_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    ValueError,
    TypeError,
    OverflowError,
)

_PG_COLUMNS = """
SELECT n.nspname AS schema, c.relname AS table_name, a.attname AS column_name,
       CASE WHEN t.typtype = 'd' THEN bt.typname ELSE t.typname END AS typname,
       NOT a.attnotnull AS nullable,
       array_position(current_schemas(false), n.nspname::text) AS rank
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
  AND n.nspname::text = ANY(current_schemas(false))
ORDER BY rank, c.relname, a.attnum
"""

_PG_PRIMARY_KEYS = """
SELECT n.nspname AS schema, c.relname AS table_name, a.attname AS column_name
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
WHERE i.indisprimary AND i.indnatts = 1 AND n.nspname::text = ANY(current_schemas(false))
"""


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_pg_connection(conn: asyncpg.Connection) -> None:
    # dicts/lists go into json/jsonb columns as they are, and come back parsed.
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ, encoder=_json_dumps, decoder=orjson.loads, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset for connections only the table steps used.

    asyncpg always rolls back a transaction left open; its default reset then also runs
    `RESET ALL; UNLISTEN *; ...`, one extra round trip per statement. Table steps never change
    session state, so that is skipped; `fetch_raw` (user-written SQL) resets in full itself.
    """


class PostgresDataSource(DataSource):
    """PostgreSQL through one asyncpg pool, opened once and kept across runs and reloads."""

    dialect: Dialect = "postgresql"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        statement_timeout: float | None = None,
        init_sql: Sequence[Path] = (),
    ) -> None:
        super().__init__(name, url, init_sql=init_sql)
        self.min_size = min_size
        self.max_size = max_size
        self.statement_timeout = statement_timeout
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DatabaseError(f'data source "{self.name}" is not open')
        return self._pool

    def placeholder(self, n: int) -> str:
        return f"${n}"

    async def open(self) -> None:
        if self._pool is not None:
            return
        settings: dict[str, str] = {"application_name": "cronstack"}
        if self.statement_timeout is not None:
            settings["statement_timeout"] = str(int(self.statement_timeout * 1000))
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=min(self.min_size, self.max_size),
                max_size=self.max_size,
                init=_init_pg_connection,
                reset=_keep_session,
                server_settings=settings,
            )
        except _PG_ERRORS as exc:
            raise self._error(exc, f"cannot connect to {redact_url(self.url)}") from exc
        try:
            scripts = self._read_init_sql()
            async with self.pool.acquire() as conn:
                # Replicas starting together would race on CREATE TABLE IF NOT EXISTS (it is
                # not atomic in PostgreSQL): one process runs the scripts at a time.
                if scripts:
                    await conn.execute("SELECT pg_advisory_lock($1)", _INIT_SQL_LOCK)
                try:
                    for path, script in scripts:
                        try:
                            await conn.execute(script)
                        except _PG_ERRORS as exc:
                            raise self._error(exc, f"init_sql {path}") from exc
                finally:
                    if scripts:
                        with contextlib.suppress(*_PG_ERRORS):
                            await conn.execute("SELECT pg_advisory_unlock($1)", _INIT_SQL_LOCK)
            await self.refresh_schema()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def refresh_schema(self) -> None:
        try:
            async with self.pool.acquire() as conn:
                columns = await conn.fetch(_PG_COLUMNS)
                keys = await conn.fetch(_PG_PRIMARY_KEYS)
        except _PG_ERRORS as exc:
            raise self._error(exc, "reading the schema") from exc
        pk = {(r["schema"], r["table_name"]): r["column_name"] for r in keys}
        tables: dict[str, TableInfo] = {}
        for row in columns:
            table_name, schema = row["table_name"], row["schema"]
            info = tables.get(table_name)
            if info is None:
                info = TableInfo(table_name, {}, pk.get((schema, table_name)), schema)
                tables[table_name] = info
            elif info.schema != schema:
                continue  # shadowed by the same name earlier in search_path
            info.columns[row["column_name"]] = column_info(
                "postgresql", row["column_name"], row["typname"], row["nullable"]
            )
        self._tables = tables

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        try:
            records = await self.pool.fetch(sql, *params)
        except _PG_ERRORS as exc:
            raise self._error(exc) from exc
        return [dict(r) for r in records]

    async def fetch_raw(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        try:
            async with self.pool.acquire() as conn:
                try:
                    records = await conn.fetch(sql, *params)
                finally:
                    # User SQL may SET, LISTEN or take advisory locks: undo it before reuse.
                    await conn.reset()
        except _PG_ERRORS as exc:
            raise self._error(exc) from exc
        return [dict(r) for r in records]

    async def fetchrow(self, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        try:
            record = await self.pool.fetchrow(sql, *params)
        except _PG_ERRORS as exc:
            raise self._error(exc) from exc
        return None if record is None else dict(record)

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        try:
            status = await self.pool.execute(sql, *params)
        except _PG_ERRORS as exc:
            raise self._error(exc) from exc
        # Command tags end with the row count: "DELETE 3", "INSERT 0 1", "UPDATE 0".
        tail = status.rpartition(" ")[2]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self.pool.executemany(sql, rows)
        except _PG_ERRORS as exc:
            raise self._error(exc) from exc

    async def insert_many(
        self, table: TableInfo, columns: list[str], rows: list[tuple[Any, ...]]
    ) -> int:
        if not rows:
            return 0
        try:
            await self.pool.copy_records_to_table(
                table.name, records=rows, columns=columns, schema_name=table.schema
            )
        except _PG_ERRORS as exc:
            raise self._error(exc, f'bulk insert into "{table.name}"') from exc
        return len(rows)


# --- SQLite --------------------------------------------------------------------------------------

_SQLITE_ERRORS = (sqlite3.Error, ValueError, TypeError, OverflowError)


def sqlite_path(url: str, base_dir: Path) -> str:
    """`sqlite:///rel.db` -> base_dir/rel.db, `sqlite:////abs.db` -> /abs.db, `sqlite://:memory:`."""
    rest = url.split("://", 1)[1]
    if rest in (":memory:", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/") or rest == "/":
        raise DatabaseError(
            f"invalid SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////abs.db"
        )
    path = rest[1:]
    return path if path.startswith("/") else str(base_dir / path)


class SqliteDataSource(DataSource):
    """SQLite through one aiosqlite connection (WAL, foreign keys, autocommit per statement)."""

    dialect: Dialect = "sqlite"

    def __init__(self, name: str, url: str, *, path: str, init_sql: Sequence[Path] = ()) -> None:
        super().__init__(name, url, init_sql=init_sql)
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        # One connection: statements from concurrent runs take turns, and a multi-statement
        # transaction (bulk insert) is never interleaved with another run's statement.
        self._lock = asyncio.Lock()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise DatabaseError(f'data source "{self.name}" is not open')
        return self._conn

    def placeholder(self, n: int) -> str:
        return "?"

    async def open(self) -> None:
        if self._conn is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
            await self._conn.execute("PRAGMA journal_mode=WAL")
            await self._conn.execute("PRAGMA foreign_keys=ON")
            await self._conn.execute("PRAGMA busy_timeout=5000")
        except _SQLITE_ERRORS as exc:
            await self.close()
            raise self._error(exc, f"cannot open {self.path}") from exc
        try:
            for path, script in self._read_init_sql():
                try:
                    await self.conn.executescript(script)
                except _SQLITE_ERRORS as exc:
                    raise self._error(exc, f"init_sql {path}") from exc
            await self.refresh_schema()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def refresh_schema(self) -> None:
        tables: dict[str, TableInfo] = {}
        try:
            async with self._lock:
                names = await self.conn.execute_fetchall(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
                for (table_name,) in names:
                    rows = await self.conn.execute_fetchall(
                        'SELECT name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY cid',
                        (table_name,),
                    )
                    columns: dict[str, ColumnInfo] = {}
                    pks = [r[0] for r in rows if r[3]]
                    for col, decl, notnull, _pk in rows:
                        columns[col] = column_info("sqlite", col, decl or "", not notnull)
                    tables[table_name] = TableInfo(
                        table_name, columns, pks[0] if len(pks) == 1 else None
                    )
        except _SQLITE_ERRORS as exc:
            raise self._error(exc, "reading the schema") from exc
        self._tables = tables

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        try:
            async with self._lock:
                cursor = await self.conn.execute(sql, params)
                try:
                    rows = await cursor.fetchall()
                    names = [d[0] for d in cursor.description or ()]
                finally:
                    await cursor.close()
        except _SQLITE_ERRORS as exc:
            raise self._error(exc) from exc
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def fetchrow(self, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        try:
            async with self._lock:
                cursor = await self.conn.execute(sql, params)
                count = cursor.rowcount
                await cursor.close()
        except _SQLITE_ERRORS as exc:
            raise self._error(exc) from exc
        return max(count, 0)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            async with self._lock:
                await self._in_transaction(sql, rows)
        except _SQLITE_ERRORS as exc:
            raise self._error(exc) from exc

    async def _in_transaction(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        # Autocommit would make every row its own transaction (and fsync); one BEGIN for all.
        await self.conn.execute("BEGIN")
        try:
            await self.conn.executemany(sql, rows)
        except BaseException:
            await self.conn.execute("ROLLBACK")
            raise
        await self.conn.execute("COMMIT")

    async def insert_many(
        self, table: TableInfo, columns: list[str], rows: list[tuple[Any, ...]]
    ) -> int:
        if not rows:
            return 0
        cols = ", ".join(quote_ident(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {quote_ident(table.name)} ({cols}) VALUES ({marks})"
        try:
            async with self._lock:
                await self._in_transaction(sql, rows)
        except _SQLITE_ERRORS as exc:
            raise self._error(exc, f'bulk insert into "{table.name}"') from exc
        return len(rows)


def create_datasource(
    name: str,
    url: str,
    *,
    base_dir: Path,
    min_size: int = 1,
    max_size: int = 10,
    statement_timeout: float | None = None,
    init_sql: Sequence[Path] = (),
) -> DataSource:
    """Build (not open) the data source a URL names; relative paths resolve against base_dir."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    scripts = [p if p.is_absolute() else base_dir / p for p in init_sql]
    if scheme in ("postgresql", "postgres"):
        return PostgresDataSource(
            name,
            url,
            min_size=min_size,
            max_size=max_size,
            statement_timeout=statement_timeout,
            init_sql=scripts,
        )
    if scheme == "sqlite":
        return SqliteDataSource(name, url, path=sqlite_path(url, base_dir), init_sql=scripts)
    raise DatabaseError(
        f'data source "{name}": unsupported URL {redact_url(url)!r} '
        "(expected postgresql://, postgres:// or sqlite://)"
    )
