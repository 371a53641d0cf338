"""The state store: run history, slot claims with leases, pause flags and last slots per task."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
import structlog

from daemon.core.aio import BackgroundTasks
from daemon.core.errors import DatabaseError
from daemon.core.outage import Outage
from daemon.core.runs import (
    BUSY,
    EARLY,
    LOST,
    SKIPPED,
    WON,
    Claim,
    Outcome,
    log_outcome,
)
from daemon.core.secrets import mask_value
from daemon.resources.db import as_postgres, create_datasource
from daemon.resources.db.base import DataSource
from daemon.resources.db.sqlite import SqliteDataSource
from daemon.state import spool
from daemon.state.dbclock import DatabaseClock
from daemon.state.lock import FileLock, StoreLockedError
from daemon.state.migrations import migrate
from daemon.state.queries import RunQueries
from daemon.state.spool import Spooled
from daemon.state.sql import Dialect, dialect_named, statements

if TYPE_CHECKING:
    from daemon.resources.db.postgres import PostgresDataSource

log = structlog.get_logger("cronstack.store")

# Step output kept in a trace entry; the rest is cut (history is for looking, not for data).
TRACE_OUTPUT_BYTES = 2048
# Rows deleted per retention statement, so pruning never holds long locks.
PRUNE_BATCH = 500
# Every PRUNE_INTERVAL the next PRUNE_TASKS tasks (round-robin): retention holds one connection
# of the state pool for a short while, never the pool (claims come first).
PRUNE_INTERVAL = 10.0
PRUNE_TASKS = 200
# Each task's latest slot considered is saved this often (and at close): catch-up after a
# restart starts there. Saving it with every flush wrote a row per task 5 times a second; a
# slot saved late is harmless (its row exists, so a catch-up of it is refused by the key).
SLOTS_INTERVAL = 5.0
# Write-behind limit: with this many rows queued the store is `behind` and the scheduler holds
# new fires (they are recorded missed if they wait past their misfire grace) until it catches up:
# memory stays bounded however long the database is slow or gone.
MAX_QUEUED = 50_000
# Write-behind: flush at this many queued writes, or this long after the first one.
FLUSH_ROWS = 500
FLUSH_INTERVAL = 0.2
MAX_RETRY_DELAY = 2.0
# Claim statements in flight at once on a shared (PostgreSQL) store, and the fewest claims a
# statement carries when a batch is split between them.
CLAIM_CONCURRENCY = 3
MIN_CLAIM_CHUNK = 100
# How often the live replicas are counted (for the claim shares), seconds.
PARTITION_REFRESH = 2.0
# The claim refuses (EARLY) a scheduled slot further ahead of the database clock than this (ms):
# the backstop for a process whose clock is not (yet) corrected.
EARLY_TOLERANCE_MS = 1000
# The planner settings of the store's PostgreSQL sessions. Every statement of the store reaches
# its rows through an index (run id, slot key, task, the running rows). But told that a batch of
# 1,000 run ids is joined to a table that was small at its last ANALYZE, or whose running rows
# it believes to be none, the planner read the whole table into a hash for every batch: in a
# 100,000-run burst that grew quadratic, a third of PostgreSQL's time (with the lease fence's
# clock expression evaluated on every row read). These only price the other paths out: where no
# index serves (reading the whole task-state table), they are still taken.
STATE_PLANNER: Final = {
    "enable_seqscan": "off",
    "enable_hashjoin": "off",
    "enable_mergejoin": "off",
}


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
    inserts: list[tuple[Any, ...]] = field(default_factory=list)  # rows without a claim
    # run_id -> whole row, for updates whose claim is unsure: inserted if the update finds none
    fallbacks: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.updates) + len(self.inserts)


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


def _claim_row(c: Claim, token: str) -> tuple[Any, ...]:
    """A claim as the `claim` statement binds it."""
    return (c.run_id, c.task, c.slot_id, c.scheduled_at, c.trigger, c.attempt, c.skip_overlap,
            token)  # fmt: skip


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

    Its state belongs together (the claims in flight, the owned leases and the queue of final
    writes all describe the same rows), so it stays one class; the statements live in
    `state/sql.py`, the reads in `state/queries.py`, the clock in `state/dbclock.py`.
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
        spool_dir: Path | None = None,
    ) -> None:
        self.ds = ds
        # Where final writes that could not be made before exit wait for the next start.
        self.spool_dir = spool_dir
        self.dialect: Dialect = dialect_named(ds.dialect)
        self.q = statements(self.dialect)
        self.queries = RunQueries(ds, self.dialect, self.q)
        self.clock = DatabaseClock(ds, self.q["clock"])
        self.instance = instance or default_instance()
        # The lease owner is unique per process even when replicas share an `instance` name.
        self.owner = f"{self.instance}#{os.urandom(4).hex()}"
        self.lease_ms = int(lease_timeout * 1000)
        self.default_policy = TaskPolicy(True, retention, max_runs)
        self.policies: dict[str, TaskPolicy] = {}
        self.flush_interval = flush_interval
        # Writes the outcome's log line (the service passes ops.logs.log_outcome).
        self.log_outcome: Callable[[Outcome], None] = log_outcome
        self._owned: dict[str, str] = {}  # run_id -> lease token of our running rows
        # run_id -> token of claims whose answer was lost: our row may or may not exist.
        self._ambiguous: dict[str, str] = {}
        self.outage = Outage("state store")
        self._pending = _Pending()
        self._flushing: _Pending | None = None
        self._slots: dict[str, int] = {}  # task -> latest slot considered, not saved yet
        self._slots_saved = time.monotonic()
        # The retention round: the task names it goes through, and where the next call starts.
        self._prune_names: list[str] = []
        self._prune_from = 0
        self._has_work = asyncio.Event()
        self._full = asyncio.Event()  # FLUSH_ROWS queued (or closing): flush without waiting
        self._flushed = asyncio.Event()
        self._room = asyncio.Event()  # set while fewer than MAX_QUEUED rows are queued
        self._room.set()
        self._claims: list[tuple[Claim, asyncio.Future[str]]] = []
        self._claim_task: asyncio.Task[None] | None = None
        self._background = BackgroundTasks("store_task_failed")
        self._lock: FileLock | None = None
        self._closed = False
        # Claimer: a SQLite store serves one process (file lock): runs without outside effects
        # need no claim (see core.abc.Claimer).
        self.exclusive = not self.dialect.shared_clock
        # Claimer: (our rank, live replicas), from the instances' heartbeats.
        self.partition: tuple[int, int] = (0, 1)
        self._registered = False
        self.writes = 0  # statements that wrote, for benchmarks
        self.claiming = 0  # claims waiting for the database (tests on a fake clock wait for 0)

    @staticmethod
    def _json_in(value: Any) -> Any:
        return None if value is None else orjson.dumps(value, default=str).decode()

    # --- open / close ---------------------------------------------------------------------------

    async def open(self, *, exclusive: bool = False) -> None:
        """Open the data source and migrate. `exclusive`: this is the daemon (`run`); on SQLite
        take the single-process lock, and mark rows left `running` by a previous process."""
        if exclusive and isinstance(self.ds, SqliteDataSource) and self.ds.path != ":memory:":
            self._lock = FileLock(self.ds.path)
            self._lock.acquire()
        try:
            await self._open_ds()
            if isinstance(self.ds, SqliteDataSource):
                # WAL with synchronous=NORMAL: a commit survives a crash of the process (the WAL
                # is in the OS's hands); only a power cut can lose the last moments of history,
                # never corrupt it. FULL's fsync per commit cost a flush's worth of latency.
                await self.ds.execute("PRAGMA synchronous=NORMAL", [])
            await migrate(self.ds)
            pg = as_postgres(self.ds)
            if exclusive and pg is not None:
                await self._warm_pool(pg)
            if exclusive:
                # First what a previous process finished but could not write: those runs end
                # as they ended, not as `interrupted`.
                await self._replay_spools()
                now = int(time.time() * 1000)
                await self.ds.execute(
                    self.q["register_instance"],
                    [self.instance, socket.gethostname(), os.getpid(), now],
                )
                self._registered = True
                await self.refresh_partition()
                # Before the scheduler arms: its first deadlines are already on the
                # database's clock.
                await self.clock.sync()
                if not self.dialect.shared_clock:
                    # We hold the only lock: whatever is still `running` lost its process.
                    await self._interrupt(
                        "interrupt_all_running", "the daemon stopped while it ran"
                    )
        except BaseException:
            await self.ds.close()
            self._release_lock()
            raise

    async def _open_ds(self) -> None:
        for attempt in range(20):
            try:
                await self.ds.open()
                return
            except DatabaseError as exc:
                # Switching a new SQLite file to WAL needs it alone for a moment: a CLI command
                # and the daemon starting together take turns instead of failing.
                if self.dialect.shared_clock or "locked" not in str(exc) or attempt == 19:
                    raise
                await asyncio.sleep(0.05)

    async def _warm_pool(self, ds: PostgresDataSource) -> None:
        """Warm every pooled connection now, and each one the pool opens later."""
        pool = ds.pool
        held = [await pool.acquire() for _ in range(pool.get_min_size())]
        try:
            await asyncio.gather(*(self._warm(conn) for conn in held))
        finally:
            for conn in held:
                await pool.release(conn)
        ds.on_connect = self._warm

    async def _warm(self, conn: Any) -> None:
        """Prepare the hot statements on a new connection, with empty batches (they change
        nothing): a claim must not pay for preparing and type lookups when its slot is due."""
        empty: list[Any] = []
        for name, params in (
            ("claim", ["", "", 0, 0, 0, *([empty] * 8)]),
            ("finish_runs", [empty] * 9),
            ("insert_runs", [empty] * 14),
            ("write_runs", [empty] * 14),
            ("save_slots", [empty] * 2),
            ("own_claims", ["", empty, empty]),
            ("slots_free", [empty, empty]),
            ("renew_leases", ["", 0]),
            ("live_instances", [0]),
        ):
            await conn.fetch(self.q[name], *params)

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def start(self) -> None:
        """Start the background work: write-behind flusher, lease heartbeat, retention."""
        self._background.spawn(self._flusher(), "store-flush")
        self._background.spawn(self._heartbeat_loop(), "store-heartbeat")
        self._background.spawn(self._prune_loop(), "store-prune")

    async def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued (up to `timeout`), stop background work, release the store."""
        if self._closed:
            return
        self._closed = True
        self._full.set()
        try:
            async with asyncio.timeout(timeout):
                while len(self._pending) or self._slots or self._flushing is not None:
                    if not self._background:
                        try:
                            await self.flush(slots=True)
                        except Exception as exc:  # keep trying until the timeout, then spool
                            self.outage.failed(exc)
                            await asyncio.sleep(self.flush_interval)
                    else:
                        self._has_work.set()
                        self._flushed.clear()
                        await self._flushed.wait()
        except TimeoutError:
            pass
        await self._background.cancel()  # a flush cut short puts its rows back in the queue
        if len(self._pending) or self._slots:
            self._spool(timeout)
        if self._registered:
            # Leaving: the other replicas take our share of the claims from their next beat.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self.ds.execute(self.q["unregister_instance"], [self.instance])
        with contextlib.suppress(Exception):
            await self.ds.close()
        self._release_lock()

    def _spool(self, timeout: float) -> None:
        """Keep what could not be written (the store did not answer within `timeout`) in a
        spool file for the next start; only if that fails too is it lost, and said so."""
        pending, slots = self._pending, self._slots
        spooled = Spooled(pending.updates, pending.fallbacks, pending.inserts, slots)
        queued = len(spooled)
        self._pending, self._slots = _Pending(), {}
        if self.spool_dir is not None:
            try:
                path = spool.write(self.spool_dir, self.owner, spooled)
            except OSError as exc:
                log.error("history_not_spooled", queued=queued, error=str(exc))
            else:
                log.warning("history_spooled", queued=queued, file=str(path), timeout_s=timeout)
                return
        log.error("history_not_flushed", queued=queued, timeout_s=timeout)

    async def _replay_spools(self) -> None:
        """Write every spool file left by a process that exited with writes still queued."""
        if self.spool_dir is None:
            return
        with spool.claimed(self.spool_dir) as spools:
            for path, spooled in spools:
                done = 0
                if spooled.updates:
                    for i in range(0, len(spooled.updates), self.dialect.batch_rows):
                        part = spooled.updates[i : i + self.dialect.batch_rows]
                        rows = await self.ds.fetch(
                            self.q["finish_spooled"], self.dialect.batch(part)
                        )
                        done += len(rows)
                        found = {r["run_id"] for r in rows}
                        spooled.inserts.extend(
                            spooled.fallbacks[r[0]]
                            for r in part
                            if r[0] not in found and r[0] in spooled.fallbacks
                        )
                if spooled.inserts:
                    done += len(await self._insert_rows(spooled.inserts))
                if spooled.slots:
                    await self._save_slots(spooled.slots)
                log.info("history_spool_replayed", file=str(path), rows=done)

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
        # Chunks go out in order. A small batch is cut into a few chunks on one connection: the
        # runs of a chunk start while the next chunk's statement is in the database. A big one
        # (10,000 fires) goes out on up to CLAIM_CONCURRENCY connections at once (PostgreSQL),
        # so later chunks do not wait for every earlier round trip. SQLite: one connection.
        chunk = min(self.dialect.batch_rows, max(MIN_CLAIM_CHUNK, -(-len(batch) // 4)))
        parts = deque(batch[i : i + chunk] for i in range(0, len(batch), chunk))
        concurrency = 1
        if self.dialect.shared_clock and len(batch) > 2 * self.dialect.batch_rows:
            concurrency = CLAIM_CONCURRENCY
        workers = min(len(parts), concurrency)
        await asyncio.gather(*(self._claim_parts(parts) for _ in range(workers)))

    async def _claim_parts(self, parts: deque[list[tuple[Claim, asyncio.Future[str]]]]) -> None:
        while parts:
            part = parts.popleft()
            claims = [c for c, _ in part]
            tokens = self._tokens(claims)
            try:
                results = await self.claim_many(claims, tokens)
            except Exception as exc:
                # Unknown whether the rows were written (a reply lost after the commit): the
                # scheduler records these fires missed, and their final rows are written as an
                # update of our own row if it exists, else as an insert (`enqueue`).
                self._ambiguous.update(tokens)
                self.outage.failed(exc)
                for _, fut in part:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            finally:
                self.claiming -= len(part)
            self.outage.recovered()
            for c, fut in part:
                if not fut.done():
                    fut.set_result(results.get(c.run_id, LOST))

    async def unclaimed(self, slots: Sequence[tuple[int, str]]) -> set[str]:
        """Claimer: the slot ids of `slots` ((scheduled_at, slot_id) of first attempts) that
        have no row yet."""
        free: set[str] = set()
        chunk = self.dialect.batch_rows * 5
        self.claiming += 1  # a claim's prelude: tests on a fake clock wait for it too
        try:
            for i in range(0, len(slots), chunk):
                part = self.dialect.batch(slots[i : i + chunk])
                free.update(r["slot_id"] for r in await self.ds.fetch(self.q["slots_free"], part))
        finally:
            self.claiming -= 1
        return free

    @staticmethod
    def _tokens(claims: Sequence[Claim]) -> dict[str, str]:
        """A lease token per claim: one urandom call for the batch, cut into 16 hex digits."""
        pool = os.urandom(8 * len(claims)).hex()
        return {c.run_id: pool[16 * i : 16 * i + 16] for i, c in enumerate(claims)}

    async def claim_many(
        self, claims: Sequence[Claim], tokens: dict[str, str] | None = None
    ) -> dict[str, str]:
        """One statement for many claims, retried once (a pool connection may have died). A
        retry after a lost reply finds the first try's rows taken: those are ours when they
        carry our owner and token, and are reported WON."""
        tokens = tokens or self._tokens(claims)
        try:
            return await self._claim_many(claims, tokens)
        except DatabaseError:
            results = await self._claim_many(claims, tokens)
        unsure = [c for c in claims if results.get(c.run_id) in (LOST, BUSY)]
        if unsure:
            ours = await self.ds.fetch(
                self.q["own_claims"],
                [self.owner, *self.dialect.batch([(c.run_id, tokens[c.run_id]) for c in unsure])],
            )
            for row in ours:
                results[row["run_id"]] = WON
                self._owned[row["run_id"]] = tokens[row["run_id"]]
        return results

    async def _claim_many(self, claims: Sequence[Claim], tokens: dict[str, str]) -> dict[str, str]:
        started = int(time.time() * 1000)
        rows = await self.ds.fetch(
            self.q["claim"],
            [
                self.instance,
                self.owner,
                self.lease_ms,
                started,
                EARLY_TOLERANCE_MS,
                *self.dialect.batch([_claim_row(c, tokens[c.run_id]) for c in claims]),
            ],
        )
        # The database clock as the statement saw it (ms; now() is fixed per transaction, so
        # it is the one the WHERE compared with); only a shared clock can make a claim EARLY.
        db_now: int | None = None
        if self.dialect.shared_clock:
            db_now = next(int(r["db_now"]) for r in rows if r["db_now"] is not None)
            rows = [r for r in rows if r["run_id"] is not None]
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
                slot = self._slots.get(c.task)
                if slot is None or c.scheduled_at > slot:
                    self._slots[c.task] = c.scheduled_at
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
            inserted = await self._insert_rows(rows_in)
            for c in busy:
                results[c.run_id] = BUSY if c.run_id in inserted else LOST
        return results

    # --- recording (write-behind) ---------------------------------------------------------------

    async def record(self, outcome: Outcome) -> None:
        """RunRecorder: log the outcome and queue its row; never blocks on the database."""
        self.log_outcome(outcome)
        self.enqueue(outcome)

    def enqueue(self, outcome: Outcome) -> None:
        policy = self.policy(outcome.task)
        trace = trace_summary(outcome) if policy.request_history else None
        error = mask_value(outcome.error) if outcome.error else None
        token = self._owned.pop(outcome.run_id, None)
        unsure = False
        if token is None and self._ambiguous:
            token = self._ambiguous.pop(outcome.run_id, None)
            unsure = token is not None
        if token is not None:
            if unsure:
                # Its claim may or may not have been written: update our row if it exists,
                # else insert (`flush` turns the update that finds no row into this insert).
                self._pending.fallbacks[outcome.run_id] = self._row(outcome, error, trace)
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
            self._pending.inserts.append(self._row(outcome, error, trace))
        if outcome.trigger in ("schedule", "catch_up"):
            slot = self._slots.get(outcome.task)
            if slot is None or outcome.scheduled_at > slot:
                self._slots[outcome.task] = outcome.scheduled_at
        self._has_work.set()
        queued = len(self._pending)
        if queued >= FLUSH_ROWS:
            self._full.set()
        if queued >= MAX_QUEUED and self._room.is_set():
            self._room.clear()
            log.warning("state_store_behind", queued=queued, limit=MAX_QUEUED)

    def _row(self, outcome: Outcome, error: Any, trace: Any) -> tuple[Any, ...]:
        """An outcome as a whole run row (RUN_COLUMNS order)."""
        return (
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

    @property
    def behind(self) -> bool:
        """Claimer: too many writes queued; new fires wait (`wait_ready`)."""
        return not self._room.is_set()

    async def wait_ready(self) -> None:
        """Claimer: wait until the queue is back under its limit."""
        await self._room.wait()

    def _check_room(self) -> None:
        if not self._room.is_set() and len(self._pending) < MAX_QUEUED // 2:
            self._room.set()
            log.info("state_store_caught_up", queued=len(self._pending))

    @property
    def queued(self) -> int:
        flushing = len(self._flushing) if self._flushing is not None else 0
        return len(self._pending) + flushing + len(self._slots)

    async def flush(self, *, slots: bool = False) -> None:
        """Write everything queued now, and the tasks' latest slots when `slots` or when they
        are due (SLOTS_INTERVAL); on failure it stays queued (and raises)."""
        if self._flushing is not None:
            return
        batch, self._pending = self._pending, _Pending()
        self._flushing = batch
        try:
            if batch.updates:
                fenced = await self._update_finals(batch.updates, batch.fallbacks)
                batch.updates = []
                batch.inserts.extend(batch.fallbacks[run_id] for run_id in fenced)
                batch.fallbacks = {}
            if batch.inserts:
                await self._write_rows(batch.inserts)
                batch.inserts = []
            due = slots or time.monotonic() - self._slots_saved >= SLOTS_INTERVAL
            self._check_room()
            if self._slots and due:
                saving, self._slots = self._slots, {}
                try:
                    await self._save_slots(saving)
                except BaseException:
                    for task, slot in saving.items():
                        if slot > self._slots.get(task, slot - 1):
                            self._slots[task] = slot
                    raise
                self._slots_saved = time.monotonic()
        except BaseException:
            # Put back what did not reach the store, ahead of newer writes.
            self._pending.updates[:0] = batch.updates
            self._pending.inserts[:0] = batch.inserts
            self._pending.fallbacks.update(batch.fallbacks)
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
                await self.flush(slots=self._closed)
                delay = self.flush_interval
                self.outage.recovered()
            except Exception as exc:
                self.outage.failed(exc)
                log.debug(
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

    async def _update_finals(
        self, rows: list[tuple[Any, ...]], fallbacks: Mapping[str, tuple[Any, ...]]
    ) -> set[str]:
        """Write final states over our running rows; returns the run_ids of `fallbacks` whose
        row was not there (their claim never reached the store)."""
        missing: set[str] = set()
        chunk = self.dialect.batch_rows
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            done = await self.ds.fetch(self.q["finish_runs"], self.dialect.batch(part))
            self.writes += 1
            fenced = {r[0] for r in part} - {d["run_id"] for d in done}
            for run_id in fenced:
                if run_id in fallbacks:
                    missing.add(run_id)
                    continue
                log.warning(
                    "final_state_fenced",
                    run_id=run_id,
                    reason="the lease expired or the run was marked interrupted",
                )
        return missing

    async def _insert_rows(self, rows: list[tuple[Any, ...]]) -> set[str]:
        """Insert run rows (RUN_COLUMNS order); returns the run_ids actually inserted."""
        inserted: set[str] = set()
        chunk = self.dialect.batch_rows
        for i in range(0, len(rows), chunk):
            got = await self.ds.fetch(
                self.q["insert_runs"], self.dialect.batch(rows[i : i + chunk])
            )
            inserted.update(r["run_id"] for r in got)
            self.writes += 1
        return inserted

    async def _write_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert run rows (RUN_COLUMNS order) whose fate nobody waits for: a row that is there
        already (its slot taken by another replica's claim) is left as it is."""
        chunk = self.dialect.batch_rows
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            if self.dialect.writes_row_by_row:
                await self.ds.executemany(self.q["write_runs"], part)
            else:
                await self.ds.execute(self.q["write_runs"], self.dialect.batch(part))
            self.writes += 1

    async def _save_slots(self, slots: Mapping[str, int]) -> None:
        # One statement for every task of the batch: a row per task through executemany cost
        # as much as the batch's claims (2,000 tasks: ~40 ms on PostgreSQL).
        await self.ds.execute(self.q["save_slots"], self.dialect.batch(list(slots.items())))
        self.writes += 1

    # --- leases ---------------------------------------------------------------------------------

    async def heartbeat(self) -> int:
        """Renew the leases of our running rows (database clock); returns how many."""
        count = await self.ds.execute(self.q["renew_leases"], [self.owner, self.lease_ms])
        await self.ds.execute(self.q["instance_heartbeat"], [self.instance])
        return count

    async def refresh_partition(self) -> tuple[int, int]:
        """Who shares the claims: the replicas with a live heartbeat, in name order."""
        if not self.dialect.shared_clock:
            return self.partition
        rows = await self.ds.fetch(self.q["live_instances"], [self.lease_ms])
        names = [r["instance"] for r in rows]
        if self.instance not in names:
            names.append(self.instance)
            names.sort()
        partition = (names.index(self.instance), len(names))
        if partition != self.partition:
            log.info("replicas", rank=partition[0], live=partition[1])
        self.partition = partition
        return partition

    async def reap(self) -> int:
        """Mark runs whose lease expired (their process died or lost the store) `interrupted`."""
        return await self._interrupt(
            "interrupt_expired",
            "lease expired: its process stopped renewing it (crashed, killed or cut off)",
        )

    async def _interrupt(self, statement: str, reason: str) -> int:
        error = self._json_in({"type": "Interrupted", "message": reason, "step": None})
        rows = await self.ds.fetch(self.q[statement], [reason, error])
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
        # Who shares the claims is looked at more often than leases are renewed: a replica that
        # leaves (it unregisters) or arrives changes the others' shares within a few seconds.
        step = min(interval, PARTITION_REFRESH) if self.dialect.shared_clock else interval
        beat_due = time.monotonic() + interval
        while True:
            await asyncio.sleep(step)
            if time.monotonic() < beat_due:
                try:
                    await self.refresh_partition()
                except Exception as exc:
                    self.outage.failed(exc)
                continue
            beat_due = time.monotonic() + interval
            try:
                await self.heartbeat()
                await self.reap()
                await self.refresh_partition()
                self.outage.recovered()
            except Exception as exc:
                self.outage.failed(exc)
                log.debug("lease_heartbeat_failed", error=mask_value(str(exc)))
            try:
                # Host clocks drift and get stepped: keep following the database's.
                await self.clock.sync()
            except Exception as exc:
                self.outage.failed(exc)
                log.debug("clock_offset_failed", error=mask_value(str(exc)))

    # --- task state -----------------------------------------------------------------------------

    async def set_paused(self, task: str, paused: bool) -> None:
        now = int(time.time() * 1000)
        await self.ds.execute(self.q["set_paused"], [task, paused, now if paused else None])

    async def paused_tasks(self) -> set[str]:
        rows = await self.ds.fetch(self.q["paused_tasks"], [])
        return {r["task"] for r in rows}

    async def last_slots(self) -> dict[str, int]:
        """The latest slot each task considered (claimed, ran, skipped or missed), ms."""
        rows = await self.ds.fetch(self.q["last_slots"], [])
        return {r["task"]: int(r["last_slot"]) for r in rows}

    # --- retention ------------------------------------------------------------------------------

    async def prune(self, now_ms: int | None = None, *, tasks: int | None = None) -> int:
        """Delete rows past their task's age or count limit, a small batch per statement.

        `tasks`: prune only that many tasks, going round the list across calls (the daemon's
        retention loop: 10,000 tasks are not 20,000 statements at once); None prunes all."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if tasks is None or self._prune_from >= len(self._prune_names):
            # The task list is read once per round, not per call: with 100,000 tasks, reading
            # and sorting every name each PRUNE_INTERVAL cost more than pruning 200 of them.
            rows = await self.ds.fetch(self.q["task_names"], [])
            self._prune_names = sorted({r["task"] for r in rows} | set(self.policies))
            self._prune_from = 0
        names = self._prune_names
        if tasks is not None:
            names = names[self._prune_from : self._prune_from + tasks]
            self._prune_from += len(names)
        deleted = 0
        for name in names:
            policy = self.policy(name)
            cutoff = now_ms - int(policy.retention * 1000)
            deleted += await self._delete_batches("prune_by_age", [name, cutoff, PRUNE_BATCH])
            deleted += await self._delete_batches(
                "prune_by_count", [name, policy.max_runs, PRUNE_BATCH]
            )
        return deleted

    async def _delete_batches(self, statement: str, params: list[Any]) -> int:
        total = 0
        while True:
            count = await self.ds.execute(self.q[statement], params)
            total += count
            if count < PRUNE_BATCH:
                return total
            await asyncio.sleep(0)  # the scheduler and the flusher go first

    async def _prune_loop(self) -> None:
        await asyncio.sleep(min(5.0, PRUNE_INTERVAL))
        while True:
            try:
                deleted = await self.prune(tasks=PRUNE_TASKS)
                if deleted:
                    log.info("history_pruned", deleted=deleted)
            except Exception as exc:
                log.warning("history_prune_failed", error=mask_value(str(exc)))
            await asyncio.sleep(PRUNE_INTERVAL)


def open_state_datasource(url: str, *, base_dir: Path, name: str = "state") -> DataSource:
    """The store's own connection(s) to the state data source: heartbeats must not wait behind
    task queries for a pooled connection, and reloads must not close it under the store.

    Sized for what it carries at once: CLAIM_CONCURRENCY claim statements, the write-behind
    flush, the lease heartbeat (with the reaper and the clock) and one retention statement —
    so neither retention nor a slow flush ever makes a claim wait for a connection."""
    # All opened at start (min = max): growing the pool when a claim needs a connection costs
    # a connection setup — several round trips, a second on a slow link — at the worst moment.
    size = CLAIM_CONCURRENCY + 3
    return create_datasource(
        name, url, base_dir=base_dir, min_size=size, max_size=size, session_settings=STATE_PLANNER
    )


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
