"""The state store: run history, slot claims with leases, pause flags and last slots per task."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import structlog

from daemon.core.errors import DatabaseError
from daemon.core.runs import BUSY, EARLY, LOST, SKIPPED, WON, Claim, LogRecorder, Outcome
from daemon.core.secrets import mask_value
from daemon.resources.db.base import (
    DataSource,
    PostgresDataSource,
    SqliteDataSource,
    create_datasource,
    decode_json_text,
)
from daemon.state.migrations import LATEST, PG_MIGRATION_LOCK, Dialect, migrations

log = structlog.get_logger("cronstack.store")

RUNNING = "running"
INTERRUPTED = "interrupted"

# Step output kept in a trace entry; the rest is cut (history is for looking, not for data).
TRACE_OUTPUT_BYTES = 2048
# Rows per claim / write statement; PostgreSQL takes arrays, SQLite bound variables (32766).
PG_CHUNK = 1000
SQLITE_CHUNK = 400
# Rows deleted per retention statement, so pruning never holds long locks.
PRUNE_BATCH = 500
PRUNE_INTERVAL = 60.0
# Write-behind: flush at this many queued writes, or this long after the first one.
FLUSH_ROWS = 500
FLUSH_INTERVAL = 0.2
MAX_RETRY_DELAY = 2.0
# Database clock: round trips per measurement (the fastest one is used), the weight of a new
# measurement against the running value, and the change taken at once (a clock was stepped).
CLOCK_SAMPLES = 3
CLOCK_SMOOTHING = 0.3
CLOCK_STEP = 1.0
# An offset this large (s) is logged as a warning: the host's clock needs NTP.
CLOCK_WARN = 2.0
# The claim refuses (EARLY) a scheduled slot further ahead of the database clock than this (ms):
# the backstop for a process whose clock is not (yet) corrected.
EARLY_TOLERANCE_MS = 1000

RUN_COLUMNS = (
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


class StoreLockedError(RuntimeError):
    """Another process holds the SQLite state store (SQLite state means one daemon)."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        super().__init__(
            f"state store {path} is in use by another cronstack process ({holder}); "
            "a SQLite state store serves one daemon — stop the other one, or use a PostgreSQL "
            "state data source to run several replicas"
        )


@dataclass(slots=True)
class TaskPolicy:
    """Per-task history settings: keep the trace, retention by age (s) and by count."""

    request_history: bool = True
    retention: float = 30 * 86400.0
    max_runs: int = 10_000


@dataclass(slots=True)
class _Pending:
    """Queued writes, grouped by statement shape."""

    updates: list[tuple[Any, ...]] = field(default_factory=list)  # fenced final states
    inserts: list[tuple[Any, ...]] = field(default_factory=list)  # rows that never ran
    slots: dict[str, int] = field(default_factory=dict)  # task -> latest slot considered

    def __len__(self) -> int:
        return len(self.updates) + len(self.inserts) + len(self.slots)


def trace_summary(outcome: Outcome) -> list[dict[str, Any]] | None:
    """The stored trace: path, function, status, duration and a bounded, masked output excerpt."""
    if outcome.result is None:
        return None
    entries = []
    for rec in outcome.result.trace:
        output = rec.output  # masked on read
        text = orjson.dumps(output, default=str).decode() if output is not None else None
        if text is not None and len(text) > TRACE_OUTPUT_BYTES:
            text = text[:TRACE_OUTPUT_BYTES] + f"... ({len(text)} chars)"
        entries.append(
            {
                "path": rec.path,
                "function": rec.function,
                "status": rec.status,
                "duration_ms": round(rec.duration_ms, 3),
                "output": text,
            }
        )
    return entries


def default_instance() -> str:
    """`host:pid`: unique per process on one host, readable in history."""
    return f"{socket.gethostname()}:{os.getpid()}"


class StateStore:
    """Run rows, claims, leases and task state in the `state` data source.

    Claims are batched: every `claim()` made in the same event-loop turn (a batch of fires due
    together) goes out as one multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING. Final states
    go through a write-behind queue flushed by size and time and retried until the store answers.
    A `running` row holds a lease (database clock) renewed every `lease_timeout / 3`; the final
    update is fenced on owner, token and an unexpired lease; expired leases of any process are
    marked `interrupted` by whichever process notices first.
    """

    def __init__(
        self,
        ds: DataSource,
        *,
        instance: str | None = None,
        lease_timeout: float = 30.0,
        retention: float = 30 * 86400.0,
        max_runs: int = 10_000,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.ds = ds
        self.dialect: Dialect = ds.dialect
        self.instance = instance or default_instance()
        # The lease owner is unique per process even when replicas share an `instance` name.
        self.owner = f"{self.instance}#{os.urandom(4).hex()}"
        self.lease_ms = int(lease_timeout * 1000)
        self.default_policy = TaskPolicy(True, retention, max_runs)
        self.policies: dict[str, TaskPolicy] = {}
        self.flush_interval = flush_interval
        self.logger = LogRecorder()
        self._owned: dict[str, str] = {}  # run_id -> lease token of our running rows
        self._pending = _Pending()
        self._flushing: _Pending | None = None
        self._has_work = asyncio.Event()
        self._full = asyncio.Event()  # FLUSH_ROWS queued (or closing): flush without waiting
        self._flushed = asyncio.Event()
        self._claims: list[tuple[Claim, asyncio.Future[str]]] = []
        self._claim_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._lock_file: IO[str] | None = None
        self._closed = False
        self.now_sql = (
            "(extract(epoch from now()) * 1000)::bigint"
            if self.dialect == "postgresql"
            else "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
        )
        # The process clock the scheduler fires on (`SystemClock.local_time`), the database
        # clock minus it (s, smoothed), and who applies changes of it (the scheduler's clock).
        self.local_time: Callable[[], float] = time.time
        self.clock_offset = 0.0
        self.on_clock_offset: Callable[[float], None] | None = None
        self._clock_logged: float | None = None
        self.writes = 0  # statements that wrote, for benchmarks
        self.claiming = 0  # claims waiting for the database (tests on a fake clock wait for 0)

    # --- SQL helpers ----------------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        text = text.replace("{NOW}", self.now_sql)
        if self.dialect == "sqlite":
            # SQLite takes numbered `?NNN` parameters: same numbering, other sigil.
            text = re.sub(r"\$(\d+)", r"?\1", text)
        return text

    def _json_in(self, value: Any) -> Any:
        return None if value is None else orjson.dumps(value, default=str).decode()

    # --- open / close ---------------------------------------------------------------------------

    async def open(self, *, exclusive: bool = False) -> None:
        """Open the data source and migrate. `exclusive`: this is the daemon (`run`); on SQLite
        take the single-process lock, and mark rows left `running` by a previous process."""
        if exclusive and isinstance(self.ds, SqliteDataSource) and self.ds.path != ":memory:":
            self._take_file_lock(self.ds.path)
        try:
            await self._open_ds()
            await self.migrate()
            if exclusive:
                now = int(time.time() * 1000)
                await self.ds.execute(
                    self._sql(
                        "INSERT INTO cronstack_instances (instance, host, pid, started_at,"
                        " heartbeat_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (instance) DO"
                        " UPDATE SET host = excluded.host, pid = excluded.pid,"
                        " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at"
                    ),
                    [self.instance, socket.gethostname(), os.getpid(), now],
                )
                # Before the scheduler arms: its first deadlines are already on the
                # database's clock.
                await self.sync_clock()
                if self.dialect == "sqlite":
                    # We hold the only lock: whatever is still `running` lost its process.
                    await self._interrupt("running", "the daemon stopped while it ran")
        except BaseException:
            await self.ds.close()
            self._release_file_lock()
            raise

    async def _open_ds(self) -> None:
        for attempt in range(20):
            try:
                await self.ds.open()
                return
            except DatabaseError as exc:
                # Switching a new SQLite file to WAL needs it alone for a moment: a CLI command
                # and the daemon starting together take turns instead of failing.
                if self.dialect != "sqlite" or "locked" not in str(exc) or attempt == 19:
                    raise
                await asyncio.sleep(0.05)

    def _take_file_lock(self, db_path: str) -> None:
        lock_path = f"{db_path}.lock"
        Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+", encoding="utf-8")  # held until close
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            handle.close()
            raise StoreLockedError(db_path, holder) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._lock_file = handle

    def _release_file_lock(self) -> None:
        handle, self._lock_file = self._lock_file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    async def migrate(self) -> int:
        """Bring the tables to the latest version; safe when several processes start at once."""
        if isinstance(self.ds, PostgresDataSource):
            async with self.ds.pool.acquire() as conn, conn.transaction():
                # Serializes concurrent starters; CREATE ... IF NOT EXISTS alone races on
                # the catalog's unique indexes.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", PG_MIGRATION_LOCK)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS cronstack_schema_version"
                    " (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
                )
                current = await conn.fetchval(
                    "SELECT COALESCE(max(version), 0) FROM cronstack_schema_version"
                )
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
        assert isinstance(self.ds, SqliteDataSource)
        conn = self.ds.conn
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS cronstack_schema_version"
                " (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
            )
            rows = list(
                await conn.execute_fetchall(
                    "SELECT COALESCE(max(version), 0) FROM cronstack_schema_version"
                )
            )
            current = rows[0][0]
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

    def start(self) -> None:
        """Start the background work: write-behind flusher, lease heartbeat, retention."""
        for coro, name in (
            (self._flusher(), "store-flush"),
            (self._heartbeat_loop(), "store-heartbeat"),
            (self._prune_loop(), "store-prune"),
        ):
            task = asyncio.create_task(coro, name=name)
            self._background.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("store_task_failed", name=task.get_name(), exc_info=task.exception())

    async def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued (up to `timeout`), stop background work, release the store."""
        if self._closed:
            return
        self._closed = True
        self._full.set()
        try:
            async with asyncio.timeout(timeout):
                while len(self._pending) or self._flushing is not None:
                    if not self._background:
                        await self.flush()
                    else:
                        self._has_work.set()
                        self._flushed.clear()
                        await self._flushed.wait()
        except TimeoutError:
            log.error("history_not_flushed", queued=len(self._pending), timeout_s=timeout)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.ds.close()
        self._release_file_lock()

    # --- configuration --------------------------------------------------------------------------

    def configure(self, policies: Mapping[str, TaskPolicy]) -> None:
        """Per-task history settings (at start and on reload)."""
        self.policies = dict(policies)

    def policy(self, task: str) -> TaskPolicy:
        return self.policies.get(task, self.default_policy)

    # --- claims ---------------------------------------------------------------------------------

    def claim(self, claim: Claim) -> asyncio.Future[str]:
        """Own a fire: WON (its `running` row is written), LOST (another process has the slot),
        or BUSY (skip overlap: a live run of the task exists elsewhere, recorded `skipped`).
        Raises DatabaseError when the store cannot be reached.

        On PostgreSQL a slot more than EARLY_TOLERANCE_MS ahead of the database clock is
        refused: EARLY, nothing written, the scheduler fires it again later. Replicas fire on
        the database clock (see `sync_clock`); this is the backstop for a clock not (yet)
        corrected, which would otherwise run slots early and make another replica's live run of
        an earlier slot look like an overlap.

        Only a live run of an *earlier* slot blocks. Our own running rows do not count: the
        scheduler knows them first-hand, and a run that just ended may still read `running`
        until the write-behind queue flushes.

        Returns the answer's future, not a coroutine: the scheduler keeps (and shields) it as
        is, so a claim costs one future, not a task and a coroutine besides."""
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._claims.append((claim, fut))
        if self._claim_task is None:
            # Everything claimed before this task runs (the rest of the batch) goes together.
            self._claim_task = asyncio.create_task(self._claim_batch())
        self.claiming += 1
        return fut

    async def _claim_batch(self) -> None:
        await asyncio.sleep(0)
        batch, self._claims = self._claims, []
        self._claim_task = None
        chunk = PG_CHUNK if self.dialect == "postgresql" else SQLITE_CHUNK
        for i in range(0, len(batch), chunk):
            part = batch[i : i + chunk]
            try:
                results = await self.claim_many([c for c, _ in part])
            except Exception as exc:
                for _, fut in part:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            finally:
                self.claiming -= len(part)
            for c, fut in part:
                if not fut.done():
                    fut.set_result(results.get(c.run_id, LOST))

    async def claim_many(self, claims: Sequence[Claim]) -> dict[str, str]:
        """One statement for many claims (retried once: a pool connection may have died)."""
        try:
            return await self._claim_many(claims)
        except DatabaseError:
            return await self._claim_many(claims)

    async def _claim_many(self, claims: Sequence[Claim]) -> dict[str, str]:
        # One urandom call for the whole batch, cut into 16-hex-digit tokens.
        pool = os.urandom(8 * len(claims)).hex()
        tokens = {c.run_id: pool[16 * i : 16 * i + 16] for i, c in enumerate(claims)}
        started = int(time.time() * 1000)
        # The database clock as the statement saw it (ms; now() is fixed per transaction, so
        # it is the one the WHERE compared with); None on SQLite, which has no EARLY.
        db_now: int | None = None
        if self.dialect == "postgresql":
            rows = await self.ds.fetch(
                self._sql(
                    """
                    WITH ins AS (
                        INSERT INTO cronstack_runs (run_id, task, slot_id, scheduled_at,
                            trigger, attempt, instance, status, started_at, lease_owner,
                            lease_token, lease_expires_at)
                        SELECT v.run_id, v.task, v.slot_id, v.scheduled_at, v.trigger,
                            v.attempt, $9, 'running', $12, $10, v.token, {NOW} + $11
                        FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                                    $5::text[], $6::int[], $7::bool[], $8::text[])
                            AS v(run_id, task, slot_id, scheduled_at, trigger, attempt, skip,
                                 token)
                        WHERE (v.trigger = 'manual' OR v.scheduled_at <= {NOW} + $13)
                        AND NOT (v.skip AND EXISTS (
                            SELECT 1 FROM cronstack_runs r WHERE r.task = v.task
                            AND r.status = 'running' AND r.lease_expires_at > {NOW}
                            AND r.lease_owner <> $10 AND r.scheduled_at < v.scheduled_at))
                        ON CONFLICT DO NOTHING
                        RETURNING run_id
                    )
                    SELECT run_id, NULL::bigint AS db_now FROM ins
                    UNION ALL SELECT NULL, {NOW}
                    """
                ),
                [
                    [c.run_id for c in claims],
                    [c.task for c in claims],
                    [c.slot_id for c in claims],
                    [c.scheduled_at for c in claims],
                    [c.trigger for c in claims],
                    [c.attempt for c in claims],
                    [c.skip_overlap for c in claims],
                    [tokens[c.run_id] for c in claims],
                    self.instance,
                    self.owner,
                    self.lease_ms,
                    started,
                    EARLY_TOLERANCE_MS,
                ],
            )
            db_now = next(int(r["db_now"]) for r in rows if r["db_now"] is not None)
            rows = [r for r in rows if r["run_id"] is not None]
        else:
            values = []
            params: list[Any] = [self.instance, self.owner, self.lease_ms, started]
            for c in claims:
                n = len(params)
                values.append(
                    f"(?{n + 1}, ?{n + 2}, ?{n + 3}, ?{n + 4}, ?{n + 5}, ?{n + 6}, ?{n + 7},"
                    f" ?{n + 8})"
                )
                params += [
                    c.run_id,
                    c.task,
                    c.slot_id,
                    c.scheduled_at,
                    c.trigger,
                    c.attempt,
                    int(c.skip_overlap),
                    tokens[c.run_id],
                ]
            rows = await self.ds.fetch(
                f"""
                WITH v(run_id, task, slot_id, scheduled_at, trigger, attempt, skip, token)
                    AS (VALUES {", ".join(values)})
                INSERT INTO cronstack_runs (run_id, task, slot_id, scheduled_at, trigger,
                    attempt, instance, status, started_at, lease_owner, lease_token,
                    lease_expires_at)
                SELECT v.run_id, v.task, v.slot_id, v.scheduled_at, v.trigger, v.attempt,
                    ?1, 'running', ?4, ?2, v.token, {self.now_sql} + ?3
                FROM v
                WHERE NOT (v.skip AND EXISTS (
                    SELECT 1 FROM cronstack_runs r WHERE r.task = v.task
                    AND r.status = 'running' AND r.lease_expires_at > {self.now_sql}
                    AND r.lease_owner <> ?2 AND r.scheduled_at < v.scheduled_at))
                ON CONFLICT DO NOTHING
                RETURNING run_id
                """,
                params,
            )
        self.writes += 1
        won = {r["run_id"] for r in rows}
        results: dict[str, str] = {}
        busy: list[Claim] = []
        for c in claims:
            if (
                db_now is not None
                and c.trigger != "manual"
                and c.scheduled_at > db_now + EARLY_TOLERANCE_MS
            ):
                # Not considered yet: no row, and the task's last slot stays where it was.
                results[c.run_id] = EARLY
                continue
            if c.trigger in ("schedule", "catch_up"):
                slot = self._pending.slots.get(c.task)
                if slot is None or c.scheduled_at > slot:
                    self._pending.slots[c.task] = c.scheduled_at
            if c.run_id in won:
                self._owned[c.run_id] = tokens[c.run_id]
                results[c.run_id] = WON
            elif c.skip_overlap:
                busy.append(c)
            else:
                results[c.run_id] = LOST
        if busy:
            # Not won with skip overlap: either another process holds this slot (LOST) or a live
            # run elsewhere blocks it (BUSY). Recording `skipped` under the same unique key
            # tells them apart and gives the slot its row.
            reason = "overlap skip: a run of this task is running on another instance"
            rows_in = [
                (c.run_id, c.task, c.slot_id, c.scheduled_at, c.trigger, c.attempt,
                 self.instance, SKIPPED, None, None, None, None, None, reason)
                for c in busy
            ]  # fmt: skip
            inserted = await self._insert_rows(rows_in, returning=True)
            for c in busy:
                results[c.run_id] = BUSY if c.run_id in inserted else LOST
        if len(self._pending.slots):
            self._has_work.set()
        return results

    # --- recording (write-behind) ---------------------------------------------------------------

    async def record(self, outcome: Outcome) -> None:
        """RunRecorder: log the outcome and queue its row; never blocks on the database."""
        await self.logger.record(outcome)
        self.enqueue(outcome)

    def enqueue(self, outcome: Outcome) -> None:
        policy = self.policy(outcome.task)
        trace = trace_summary(outcome) if policy.request_history else None
        error = mask_value(outcome.error) if outcome.error else None
        token = self._owned.pop(outcome.run_id, None)
        if token is not None:
            self._pending.updates.append(
                (
                    outcome.run_id,
                    token,
                    outcome.status,
                    outcome.started_at,
                    outcome.finished_at,
                    outcome.duration_ms,
                    self._json_in(error),
                    self._json_in(trace),
                    outcome.reason,
                )
            )
        else:
            self._pending.inserts.append(
                (
                    outcome.run_id,
                    outcome.task,
                    outcome.slot_id,
                    outcome.scheduled_at,
                    outcome.trigger,
                    outcome.attempt,
                    self.instance,
                    outcome.status,
                    outcome.started_at,
                    outcome.finished_at,
                    outcome.duration_ms,
                    self._json_in(error),
                    self._json_in(trace),
                    outcome.reason,
                )
            )
        if outcome.trigger in ("schedule", "catch_up"):
            slot = self._pending.slots.get(outcome.task)
            if slot is None or outcome.scheduled_at > slot:
                self._pending.slots[outcome.task] = outcome.scheduled_at
        self._has_work.set()
        if len(self._pending) >= FLUSH_ROWS:
            self._full.set()

    @property
    def queued(self) -> int:
        return len(self._pending) + (len(self._flushing) if self._flushing is not None else 0)

    async def flush(self) -> None:
        """Write everything queued now; on failure it stays queued (and raises)."""
        if self._flushing is not None:
            return
        batch, self._pending = self._pending, _Pending()
        if not len(batch):
            return
        self._flushing = batch
        try:
            if batch.updates:
                await self._update_finals(batch.updates)
                batch.updates = []
            if batch.inserts:
                await self._insert_rows(batch.inserts)
                batch.inserts = []
            if batch.slots:
                await self._save_slots(batch.slots)
                batch.slots = {}
        except BaseException:
            # Put back what did not reach the store, ahead of newer writes.
            self._pending.updates[:0] = batch.updates
            self._pending.inserts[:0] = batch.inserts
            for task, slot in batch.slots.items():
                if slot > self._pending.slots.get(task, slot - 1):
                    self._pending.slots[task] = slot
            raise
        finally:
            self._flushing = None

    async def _flusher(self) -> None:
        delay = self.flush_interval
        while True:
            await self._has_work.wait()
            if len(self._pending) < FLUSH_ROWS and not self._closed:
                # Let a burst of outcomes gather into one statement (bounded: final states
                # reach the store within a second).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.flush_interval):
                        await self._full.wait()
            self._has_work.clear()
            self._full.clear()
            try:
                await self.flush()
                delay = self.flush_interval
            except Exception as exc:
                log.warning(
                    "history_write_failed",
                    error=mask_value(str(exc)),
                    queued=len(self._pending),
                    retry_in_s=delay,
                )
                self._has_work.set()
                await asyncio.sleep(delay)
                delay = min(MAX_RETRY_DELAY, delay * 2)
                continue
            finally:
                self._flushed.set()

    async def _update_finals(self, rows: list[tuple[Any, ...]]) -> None:
        chunk = PG_CHUNK if self.dialect == "postgresql" else SQLITE_CHUNK
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            if self.dialect == "postgresql":
                cols = list(zip(*part, strict=True))
                done = await self.ds.fetch(
                    self._sql(
                        """
                        UPDATE cronstack_runs r SET status = v.status,
                            started_at = COALESCE(v.started_at, r.started_at),
                            finished_at = v.finished_at,
                            duration_ms = COALESCE(v.duration_ms,
                                v.finished_at - COALESCE(v.started_at, r.started_at)),
                            error = v.error::jsonb, trace = v.trace::jsonb, reason = v.reason,
                            lease_expires_at = NULL
                        FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                                    $5::bigint[], $6::bigint[], $7::text[], $8::text[],
                                    $9::text[])
                            AS v(run_id, token, status, started_at, finished_at, duration_ms,
                                 error, trace, reason)
                        WHERE r.run_id = v.run_id AND r.lease_token = v.token
                          AND r.status = 'running' AND r.lease_expires_at > {NOW}
                        RETURNING r.run_id
                        """
                    ),
                    [list(c) for c in cols],
                )
                fenced = {r[0] for r in part} - {d["run_id"] for d in done}
                for run_id in fenced:
                    log.warning(
                        "final_state_fenced",
                        run_id=run_id,
                        reason="the lease expired or the run was marked interrupted",
                    )
            else:
                # One process per SQLite store: the token check is enough fencing.
                await self.ds.executemany(
                    self._sql(
                        """
                        UPDATE cronstack_runs SET status = $3,
                            started_at = COALESCE($4, started_at), finished_at = $5,
                            duration_ms = COALESCE($6, $5 - COALESCE($4, started_at)),
                            error = $7, trace = $8, reason = $9, lease_expires_at = NULL
                        WHERE run_id = $1 AND lease_token = $2 AND status = 'running'
                        """
                    ),
                    part,
                )
            self.writes += 1

    async def _insert_rows(
        self, rows: list[tuple[Any, ...]], *, returning: bool = False
    ) -> set[str]:
        inserted: set[str] = set()
        chunk = PG_CHUNK if self.dialect == "postgresql" else SQLITE_CHUNK
        cols = ", ".join(RUN_COLUMNS)
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            if self.dialect == "postgresql":
                arrays = [list(c) for c in zip(*part, strict=True)]
                got = await self.ds.fetch(
                    f"""
                    INSERT INTO cronstack_runs ({cols})
                    SELECT v.run_id, v.task, v.slot_id, v.scheduled_at, v.trigger, v.attempt,
                        v.instance, v.status, v.started_at, v.finished_at, v.duration_ms,
                        v.error::jsonb, v.trace::jsonb, v.reason
                    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                                $6::int[], $7::text[], $8::text[], $9::bigint[], $10::bigint[],
                                $11::bigint[], $12::text[], $13::text[], $14::text[])
                        AS v({cols})
                    ON CONFLICT DO NOTHING
                    RETURNING run_id
                    """,
                    arrays,
                )
                inserted.update(r["run_id"] for r in got)
            elif returning:
                marks = ", ".join("?" for _ in RUN_COLUMNS)
                values = ", ".join(f"({marks})" for _ in part)
                got = await self.ds.fetch(
                    f"INSERT INTO cronstack_runs ({cols}) VALUES {values}"
                    " ON CONFLICT DO NOTHING RETURNING run_id",
                    [v for row in part for v in row],
                )
                inserted.update(r["run_id"] for r in got)
            else:
                marks = ", ".join("?" for _ in RUN_COLUMNS)
                await self.ds.executemany(
                    f"INSERT INTO cronstack_runs ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                    part,
                )
            self.writes += 1
        return inserted

    async def _save_slots(self, slots: Mapping[str, int]) -> None:
        # One statement for every task of the batch: a row per task through executemany cost
        # as much as the batch's claims (2,000 tasks: ~40 ms on PostgreSQL).
        if self.dialect == "postgresql":
            await self.ds.execute(
                "INSERT INTO cronstack_task_state (task, last_slot)"
                " SELECT * FROM unnest($1::text[], $2::bigint[])"
                " ON CONFLICT (task) DO UPDATE"
                " SET last_slot = GREATEST(cronstack_task_state.last_slot, excluded.last_slot)",
                [list(slots), list(slots.values())],
            )
        else:
            # `WHERE true`: SQLite's parser needs it between a SELECT and ON CONFLICT.
            await self.ds.execute(
                "INSERT INTO cronstack_task_state (task, last_slot)"
                " SELECT key, value FROM json_each(?1) WHERE true"
                " ON CONFLICT (task) DO UPDATE"
                " SET last_slot = max(COALESCE(cronstack_task_state.last_slot, 0),"
                " excluded.last_slot)",
                [orjson.dumps(slots).decode()],
            )
        self.writes += 1

    # --- leases ---------------------------------------------------------------------------------

    async def heartbeat(self) -> int:
        """Renew the leases of our running rows (database clock); returns how many."""
        count = await self.ds.execute(
            self._sql(
                "UPDATE cronstack_runs SET lease_expires_at = {NOW} + $2"
                " WHERE status = 'running' AND lease_owner = $1"
            ),
            [self.owner, self.lease_ms],
        )
        await self.ds.execute(
            self._sql("UPDATE cronstack_instances SET heartbeat_at = {NOW} WHERE instance = $1"),
            [self.instance],
        )
        return count

    async def reap(self) -> int:
        """Mark runs whose lease expired (their process died or lost the store) `interrupted`."""
        return await self._interrupt(
            "running AND lease_expires_at < {NOW}",
            "lease expired: its process stopped renewing it (crashed, killed or cut off)",
        )

    async def _interrupt(self, where: str, reason: str) -> int:
        where = where.replace("running", "status = 'running'", 1)
        error = self._json_in({"type": "Interrupted", "message": reason, "step": None})
        cast = "::jsonb" if self.dialect == "postgresql" else ""
        rows = await self.ds.fetch(
            self._sql(
                f"UPDATE cronstack_runs SET status = 'interrupted', finished_at = {{NOW}},"
                f" duration_ms = {{NOW}} - started_at, reason = $1, error = $2{cast},"
                f" lease_expires_at = NULL WHERE {where} RETURNING run_id, task, lease_owner"
            ),
            [reason, error],
        )
        for row in rows:
            self._owned.pop(row["run_id"], None)
            log.warning(
                "run_interrupted",
                task=row["task"],
                run_id=row["run_id"],
                owner=row["lease_owner"],
                reason=reason,
            )
        return len(rows)

    async def _heartbeat_loop(self) -> None:
        interval = self.lease_ms / 3000.0
        while True:
            await asyncio.sleep(interval)
            try:
                await self.heartbeat()
                await self.reap()
            except Exception as exc:
                log.warning("lease_heartbeat_failed", error=mask_value(str(exc)))
            try:
                # Host clocks drift and get stepped: keep following the database's.
                await self.sync_clock()
            except Exception as exc:
                log.warning("clock_offset_failed", error=mask_value(str(exc)))

    # --- the database clock ---------------------------------------------------------------------

    async def measure_clock_offset(self) -> tuple[float, float]:
        """(database clock minus `local_time`, round trip), both in seconds, from the fastest of
        a few round trips: the database read its clock about halfway through it. SQLite shares
        this host's clock and serves one process: (0, 0)."""
        if not isinstance(self.ds, PostgresDataSource):
            return 0.0, 0.0
        best: tuple[float, float] | None = None
        # One connection for all samples: waiting for a pooled one must not count as transit.
        async with self.ds.pool.acquire() as conn:
            for _ in range(CLOCK_SAMPLES):
                t0 = self.local_time()
                # clock_timestamp(), not now(): the time of reading, not of the transaction.
                db = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
                t1 = self.local_time()
                sample = (float(db) - (t0 + t1) / 2, t1 - t0)
                if best is None or sample[1] < best[1]:
                    best = sample
        assert best is not None
        return best

    async def sync_clock(self) -> float:
        """Measure the database clock and adopt it (smoothed; a step is taken at once), tell
        `on_clock_offset`, and log it when first measured or when it moved. Returns the offset."""
        measured, rtt = await self.measure_clock_offset()
        previous = self.clock_offset
        if self._clock_logged is None or abs(measured - previous) > CLOCK_STEP:
            offset = measured
        else:
            offset = previous + CLOCK_SMOOTHING * (measured - previous)
        self.clock_offset = offset
        shared = isinstance(self.ds, PostgresDataSource)  # SQLite: the host's own clock, no news
        if shared and (self._clock_logged is None or abs(offset - self._clock_logged) > 0.5):
            # Negative: this process's clock is ahead of the database's (it would fire early).
            level = log.warning if abs(offset) > CLOCK_WARN else log.info
            level(
                "clock_offset",
                offset_s=round(offset, 4),
                rtt_ms=round(rtt * 1000, 2),
                first=self._clock_logged is None,
            )
            self._clock_logged = offset
        if self.on_clock_offset is not None:
            self.on_clock_offset(offset)
        return offset

    # --- task state -----------------------------------------------------------------------------

    async def set_paused(self, task: str, paused: bool) -> None:
        await self.ds.execute(
            self._sql(
                "INSERT INTO cronstack_task_state (task, paused, paused_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (task) DO UPDATE SET paused = excluded.paused,"
                " paused_at = excluded.paused_at"
            ),
            [task, paused, int(time.time() * 1000) if paused else None],
        )

    async def paused_tasks(self) -> set[str]:
        rows = await self.ds.fetch(
            "SELECT task FROM cronstack_task_state WHERE paused = " + self._true(), []
        )
        return {r["task"] for r in rows}

    def _true(self) -> str:
        return "TRUE" if self.dialect == "postgresql" else "1"

    async def last_slots(self) -> dict[str, int]:
        """The latest slot each task considered (claimed, ran, skipped or missed), ms."""
        rows = await self.ds.fetch(
            "SELECT task, last_slot FROM cronstack_task_state WHERE last_slot IS NOT NULL", []
        )
        return {r["task"]: int(r["last_slot"]) for r in rows}

    # --- reading --------------------------------------------------------------------------------

    async def history(
        self, task: str | None = None, limit: int = 20, *, with_trace: bool = False
    ) -> list[dict[str, Any]]:
        """Recent runs, newest first (by slot, then attempt)."""
        cols = (
            "run_id, task, slot_id, status, trigger, attempt, instance, scheduled_at,"
            " started_at, finished_at, duration_ms, error, reason"
        )
        if with_trace:
            cols += ", trace"
        where, params = ("WHERE task = $2", [limit, task]) if task else ("", [limit])
        rows = await self.ds.fetch(
            self._sql(
                f"SELECT {cols} FROM cronstack_runs {where}"
                " ORDER BY scheduled_at DESC, attempt DESC, run_id DESC LIMIT $1"
            ),
            params,
        )
        for row in rows:
            row["error"] = decode_json_text(row["error"])
            if with_trace:
                row["trace"] = decode_json_text(row["trace"])
        return rows

    # --- retention ------------------------------------------------------------------------------

    async def prune(self, now_ms: int | None = None) -> int:
        """Delete rows past their task's age or count limit, a small batch per statement."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        rows = await self.ds.fetch("SELECT task FROM cronstack_task_state", [])
        names = {r["task"] for r in rows} | set(self.policies)
        deleted = 0
        for name in sorted(names):
            policy = self.policy(name)
            cutoff = now_ms - int(policy.retention * 1000)
            deleted += await self._delete_batches(
                "SELECT run_id FROM cronstack_runs WHERE task = $1 AND scheduled_at < $2"
                " AND status <> 'running' LIMIT $3",
                [name, cutoff, PRUNE_BATCH],
            )
            deleted += await self._delete_batches(
                "SELECT run_id FROM cronstack_runs WHERE task = $1 AND status <> 'running'"
                " ORDER BY scheduled_at DESC, attempt DESC LIMIT $3 OFFSET $2",
                [name, policy.max_runs, PRUNE_BATCH],
            )
        return deleted

    async def _delete_batches(self, select: str, params: list[Any]) -> int:
        total = 0
        sql = self._sql(f"DELETE FROM cronstack_runs WHERE run_id IN ({select})")
        while True:
            count = await self.ds.execute(sql, params)
            total += count
            if count < PRUNE_BATCH:
                return total
            await asyncio.sleep(0)  # the scheduler and the flusher go first

    async def _prune_loop(self) -> None:
        await asyncio.sleep(min(5.0, PRUNE_INTERVAL))
        while True:
            try:
                deleted = await self.prune()
                if deleted:
                    log.info("history_pruned", deleted=deleted)
            except Exception as exc:
                log.warning("history_prune_failed", error=mask_value(str(exc)))
            await asyncio.sleep(PRUNE_INTERVAL)


def open_state_datasource(url: str, *, base_dir: Path, name: str = "state") -> DataSource:
    """The store's own connection(s) to the state data source: heartbeats must not wait behind
    task queries for a pooled connection, and reloads must not close it under the store."""
    return create_datasource(name, url, base_dir=base_dir, min_size=1, max_size=3)


__all__ = [
    "BUSY",
    "EARLY",
    "LOST",
    "WON",
    "Claim",
    "StateStore",
    "StoreLockedError",
    "TaskPolicy",
    "default_instance",
    "open_state_datasource",
]
