"""Data sources: one interface for the database steps, backed by asyncpg or aiosqlite.

`base` is the interface, `values` the conversions between task values and columns, `postgres`
and `sqlite` the two implementations; `create_datasource` picks one from a URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from daemon.core.errors import DatabaseError

if TYPE_CHECKING:
    from daemon.resources.db.base import DataSource
    from daemon.resources.db.postgres import PostgresDataSource


def as_postgres(ds: DataSource) -> PostgresDataSource | None:
    """The data source as a PostgreSQL one (its pool), or None. Asked by dialect, not by
    class, so a process whose databases are all SQLite never imports asyncpg."""
    return cast("PostgresDataSource", ds) if ds.dialect == "postgresql" else None


def create_datasource(
    name: str,
    url: str,
    *,
    base_dir: Path,
    min_size: int = 1,
    max_size: int = 10,
    statement_timeout: float | None = None,
    init_sql: Sequence[Path] = (),
    session_settings: Mapping[str, str] | None = None,
) -> DataSource:
    """Build (not open) the data source a URL names; relative paths resolve against base_dir.
    `session_settings`: PostgreSQL settings for every session of the pool (ignored by SQLite)."""
    from daemon.resources.db.base import redact_url
    from daemon.resources.db.postgres import PostgresDataSource
    from daemon.resources.db.sqlite import SqliteDataSource, sqlite_path

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
            session_settings=session_settings,
        )
    if scheme == "sqlite":
        return SqliteDataSource(name, url, path=sqlite_path(url, base_dir), init_sql=scripts)
    raise DatabaseError(
        f'data source "{name}": unsupported URL {redact_url(url)!r} '
        "(expected postgresql://, postgres:// or sqlite://)"
    )
