"""Versioned DDL for the `cronstack_*` state tables, applied once per version under a lock."""

from __future__ import annotations

from typing import Literal

Dialect = Literal["postgresql", "sqlite"]

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
            lease_expires_at BIGINT,
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


# (version, statements); append only — a released version is never edited.
def migrations(dialect: Dialect) -> list[tuple[int, list[str]]]:
    return [(1, _v1(dialect))]


LATEST = 1

__all__ = ["LATEST", "PG_MIGRATION_LOCK", "migrations"]
