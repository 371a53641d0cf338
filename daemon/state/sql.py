"""Every statement the state store runs, by name, PostgreSQL and SQLite side by side.

Statements are written once with `$n` parameters and three markers — `{NOW}` (the database
clock in ms), `{TRUE}` and `{JSON}` (the cast a JSON text parameter needs) — and translated
once per dialect by `Dialect.translate`, the only placeholder translator. Where the dialects
truly differ (batches bound as arrays on PostgreSQL, as one JSON text on SQLite) both texts
stand next to each other under one name. Callers ask for `queries[name]` and for dialect
*capabilities* (`shared_clock`, `fenced_by_lease`, `batch_rows`), never for the vendor.

Batches on SQLite: one JSON array of row arrays bound as a single parameter and read with
`json_each` — a fixed statement text whatever the batch size, where a VALUES list would need
a new statement (and up to 32,766 bound variables) per size.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

DialectName = Literal["postgresql", "sqlite"]

# The columns of a run row, in the order the write statements bind them; the read side
# selects READ_COLUMNS (all but the trace) and adds `trace` only for one run's detail.
RUN_COLUMNS: Final = (
    "run_id",
    "task",
    "slot_id",
    "scheduled_at",
    "trigger",
    "attempt",
    "instance",
    "status",
    "started_at",
    "finished_at",
    "duration_ms",
    "error",
    "trace",
    "reason",
)
READ_COLUMNS: Final = tuple(c for c in RUN_COLUMNS if c != "trace")
_COLS: Final = ", ".join(RUN_COLUMNS)
_READ: Final = ", ".join(READ_COLUMNS)
_READ_R: Final = ", ".join(f"r.{c}" for c in READ_COLUMNS)
# Newest first: by slot, then attempt; run_id breaks ties between manual runs of one instant.
_NEWEST: Final = "ORDER BY scheduled_at DESC, attempt DESC, run_id DESC"


@dataclass(frozen=True, slots=True)
class Dialect:
    """What the state store may ask of its database, decided once from the data source."""

    name: DialectName
    now_ms: str  # SQL for the database clock, ms since the epoch
    true: str
    json_cast: str  # appended to a JSON text parameter bound into a JSON column
    # Replicas can share this database, so its clock is the one they fire on (EARLY claims,
    # clock offset) and final writes are fenced by an unexpired lease. SQLite serves one
    # process (it holds a file lock): its own token is fence enough.
    shared_clock: bool
    fenced_by_lease: bool
    batch_rows: int  # rows per multi-row statement
    # Rows nobody waits on (the write-behind flush) go in as one statement run per row inside
    # one transaction (`write_runs` through executemany) rather than one batch statement:
    # SQLite binds each row in C for ~60 % of the cost of reading it back out of json_each.
    # PostgreSQL's arrays through unnest stay faster than a row per statement.
    writes_row_by_row: bool

    def batch(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """The parameters that carry a batch of rows (they come last in every statement): an
        array per column on PostgreSQL, one JSON array of rows on SQLite."""
        if self.name == "postgresql":
            return [list(column) for column in zip(*rows, strict=True)]
        return [orjson.dumps(rows).decode()]

    def array(self, values: Sequence[Any]) -> Any:
        """One column of values as one parameter: an array on PostgreSQL, a JSON array on
        SQLite (read with `json_each`'s `value`)."""
        if self.name == "postgresql":
            return list(values)
        return orjson.dumps(values).decode()

    def translate(self, text: str) -> str:
        """`$n` parameters to this dialect's, and the `{NOW}`/`{TRUE}`/`{JSON}` markers."""
        text = text.replace("{NOW}", self.now_ms).replace("{TRUE}", self.true)
        text = text.replace("{JSON}", self.json_cast)
        if self.name == "sqlite":
            # SQLite takes numbered `?NNN` parameters: same numbering, other sigil.
            text = re.sub(r"\$(\d+)", r"?\1", text)
        return text


POSTGRESQL: Final = Dialect(
    name="postgresql",
    now_ms="(extract(epoch from now()) * 1000)::bigint",
    true="TRUE",
    json_cast="::jsonb",
    shared_clock=True,
    fenced_by_lease=True,
    batch_rows=1000,  # arrays: one parameter per column whatever the size
    writes_row_by_row=False,
)
SQLITE: Final = Dialect(
    name="sqlite",
    now_ms="CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    true="1",
    json_cast="",
    shared_clock=False,
    fenced_by_lease=False,
    batch_rows=400,  # one JSON text; keeps each statement's lock short
    writes_row_by_row=True,
)


def dialect_named(name: str) -> Dialect:
    return POSTGRESQL if name == "postgresql" else SQLITE


# SQLite reads a batch row's fields out of `json_each(...)`'s `value` (a JSON array).
def _fields(*names: str) -> str:
    return ", ".join(f"json_extract(value, '$[{i}]') AS {n}" for i, n in enumerate(names))


# A final state over a claimed row, matched by run id and token; {FENCE} says which rows take it.
_FINISH_PG: Final = """
    UPDATE cronstack_runs r SET status = v.status,
        started_at = COALESCE(v.started_at, r.started_at),
        finished_at = v.finished_at,
        duration_ms = COALESCE(v.duration_ms,
            v.finished_at - COALESCE(v.started_at, r.started_at)),
        error = v.error::jsonb, trace = v.trace::jsonb, reason = v.reason,
        lease_expires_at = NULL
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
                $6::bigint[], $7::text[], $8::text[], $9::text[])
        AS v(run_id, token, status, started_at, finished_at, duration_ms, error, trace, reason)
    WHERE r.run_id = v.run_id AND r.lease_token = v.token AND {FENCE}
    RETURNING r.run_id
"""
_FINISH_SQLITE: Final = f"""
    UPDATE cronstack_runs AS r SET status = v.status,
        started_at = COALESCE(v.started_at, r.started_at),
        finished_at = v.finished_at,
        duration_ms = COALESCE(v.duration_ms,
            v.finished_at - COALESCE(v.started_at, r.started_at)),
        error = v.error, trace = v.trace, reason = v.reason, lease_expires_at = NULL
    FROM (SELECT {
    _fields(
        "run_id",
        "token",
        "status",
        "started_at",
        "finished_at",
        "duration_ms",
        "error",
        "trace",
        "reason",
    )
}
          FROM json_each($1)) AS v
    WHERE r.run_id = v.run_id AND r.lease_token = v.token AND {{FENCE}}
    RETURNING run_id
"""  # SQLite's RETURNING sees only the updated table, by unqualified names

# name -> (PostgreSQL, SQLite); a single text serves both once translated.
_STATEMENTS: Final[dict[str, tuple[str, str] | str]] = {
    # --- this process -------------------------------------------------------------------------
    "register_instance": (
        "INSERT INTO cronstack_instances (instance, host, pid, started_at, heartbeat_at)"
        " VALUES ($1, $2, $3, $4, $4) ON CONFLICT (instance) DO UPDATE SET host = excluded.host,"
        " pid = excluded.pid, started_at = excluded.started_at,"
        " heartbeat_at = excluded.heartbeat_at"
    ),
    "instance_heartbeat": "UPDATE cronstack_instances SET heartbeat_at = {NOW} WHERE instance = $1",
    # Replicas whose heartbeat is younger than a lease ($1 ms): they share the claims.
    "live_instances": (
        "SELECT instance FROM cronstack_instances WHERE heartbeat_at > {NOW} - $1 ORDER BY instance"
    ),
    "unregister_instance": "DELETE FROM cronstack_instances WHERE instance = $1",
    # --- claims: own (task, slot, attempt) before any side effect ------------------------------
    # $1 instance, $2 lease owner, $3 lease ms, $4 started_at, $5 early tolerance ms; the batch
    # from $6: (run_id, task, slot_id, scheduled_at, trigger, attempt, skip, token).
    # A skip-overlap claim loses to a live run of an earlier slot owned by another process.
    # PostgreSQL also refuses slots ahead of its clock (EARLY) and reports the clock it used.
    "claim": (
        """
        WITH ins AS (
            INSERT INTO cronstack_runs (run_id, task, slot_id, scheduled_at, trigger, attempt,
                instance, status, started_at, lease_owner, lease_token, lease_expires_at)
            SELECT v.run_id, v.task, v.slot_id, v.scheduled_at, v.trigger, v.attempt, $1,
                'running', $4, $2, v.token, {NOW} + $3
            FROM unnest($6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[],
                        $11::int[], $12::bool[], $13::text[])
                AS v(run_id, task, slot_id, scheduled_at, trigger, attempt, skip, token)
            WHERE (v.trigger = 'manual' OR v.scheduled_at <= {NOW} + $5)
            AND NOT (v.skip AND EXISTS (
                SELECT 1 FROM cronstack_runs r WHERE r.task = v.task
                AND r.status = 'running' AND r.lease_expires_at > {NOW}
                AND r.lease_owner <> $2 AND r.scheduled_at < v.scheduled_at))
            ON CONFLICT DO NOTHING
            RETURNING run_id
        )
        SELECT run_id, NULL::bigint AS db_now FROM ins
        UNION ALL SELECT NULL, {NOW}
        """,
        # ($5 is unused: one process, one clock, nothing is early.)
        f"""
        WITH v AS (SELECT {
            _fields(
                "run_id", "task", "slot_id", "scheduled_at", "trigger", "attempt", "skip", "token"
            )
        }
                   FROM json_each($6))
        INSERT INTO cronstack_runs (run_id, task, slot_id, scheduled_at, trigger, attempt,
            instance, status, started_at, lease_owner, lease_token, lease_expires_at)
        SELECT v.run_id, v.task, v.slot_id, v.scheduled_at, v.trigger, v.attempt, $1,
            'running', $4, $2, v.token, {{NOW}} + $3
        FROM v
        WHERE NOT (v.skip AND EXISTS (
            SELECT 1 FROM cronstack_runs r WHERE r.task = v.task
            AND r.status = 'running' AND r.lease_expires_at > {{NOW}}
            AND r.lease_owner <> $2 AND r.scheduled_at < v.scheduled_at))
        ON CONFLICT DO NOTHING
        RETURNING run_id
        """,
    ),
    # --- run rows that never held a claim (skipped, missed, manual runs of the CLI) -----------
    "insert_runs": (
        f"""
        INSERT INTO cronstack_runs ({_COLS})
        SELECT v.run_id, v.task, v.slot_id, v.scheduled_at, v.trigger, v.attempt, v.instance,
            v.status, v.started_at, v.finished_at, v.duration_ms, v.error::jsonb,
            v.trace::jsonb, v.reason
        FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::int[],
                    $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[],
                    $12::text[], $13::text[], $14::text[]) AS v({_COLS})
        ON CONFLICT DO NOTHING
        RETURNING run_id
        """,
        f"""
        INSERT INTO cronstack_runs ({_COLS})
        SELECT {_COLS} FROM (SELECT {_fields(*RUN_COLUMNS)} FROM json_each($1)) WHERE true
        ON CONFLICT DO NOTHING
        RETURNING run_id
        """,
    ),
    # --- final states: fenced on the claim's token (and, shared, on an unexpired lease) -------
    "finish_runs": (
        # PostgreSQL: an unexpired lease is the fence, and implies `running` (every other status
        # is written with lease_expires_at NULL). Not `status = 'running'` besides: that let the
        # planner read the rows through the partial index of running rows — which it believes
        # tiny and which holds an entry for every run finished since the last vacuum — 100 µs
        # per row instead of one primary-key lookup.
        _FINISH_PG.replace("{FENCE}", "r.lease_expires_at > {NOW}"),
        _FINISH_SQLITE.replace("{FENCE}", "r.status = 'running'"),
    ),
    # --- final states a previous process spooled at exit (state/spool.py): its leases may have
    # expired and a survivor may have marked the rows interrupted; the token still proves them.
    "finish_spooled": (
        _FINISH_PG.replace("{FENCE}", "r.status IN ('running', 'interrupted')"),
        _FINISH_SQLITE.replace("{FENCE}", "r.status IN ('running', 'interrupted')"),
    ),
    # --- the latest slot each task considered (catch-up after downtime starts there) ----------
    "save_slots": (
        "INSERT INTO cronstack_task_state (task, last_slot)"
        " SELECT * FROM unnest($1::text[], $2::bigint[])"
        " ON CONFLICT (task) DO UPDATE"
        " SET last_slot = GREATEST(cronstack_task_state.last_slot, excluded.last_slot)",
        # `WHERE true`: SQLite's parser needs it between a SELECT and ON CONFLICT.
        "INSERT INTO cronstack_task_state (task, last_slot)"
        f" SELECT {_fields('task', 'last_slot')} FROM json_each($1) WHERE true"
        " ON CONFLICT (task) DO UPDATE"
        " SET last_slot = max(COALESCE(cronstack_task_state.last_slot, 0), excluded.last_slot)",
    ),
    # Which of these (scheduled_at, slot_id) have no first-attempt row yet (another replica's
    # share, looked at before claiming it after the grace: a probe is cheaper than a refused
    # insert). Only those come back: with their owner alive, none — not 50,000 rows to decode.
    # Looked up on the slot key's unique index (scheduled_at, slot_id, attempt), migrations v2.
    "slots_free": (
        "SELECT v.slot_id FROM unnest($1::bigint[], $2::text[]) AS v(scheduled_at, slot_id)"
        " WHERE NOT EXISTS (SELECT 1 FROM cronstack_runs r WHERE r.scheduled_at = v.scheduled_at"
        " AND r.slot_id = v.slot_id AND r.attempt = 1)",
        f"SELECT v.slot_id FROM (SELECT {_fields('scheduled_at', 'slot_id')} FROM json_each($1))"
        " AS v WHERE NOT EXISTS (SELECT 1 FROM cronstack_runs r"
        " WHERE r.scheduled_at = v.scheduled_at AND r.slot_id = v.slot_id AND r.attempt = 1)",
    ),
    # Which of these (run_id, token) claims wrote our row, after a lost reply ($1 our owner).
    "own_claims": (
        "SELECT r.run_id FROM cronstack_runs r"
        " JOIN unnest($2::text[], $3::text[]) AS v(run_id, token)"
        " ON r.run_id = v.run_id AND r.lease_token = v.token WHERE r.lease_owner = $1",
        f"SELECT r.run_id FROM cronstack_runs r JOIN (SELECT {_fields('run_id', 'token')}"
        " FROM json_each($2)) AS v ON r.run_id = v.run_id AND r.lease_token = v.token"
        " WHERE r.lease_owner = $1",
    ),
    "last_slots": "SELECT task, last_slot FROM cronstack_task_state WHERE last_slot IS NOT NULL",
    # --- leases -------------------------------------------------------------------------------
    "renew_leases": (
        "UPDATE cronstack_runs SET lease_expires_at = {NOW} + $2"
        " WHERE status = 'running' AND lease_owner = $1"
    ),
    # $1 reason, $2 error (JSON text); the two variants differ only in which rows they take.
    "interrupt_expired": (
        "UPDATE cronstack_runs SET status = 'interrupted', finished_at = {NOW},"
        " duration_ms = {NOW} - started_at, reason = $1, error = $2{JSON},"
        " lease_expires_at = NULL"
        " WHERE status = 'running' AND lease_expires_at < {NOW}"
        " RETURNING run_id, task, lease_owner"
    ),
    "interrupt_all_running": (
        "UPDATE cronstack_runs SET status = 'interrupted', finished_at = {NOW},"
        " duration_ms = {NOW} - started_at, reason = $1, error = $2{JSON},"
        " lease_expires_at = NULL"
        " WHERE status = 'running'"
        " RETURNING run_id, task, lease_owner"
    ),
    # --- pause and resume ---------------------------------------------------------------------
    "set_paused": (
        "INSERT INTO cronstack_task_state (task, paused, paused_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (task) DO UPDATE SET paused = excluded.paused,"
        " paused_at = excluded.paused_at"
    ),
    "paused_tasks": "SELECT task FROM cronstack_task_state WHERE paused = {TRUE}",
    # --- retention: small batches, never a running row ----------------------------------------
    "task_names": "SELECT task FROM cronstack_task_state",
    "prune_by_age": (
        "DELETE FROM cronstack_runs WHERE run_id IN (SELECT run_id FROM cronstack_runs"
        " WHERE task = $1 AND scheduled_at < $2 AND status <> 'running' LIMIT $3)"
    ),
    "prune_by_count": (
        "DELETE FROM cronstack_runs WHERE run_id IN (SELECT run_id FROM cronstack_runs"
        " WHERE task = $1 AND status <> 'running'"
        " ORDER BY scheduled_at DESC, attempt DESC LIMIT $3 OFFSET $2)"
    ),
    # --- the read side (daemon.state.queries) -------------------------------------------------
    "runs": f"SELECT {_READ} FROM cronstack_runs {_NEWEST} LIMIT $1",
    "runs_of_task": f"SELECT {_READ} FROM cronstack_runs WHERE task = $2 {_NEWEST} LIMIT $1",
    "runs_with_status": (
        f"SELECT {_READ} FROM cronstack_runs WHERE status = $2 {_NEWEST} LIMIT $1"
    ),
    "runs_of_task_with_status": (
        f"SELECT {_READ} FROM cronstack_runs WHERE task = $2 AND status = $3 {_NEWEST} LIMIT $1"
    ),
    "run": f"SELECT {_READ}, trace FROM cronstack_runs WHERE run_id = $1",
    # The last $2 runs of each task in $1, in one statement. Not a ROW_NUMBER() window over the
    # table: that reads every row kept (up to max_runs per task), half a second for 200k rows
    # on SQLite while the store's writers wait. A per-task LIMIT (LATERAL on PostgreSQL, a
    # rowid subquery on SQLite) reads only the newest index entries of each task.
    "recent_runs": (
        f"SELECT {_READ_R} FROM unnest($1::text[]) AS t(name) CROSS JOIN LATERAL"
        " (SELECT * FROM cronstack_runs WHERE task = t.name"
        " ORDER BY scheduled_at DESC, attempt DESC LIMIT $2) r",
        f"SELECT {_READ_R} FROM json_each($1) AS t JOIN cronstack_runs r ON r.rowid IN"
        " (SELECT rowid FROM cronstack_runs WHERE task = t.value"
        " ORDER BY scheduled_at DESC, attempt DESC LIMIT $2)",
    ),
    # When each of these tasks last succeeded: the finish of its newest successful slot, read
    # backwards through the task index (a row or two per task, not the task's whole history).
    # The dead-man's switch asks at start, for the tasks that set expect_success_within.
    "last_success": (
        "SELECT t.name AS task, (SELECT r.finished_at FROM cronstack_runs r"
        " WHERE r.task = t.name AND r.status = 'succeeded'"
        " ORDER BY r.scheduled_at DESC LIMIT 1) AS at FROM unnest($1::text[]) AS t(name)",
        "SELECT t.value AS task, (SELECT r.finished_at FROM cronstack_runs r"
        " WHERE r.task = t.value AND r.status = 'succeeded'"
        " ORDER BY r.scheduled_at DESC LIMIT 1) AS at FROM json_each($1) AS t",
    ),
    "ping": "SELECT 1 AS ok",
    # --- the database clock (read on PostgreSQL only: SQLite shares this host's) -------------
    # clock_timestamp(), not now(): the time of reading, not of the transaction.
    "clock": (
        "SELECT extract(epoch FROM clock_timestamp())::float8",
        "SELECT (julianday('now') - 2440587.5) * 86400.0",
    ),
}


# The write-behind flush, where nobody asks which rows went in. PostgreSQL: the batch insert
# without RETURNING. SQLite: one row's insert, run per row through executemany in one
# transaction (`Dialect.writes_row_by_row`).
def _write_runs() -> tuple[str, str]:
    pg = _STATEMENTS["insert_runs"][0]
    one_row = ", ".join(f"${i}" for i in range(1, len(RUN_COLUMNS) + 1))
    return (
        pg.replace("RETURNING run_id", ""),
        f"INSERT INTO cronstack_runs ({_COLS}) VALUES ({one_row}) ON CONFLICT DO NOTHING",
    )


_STATEMENTS["write_runs"] = _write_runs()


def statements(dialect: Dialect) -> Mapping[str, str]:
    """Every statement for `dialect`, translated once."""
    pick = 0 if dialect.name == "postgresql" else 1
    return {
        name: dialect.translate(text if isinstance(text, str) else text[pick])
        for name, text in _STATEMENTS.items()
    }


__all__ = [
    "POSTGRESQL",
    "READ_COLUMNS",
    "RUN_COLUMNS",
    "SQLITE",
    "Dialect",
    "DialectName",
    "dialect_named",
    "statements",
]
