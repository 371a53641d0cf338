"""The PostgreSQL data source: an asyncpg pool, schema introspection, COPY for bulk adds."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from daemon.core.errors import DatabaseError
from daemon.resources.db.base import DataSource, Dialect, TableInfo, redact_url
from daemon.resources.db.values import column_info

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

# The connection died under a statement: the server went away, the network cut it, an
# operator ended the backend. Not "cannot connect" (that fails in acquire, before any query).
_LOST = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)

# The server cannot be reached (the pool opens a connection for the statement and fails).
_UNREACHABLE = (
    ConnectionRefusedError,
    socket.gaierror,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
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
        session_settings: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, url, init_sql=init_sql)
        self.min_size = min_size
        self.max_size = max_size
        self.statement_timeout = statement_timeout
        self.session_settings = dict(session_settings or {})  # set on every new connection
        self._pool: asyncpg.Pool | None = None
        # Run on every new pooled connection after its codecs are set (the state store warms
        # its statements there: a cold connection's first statement costs several round
        # trips of preparing and type lookups).
        self.on_connect: Callable[[asyncpg.Connection], Awaitable[None]] | None = None
        # The connection a Database Transaction pinned for the task running it (and its
        # children): statements go there instead of to the pool.
        self._pinned: ContextVar[asyncpg.Connection | None] = ContextVar(
            f"cronstack_pg_tx_{name}", default=None
        )

    def _target(self) -> asyncpg.Pool | asyncpg.Connection:
        return self._pinned.get() or self.pool

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DatabaseError(f'data source "{self.name}" is not open')
        return self._pool

    def placeholder(self, n: int) -> str:
        return f"${n}"

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        await _init_pg_connection(conn)
        if self.session_settings:
            # Set once the session is up, not sent in the startup packet (server_settings):
            # a PgBouncer in front refuses startup parameters it does not know.
            pairs = list(self.session_settings.items())
            calls = ", ".join(
                f"set_config(${2 * i + 1}, ${2 * i + 2}, false)" for i in range(len(pairs))
            )
            await conn.execute(f"SELECT {calls}", *[v for pair in pairs for v in pair])
        if self.on_connect is not None:
            await self.on_connect(conn)

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
                init=self._init_connection,
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

    def _query_error(self, exc: BaseException, what: str = "") -> DatabaseError:
        """A failed statement's error; a connection that died under it says so."""
        if isinstance(exc, _LOST):
            detail = redact_url(str(exc)) or "closed"
            lost = (
                "the connection to the database was lost during the query"
                f" ({type(exc).__name__}: {detail})"
            )
            return self._error_text(f"{what}: {lost}" if what else lost)
        if isinstance(exc, _UNREACHABLE):
            down = f"cannot connect to the database ({type(exc).__name__}: {redact_url(str(exc))})"
            return self._error_text(f"{what}: {down}" if what else down)
        return self._error(exc, what)

    def _error_text(self, text: str) -> DatabaseError:
        return DatabaseError(f'data source "{self.name}": {text}')

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        try:
            records = await self._target().fetch(sql, *params)
        except _PG_ERRORS as exc:
            raise self._query_error(exc) from exc
        return [dict(r) for r in records]

    async def fetch_raw(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        pinned = self._pinned.get()
        if pinned is not None:
            # Inside a transaction: its connection is reset when the transaction ends.
            try:
                records = await pinned.fetch(sql, *params)
            except _PG_ERRORS as exc:
                raise self._query_error(exc) from exc
            return [dict(r) for r in records]
        try:
            async with self.pool.acquire() as conn:
                lost = False
                try:
                    records = await conn.fetch(sql, *params)
                except _LOST:
                    lost = True
                    raise
                finally:
                    # User SQL may SET, LISTEN or take advisory locks: undo it before reuse.
                    # A connection that died has nothing to undo: asyncpg already handed it
                    # back (reset() would raise and hide why the query failed).
                    if not lost:
                        await conn.reset()
        except _PG_ERRORS as exc:
            raise self._query_error(exc) from exc
        return [dict(r) for r in records]

    async def fetchrow(self, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
        try:
            record = await self._target().fetchrow(sql, *params)
        except _PG_ERRORS as exc:
            raise self._query_error(exc) from exc
        return None if record is None else dict(record)

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        try:
            status = await self._target().execute(sql, *params)
        except _PG_ERRORS as exc:
            raise self._query_error(exc) from exc
        # Command tags end with the row count: "DELETE 3", "INSERT 0 1", "UPDATE 0".
        tail = status.rpartition(" ")[2]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self._target().executemany(sql, rows)
        except _PG_ERRORS as exc:
            raise self._query_error(exc) from exc

    async def insert_many(
        self, table: TableInfo, columns: list[str], rows: list[tuple[Any, ...]]
    ) -> int:
        if not rows:
            return 0
        try:
            await self._target().copy_records_to_table(
                table.name, records=rows, columns=columns, schema_name=table.schema
            )
        except _PG_ERRORS as exc:
            raise self._query_error(exc, f'bulk insert into "{table.name}"') from exc
        return len(rows)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        pinned = self._pinned.get()
        if pinned is not None:  # nested: a savepoint on the pinned connection
            async with self._guard(pinned.transaction()):
                yield
            return
        try:
            conn = await self.pool.acquire()
        except _PG_ERRORS as exc:
            raise self._error(exc, "starting a transaction") from exc
        token = self._pinned.set(conn)
        try:
            async with self._guard(conn.transaction()):
                yield
        finally:
            self._pinned.reset(token)
            try:
                # Direct queries inside may have changed the session: undo it before reuse.
                await conn.reset()
            except _PG_ERRORS:
                conn.terminate()
            finally:
                await self.pool.release(conn)

    @contextlib.asynccontextmanager
    async def _guard(self, tx: Any) -> AsyncIterator[None]:
        """asyncpg's transaction block with its own errors (BEGIN, COMMIT) as DatabaseError."""
        try:
            await tx.start()
        except _PG_ERRORS as exc:
            raise self._error(exc, "starting a transaction") from exc
        try:
            yield
        except BaseException:
            with contextlib.suppress(*_PG_ERRORS):
                await tx.rollback()
            raise
        try:
            await tx.commit()
        except _PG_ERRORS as exc:
            raise self._query_error(exc, "committing the transaction") from exc
