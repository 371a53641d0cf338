"""The data source interface: tables and columns as introspected, quoting, the query shapes."""

from __future__ import annotations

import builtins
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from daemon.core.errors import DatabaseError
from daemon.core.text import did_you_mean

Dialect = Literal["postgresql", "sqlite"]
Converter = Callable[[Any], Any]


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

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[None]:
        """All or nothing (Database Transaction): every statement this task (and the tasks it
        starts) sends inside the block runs on one pinned connection, committed at the end,
        rolled back when the block raises. Nested blocks are savepoints."""

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
