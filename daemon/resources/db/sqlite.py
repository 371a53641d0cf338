"""The SQLite data source: one aiosqlite connection (WAL), schema from PRAGMA table_info."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import aiosqlite

from daemon.core.errors import DatabaseError
from daemon.resources.db.base import ColumnInfo, DataSource, Dialect, TableInfo, quote_ident
from daemon.resources.db.values import column_info

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
        # Depth of the Database Transaction the running task holds (0: none). The holder keeps
        # the lock for the whole transaction; its own statements must not wait for it.
        self._depth: ContextVar[int] = ContextVar(f"cronstack_sqlite_tx_{name}", default=0)

    def _locked(self) -> AbstractAsyncContextManager[Any]:
        return contextlib.nullcontext() if self._depth.get() else self._lock

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
            async with self._locked():
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
            async with self._locked():
                cursor = await self.conn.execute(sql, params)
                count = cursor.rowcount
                await cursor.close()
        except _SQLITE_ERRORS as exc:
            raise self._error(exc) from exc
        return max(count, 0)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            async with self._locked():
                await self._in_transaction(sql, rows)
        except _SQLITE_ERRORS as exc:
            raise self._error(exc) from exc

    async def _in_transaction(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        if self.conn.in_transaction:  # inside a Database Transaction: it commits
            await self.conn.executemany(sql, rows)
            return
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
            async with self._locked():
                await self._in_transaction(sql, rows)
        except _SQLITE_ERRORS as exc:
            raise self._error(exc, f'bulk insert into "{table.name}"') from exc
        return len(rows)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        depth = self._depth.get()
        if depth:  # nested: a savepoint (the lock is already held)
            name = f"cronstack_sp{depth}"
            await self._tx_statement(f"SAVEPOINT {name}", "starting a savepoint")
            token = self._depth.set(depth + 1)
            try:
                yield
            except BaseException:
                with contextlib.suppress(*_SQLITE_ERRORS):
                    await self.conn.execute(f"ROLLBACK TO {name}")
                    await self.conn.execute(f"RELEASE {name}")
                raise
            finally:
                self._depth.reset(token)
            await self._tx_statement(f"RELEASE {name}", "releasing a savepoint")
            return
        async with self._lock:
            await self._tx_statement("BEGIN", "starting a transaction")
            token = self._depth.set(1)
            try:
                yield
            except BaseException:
                with contextlib.suppress(*_SQLITE_ERRORS):
                    await self.conn.execute("ROLLBACK")
                raise
            finally:
                self._depth.reset(token)
            try:
                await self._tx_statement("COMMIT", "committing the transaction")
            except DatabaseError:
                with contextlib.suppress(*_SQLITE_ERRORS):
                    await self.conn.execute("ROLLBACK")
                raise

    async def _tx_statement(self, sql: str, what: str) -> None:
        try:
            await self.conn.execute(sql)
        except _SQLITE_ERRORS as exc:
            raise self._error(exc, what) from exc
