"""Versioned DDL for the `cronstack_*` state tables, applied once per version under a lock."""

from __future__ import annotations

import time

from daemon.resources.db import as_postgres
from daemon.resources.db.base import DataSource
from daemon.resources.db.sqlite import SqliteDataSource
from daemon.state.sql import DialectName as Dialect

# Any 64-bit constant works; it only has to be the same in every cronstack process.
PG_MIGRATION_LOCK = 0x63726F6E73746B  # "cronstk"


def _v1(dialect: Dialect) -> list[str]:
    json = "JSONB" if dialect == "postgresql" else "TEXT"
    boolean = (
        "BOOLEAN NOT NULL DEFAULT FALSE"
        if dialect == "postgresql"
        else "INTEGER NOT NULL DEFAULT 0"
    )
    return [
        f"""
        CREATE TABLE IF NOT EXISTS cronstack_runs (
            {_run_columns(json)},
            CONSTRAINT cronstack_runs_slot UNIQUE (task, slot_id, attempt)
        )
        """,
        "CREATE INDEX IF NOT EXISTS cronstack_runs_task_time"
        " ON cronstack_runs (task, scheduled_at)",
        "CREATE INDEX IF NOT EXISTS cronstack_runs_time ON cronstack_runs (scheduled_at)",
        # The cross-process overlap check and the lease reaper only look at running rows.
        "CREATE INDEX IF NOT EXISTS cronstack_runs_running ON cronstack_runs (task)"
        " WHERE status = 'running'",
        f"""
        CREATE TABLE IF NOT EXISTS cronstack_task_state (
            task TEXT PRIMARY KEY,
            last_slot BIGINT,
            paused {boolean},
            paused_at BIGINT
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS cronstack_instances (
            instance TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at BIGINT NOT NULL,
            heartbeat_at BIGINT NOT NULL
        )
        """,
    ]


def _run_columns(json: str) -> str:
    """The columns of cronstack_runs (v1's, unchanged since); `json` is the JSON column type."""
    return f"""
    run_id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    slot_id TEXT NOT NULL,
    scheduled_at BIGINT NOT NULL,
    trigger TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    instance TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    duration_ms BIGINT,
    error {json},
    trace {json},
    reason TEXT,
    lease_owner TEXT,
    lease_token TEXT,
    lease_expires_at BIGINT
"""


def _v2(dialect: Dialect) -> list[str]:
    """The slot key leads with the time: one task-ordered index per run row instead of two.

    v1 kept a slot unique by (task, slot_id, attempt) and indexed (task, scheduled_at) and
    (scheduled_at) besides. With 10,000 tasks firing every second both task-ordered b-trees
    take an insert at 10,000 different places a second, each a page written to the WAL and
    again at the checkpoint; that was a third of the daemon's CPU on SQLite. A slot_id is the
    task name and the slot's instant (or, for a manual run, its unique run id), so
    (scheduled_at, slot_id, attempt) is as unique, takes its inserts at one end, and serves the
    time-ordered reads the (scheduled_at) index served.
    """
    slot_key = (
        "CREATE UNIQUE INDEX IF NOT EXISTS cronstack_runs_slot_time"
        " ON cronstack_runs (scheduled_at, slot_id, attempt)"
    )
    if dialect == "postgresql":
        return [
            slot_key,
            "ALTER TABLE cronstack_runs DROP CONSTRAINT IF EXISTS cronstack_runs_slot",
            "DROP INDEX IF EXISTS cronstack_runs_time",
        ]
    return [
        f"CREATE TABLE cronstack_runs_v2 ({_run_columns('TEXT')})",
        "INSERT INTO cronstack_runs_v2 SELECT * FROM cronstack_runs",
        "DROP TABLE cronstack_runs",
        "ALTER TABLE cronstack_runs_v2 RENAME TO cronstack_runs",
        "CREATE INDEX cronstack_runs_task_time ON cronstack_runs (task, scheduled_at)",
        slot_key,
        "CREATE INDEX cronstack_runs_running ON cronstack_runs (task) WHERE status = 'running'",
    ]


# (version, statements); append only — a released version is never edited.
def migrations(dialect: Dialect) -> list[tuple[int, list[str]]]:
    return [(1, _v1(dialect)), (2, _v2(dialect))]


LATEST = 2

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS cronstack_schema_version"
    " (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
)
_CURRENT = "SELECT COALESCE(max(version), 0) FROM cronstack_schema_version"


async def migrate(ds: DataSource) -> int:
    """Bring the tables to the latest version; safe when several processes start at once."""
    pg = as_postgres(ds)
    if pg is not None:
        async with pg.pool.acquire() as conn, conn.transaction():
            # Serializes concurrent starters; CREATE ... IF NOT EXISTS alone races on the
            # catalog's unique indexes.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PG_MIGRATION_LOCK)
            await conn.execute(_VERSION_TABLE)
            current = await conn.fetchval(_CURRENT)
            for version, statements in migrations("postgresql"):
                if version <= current:
                    continue
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO cronstack_schema_version VALUES ($1, $2)",
                    version,
                    int(time.time() * 1000),
                )
            return LATEST
    # SQLite: BEGIN IMMEDIATE takes the write lock, so concurrent CLI calls take turns.
    assert isinstance(ds, SqliteDataSource)
    conn = ds.conn
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(_VERSION_TABLE)
        (row,) = await conn.execute_fetchall(_CURRENT)
        current = row[0]
        for version, statements in migrations("sqlite"):
            if version <= current:
                continue
            for statement in statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO cronstack_schema_version VALUES (?, ?)",
                (version, int(time.time() * 1000)),
            )
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")
    return LATEST


__all__ = ["LATEST", "PG_MIGRATION_LOCK", "migrate", "migrations"]
