"""The scheduler: one loop over a heap of next fire times, run policies, and run outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import heapq
import random
import zlib
from collections import deque
from collections.abc import Awaitable, Coroutine, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from daemon.core.abc import Claimer, Clock, RunRecorder
from daemon.core.collector import gc_paused
from daemon.core.errors import TaskLookupError
from daemon.core.runs import (
    BUSY,
    CANCELLED,
    EARLY,
    MANUAL,
    MISSED,
    SKIPPED,
    SUCCEEDED,
    WON,
    Claim,
    LogRecorder,
    Outcome,
    RunResult,
    new_run_id,
    partial_result,
    slot_id_for,
)
from daemon.engine.runner import run_task
from daemon.scheduling.clock import SystemClock
from daemon.scheduling.limiter import ConcurrencyLimit

if TYPE_CHECKING:
    from daemon.core.abc import Schedule
    from daemon.engine.compiler import CompiledTask, RetryPolicy
    from daemon.resources.bundle import Resources

log = structlog.get_logger("cronstack.scheduler")

# Delay before an EARLY fire is claimed again: doubles per refusal up to the cap, so a clock
# that stays wrong costs a few statements per slot, not a tight loop.
EARLY_RETRY = 0.25
EARLY_RETRY_MAX = 5.0

# Missed slots recorded one by one per task and wake-up; beyond that, one outcome says how many.
# A laptop resuming after a week must not write 600,000 rows for an every-second task.
MAX_MISSED_RECORDS = 100
# Fires handled before the loop yields so that their runs start (lower lag in big batches).
BATCH_CHUNK = 256
# A batch this big starts with the cyclic GC paused (gc.disable, re-enabled once it has
# started): its runs in flight survive gen-0 collections and are walked again by every gen-1/2
# pass, and at 10,000 fires those passes cost a third of the batch's start (bench/scheduler.py).
# Reference counting still frees everything short-lived meanwhile.
GC_PAUSE_BATCH = 100
# With replicas, how long after its slot — or after this replica's own share of the batch was
# claimed, when that took longer — a fire of another replica's share is claimed here.
PARTITION_GRACE = 1.0


class RunFn(Protocol):
    """The signature of `daemon.engine.runner.run_task`; tests inject a fake."""

    def __call__(
        self,
        task: CompiledTask,
        resources: Resources,
        *,
        trigger: str,
        attempt: int,
        scheduled_at: int | None,
        run_id: str | None,
        slot_id: str | None,
        with_on_failure: bool,
    ) -> Awaitable[RunResult]: ...


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: int


@dataclass(slots=True, eq=False)
class _TaskState:
    """One task name: its current definition, where new runs get resources, its runs in flight."""

    task: CompiledTask
    resources: Resources
    gen: int = 0
    running: set[_Run] = field(default_factory=set)
    queued: _Run | None = None
    backlog: deque[_Run] = field(default_factory=deque)  # catch_up "all": one after another
    # `slot_id_for(name, ms)` is this plus the ms: one concatenation per fire, not an f-string.
    slot_prefix: str = field(init=False)
    part: int = field(init=False)  # which replica claims its fires first (hash mod replicas)

    def __post_init__(self) -> None:
        self.slot_prefix = f"{self.task.name}@"
        self.part = zlib.crc32(self.task.name.encode())


class _Run:
    """One fire, from the moment it is due through all its attempts.

    One slotted object per fire, built with plain assignments: 10,000 fires in one second
    build 10,000 of these, so there is no separate fire object, no dataclass defaults machinery.
    """

    __slots__ = (
        "attempt",
        "began",
        "cancel_reason",
        "claimed_ahead",
        "claiming",
        "definition",
        "handle",
        "held",
        "origin",
        "resources",
        "run_id",
        "scheduled_ms",
        "slot_id",
        "state",
        "trigger",
    )

    def __init__(
        self, state: _TaskState, trigger: str, scheduled_ms: int, slot_id: str, run_id: str
    ) -> None:
        self.state = state
        self.origin = trigger  # what fired it; `trigger` becomes "retry" for later attempts
        self.scheduled_ms = scheduled_ms
        self.slot_id = slot_id
        self.run_id = run_id  # of the current attempt
        self.trigger = trigger
        self.attempt = 1
        # Set again when the run starts: a queued fire runs the definition current then, and
        # runs finish on the definition they started with.
        self.definition: CompiledTask = state.task
        self.resources: Resources = state.resources
        self.cancel_reason: str | None = None
        self.handle: asyncio.Task[None] | None = None  # set only once it has to wait
        self.claiming: asyncio.Future[str] | None = None  # the store claim of this attempt
        # The claim its batch made for it (one statement for every fire of the batch).
        self.claimed_ahead: asyncio.Future[str] | None = None
        # Its batch's list of final results, recorded once every run of the batch has started.
        self.held: list[RunResult] | None = None
        self.began = False  # its coroutine has started (before: it waits for its batch)


def _freeze_gc() -> None:
    """Move everything alive now out of the cyclic GC's generations (unfreezing first, so that
    what an earlier freeze kept and is garbage now is collected, not kept for good)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Full jitter: the wait after failed attempt n is uniform(0, min(max, initial * 2**(n-1)))."""
    cap = min(policy.max_delay, policy.initial_delay * (2 ** (attempt - 1)))
    return rng.uniform(0.0, cap)


# A heap bucket: tasks due at the same instant, in the order they were armed.
_Due = tuple[_TaskState, int, datetime]  # state, its generation when armed, the slot
_UNSEEN: Any = object()  # not in the batch's memo yet (None there means "no next slot")


class _Rest:
    """The rest of a coroutine that `Scheduler._begin` started by hand, as an awaitable: what it
    waits on goes up to the task driving this, answers and exceptions (a cancel) go back down."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, Any, None], pending: Any) -> None:
        self.coro, self.pending = coro, pending

    def __await__(self) -> Generator[Any, Any, None]:
        coro, waiting = self.coro, self.pending
        while True:
            try:
                answer = yield waiting
            except BaseException as exc:
                try:
                    waiting = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = coro.send(answer)
                except StopIteration:
                    return


async def _first_of(*waits: Awaitable[Any]) -> None:
    """Return when the first of `waits` is done; cancel the others."""
    pending = {asyncio.ensure_future(w) for w in waits}
    try:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in pending:
            fut.cancel()


async def _carry_on(coro: Coroutine[Any, Any, None], pending: Any) -> None:
    await _Rest(coro, pending)


class Scheduler:
    """Fires compiled tasks on their cron schedules from a single loop (see `serve`)."""

    def __init__(
        self,
        tasks: Sequence[CompiledTask],
        resources: Resources,
        *,
        clock: Clock | None = None,
        run: RunFn = run_task,
        recorder: RunRecorder | None = None,
        max_concurrent_runs: int | None = None,
        rng: random.Random | None = None,
        log_fires: bool = False,
        claims: Claimer | None = None,
        resume_from: Mapping[str, int] | None = None,
        freeze_gc: bool = False,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        # With a state store: fires are claimed there before they run (replicas, history).
        self.claims = claims
        # The last slot each task considered before this process started (ms): slots between
        # it and now were missed while the daemon was down and go through `catch_up`.
        self.resume_from = dict(resume_from or {})
        self.paused: set[str] = set()  # tasks whose scheduled slots are recorded missed
        self._boot_ts = 0.0
        self._run_fn = run
        self.recorder: RunRecorder = recorder or LogRecorder()
        self._rng = rng or random.Random()  # jitter and backoff, not security
        self._limit = ConcurrencyLimit(max_concurrent_runs) if max_concurrent_runs else None
        self._states: dict[str, _TaskState] = {t.name: _TaskState(t, resources) for t in tasks}
        # Distinct fire instants (epoch seconds) in a heap, each with its bucket of due tasks:
        # 10,000 tasks sharing a slot cost one heap operation, not 10,000.
        self._heap: list[float] = []
        self._buckets: dict[float, list[_Due]] = {}
        self._wake = asyncio.Event()
        self._manual: deque[_Run] = deque()
        # Every run started, until it ends (also of tasks a reload removed); its `handle` is the
        # asyncio task. Recording tasks of their own (`_spawn_record`) are kept apart.
        self._inflight: set[_Run] = set()
        self._recording: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.armed = asyncio.Event()
        # Fires of the batch being decided, started together once it is (claims in one go).
        self._starting: list[_Run] | None = None
        self._batches: set[asyncio.Task[None]] = set()  # batches waiting for their claims
        self._holding = 0  # batches whose final results are held until they have all started
        self.fired = 0
        # Fires the store answered EARLY, pushed back onto the heap: (state, heap time) -> the
        # slot (ms); their next slot is on the heap already. And refusals so far per slot.
        self._early: dict[tuple[_TaskState, datetime], int] = {}
        self._early_tries: dict[tuple[_TaskState, int], int] = {}
        self.log_fires = log_fires
        # The daemon's own process: the loaded tasks live until the next reload, so they leave
        # the cyclic GC's care (`gc.freeze`). Otherwise every full collection walks all of them:
        # with 10,000 tasks firing each second, ~50 ms pauses in the middle of batches.
        self.freeze_gc = freeze_gc

    # --- introspection --------------------------------------------------------------------------

    @property
    def task_count(self) -> int:
        return len(self._states)

    @property
    def active_count(self) -> int:
        return sum(1 for s in self._states.values() if self._schedulable(s.task))

    @property
    def running_count(self) -> int:
        return len(self._inflight)

    def tasks(self) -> list[CompiledTask]:
        return [s.task for s in self._states.values()]

    def next_fire(self, name: str) -> datetime | None:
        """The next scheduled fire of a task (for status pages), or None."""
        state = self._states.get(name)
        if state is None:
            return None
        for ts in sorted(self._buckets):
            for st, gen, slot in self._buckets[ts]:
                if st is state and gen == state.gen:
                    return slot
        return None

    # --- heap -----------------------------------------------------------------------------------

    @staticmethod
    def _schedulable(task: CompiledTask) -> bool:
        return task.status == "active" and task.schedule is not None

    def _push(self, state: _TaskState, slot: datetime, ts: float | None = None) -> None:
        if ts is None:
            ts = slot.timestamp()
        bucket = self._buckets.get(ts)
        if bucket is None:
            bucket = self._buckets[ts] = []
            heapq.heappush(self._heap, ts)
        bucket.append((state, state.gen, slot))

    def _arm(self, state: _TaskState, after: datetime, memo: dict[Any, Any]) -> None:
        if self._schedulable(state.task):
            nxt = self._next(state.task.schedule, after, memo)  # type: ignore[arg-type]
            if nxt is not None:
                self._push(state, nxt)

    @staticmethod
    def _next(schedule: Schedule, after: datetime, memo: dict[Any, Any]) -> datetime | None:
        found = Scheduler._next_ts(schedule, after, after.timestamp(), memo)
        return found[1] if found is not None else None

    @staticmethod
    def _next_ts(
        schedule: Schedule, after: datetime, after_ts: float, memo: dict[Any, Any]
    ) -> tuple[float, datetime] | None:
        """The slot after `after` and its epoch seconds. Tasks sharing an expression and timezone
        (10,000 `* * * * * *` tasks, many `@hourly`) share the computation within one batch."""
        key = (schedule.expression, schedule.tz.key, after_ts)
        try:
            return memo[key]
        except KeyError:
            pass
        try:
            nxt = schedule.next_after(after)
        except LookupError:
            log.warning("schedule_exhausted", cron=schedule.expression)
            found = None
        else:
            found = (nxt.timestamp(), nxt)
        memo[key] = found
        return found

    # --- the loop -------------------------------------------------------------------------------

    async def serve(self) -> None:
        """The scheduling loop: sleep until the earliest fire or a wake event, fire what is due.

        Returns once `stop_firing` is called; runs in flight are the caller's to drain.
        """
        memo: dict[Any, Any] = {}
        self._loop = asyncio.get_running_loop()
        now = self.clock.now()
        self._boot_ts = now.timestamp()
        for state in self._states.values():
            last = self.resume_from.get(state.task.name)
            after = now
            if last is not None and last / 1000 < self._boot_ts:
                after = datetime.fromtimestamp(last / 1000, now.tzinfo)
            self._arm(state, after, memo)
        if self.freeze_gc:
            _freeze_gc()
        self.armed.set()
        log.debug("scheduler_armed", tasks=len(self._states), heap=len(self._heap))
        heap, buckets = self._heap, self._buckets
        while not self._stopping:
            self._wake.clear()
            while self._manual:
                run = self._manual.popleft()
                if self._states.get(run.state.task.name) is run.state:
                    self._start(run.state, run)
            claims = self.claims
            if claims is not None and claims.behind:
                # The store is behind on its writes: hold new fires rather than pile up their
                # outcomes; those that waited past their misfire grace are recorded missed.
                await _first_of(claims.wait_ready(), self._wake.wait())
                continue
            # The timer may fire early (uvloop: ~1 ms), so what is due is decided by the clock.
            now = self.clock.now()
            now_ts = now.timestamp()
            if heap and heap[0] <= now_ts:
                batch: list[tuple[float, list[_Due]]] = []
                while heap and heap[0] <= now_ts:
                    ts = heapq.heappop(heap)
                    batch.append((ts, buckets.pop(ts)))
                big = sum(len(bucket) for _, bucket in batch) >= GC_PAUSE_BATCH
                with gc_paused() if big else contextlib.nullcontext():
                    await self._fire_batch(batch, now, now_ts)
                continue
            deadline = buckets[heap[0]][0][2] if heap else None
            await self.clock.sleep_until(deadline, self._wake)

    async def _fire_batch(
        self, batch: list[tuple[float, list[_Due]]], now: datetime, now_ts: float
    ) -> None:
        """Fire every entry due now and start (or claim, then start) their runs."""
        memo: dict[Any, Any] = {}
        pending: list[Outcome] = []
        starting: list[_Run] = []
        self._starting = starting
        try:
            for ts, bucket in batch:
                ms = int(ts * 1000)
                for entry in bucket:
                    self._due(ts, ms, entry, now, now_ts, memo, pending)
        finally:
            self._starting = None
        if pending:
            self._spawn(self._record(*pending))
        if starting:
            claimed = [r for r in starting if self._needs_claim(r)]
            if claimed:
                batch_task = self._spawn(self._claim_then_begin(claimed))
                self._batches.add(batch_task)
                batch_task.add_done_callback(self._batches.discard)
            if len(claimed) < len(starting):
                if claimed:
                    starting = [r for r in starting if not self._needs_claim(r)]
                await self._begin_batch(starting)

    def _due(
        self,
        ts: float,
        ms: int,
        entry: _Due,
        now: datetime,
        now_ts: float,
        memo: dict[Any, Any],
        pending: list[Outcome],
    ) -> None:
        state, gen, slot = entry
        if gen != state.gen:
            return  # superseded by a reload (a removed task's generation moves on too)
        if self._early:
            early = self._early.pop((state, slot), None)
            if early is not None:
                self._fire(state, early, "schedule", pending)
                return
        task = state.task
        schedule = task.schedule
        assert schedule is not None
        grace = task.misfire_grace
        # The next slot always comes from this slot, never from now: no drift, no invented or
        # repeated slot after a clock jump. (`_next_ts` and `_push` inlined: once per fire.)
        found = memo.get((schedule.expression, schedule.tz.key, ts), _UNSEEN)
        if found is _UNSEEN:
            found = self._next_ts(schedule, slot, ts, memo)
        if now_ts - ts <= grace and (found is None or found[0] > now_ts):
            if found is not None:
                nts = found[0]
                bucket = self._buckets.get(nts)
                if bucket is None:
                    bucket = self._buckets[nts] = []
                    heapq.heappush(self._heap, nts)
                bucket.append((state, gen, found[1]))
            self._fire(state, ms, "schedule", pending)
            return
        nxt = found[1] if found is not None else None
        # Late: a blocked loop, a clock jump, a suspend. Slots later than the grace, and slots a
        # later slot that is also due supersedes, do not run; they are recorded `missed`.
        missed: list[tuple[datetime, str]] = []
        latest_missed = slot
        unrecorded = False
        cur: datetime | None = slot
        while cur is not None:
            late = now_ts - cur.timestamp()
            superseded = nxt is not None and nxt.timestamp() <= now_ts
            if late <= grace and not superseded:
                break
            latest_missed = cur
            if len(missed) < MAX_MISSED_RECORDS:
                if cur.timestamp() < self._boot_ts:
                    why = "the daemon was not running at this time"
                elif late > grace:
                    why = f"fire was {late:.3f}s late (misfire_grace {grace:g}s)"
                else:
                    why = "superseded by a later slot that is also due (the scheduler was late)"
                missed.append((cur, why))
            else:
                unrecorded = True
                if late > grace:
                    # Leap to the first slot inside the grace instead of walking a week of them.
                    leap = self._next(schedule, now - timedelta(seconds=grace), memo)
                    if leap is not None and nxt is not None and leap > nxt:
                        nxt = leap
            cur = nxt
            nxt = self._next(schedule, cur, memo) if cur is not None else None
        if cur is not None and cur.timestamp() <= now_ts:
            if nxt is not None:
                self._push(state, nxt)
            self._fire(state, _ms(cur), "schedule", pending)
            ran = True
        else:
            if cur is not None:
                self._push(state, cur)
            ran = False
        catch_up = task.catch_up
        for i, (m, why) in enumerate(missed):
            if catch_up == "all":
                self._fire(state, _ms(m), "catch_up", pending)
                if unrecorded and i == len(missed) - 1:
                    # Never silently dropped: the slots beyond the cap get one missed row.
                    pending.append(
                        self._never_ran(
                            state,
                            _ms(latest_missed) if latest_missed != m else _ms(m) + 1,
                            "schedule",
                            MISSED,
                            f"catch_up all ran the first {MAX_MISSED_RECORDS} missed slots; "
                            f"later slots up to {now.isoformat()} were missed (not recorded)",
                        )
                    )
                continue
            if catch_up == "latest" and not ran and m == latest_missed:
                self._fire(state, _ms(m), "catch_up", pending)
                continue
            if unrecorded and i == len(missed) - 1:
                why += f"; later slots up to {now.isoformat()} were missed too (not recorded)"
            pending.append(self._never_ran(state, _ms(m), "schedule", MISSED, why))
        if catch_up == "latest" and not ran and unrecorded:
            self._fire(state, _ms(latest_missed), "catch_up", pending)

    def _never_ran(
        self, state: _TaskState, scheduled_ms: int, trigger: str, status: str, reason: str
    ) -> Outcome:
        name = state.task.name
        return Outcome(
            task=name,
            run_id=new_run_id(),
            slot_id=slot_id_for(name, scheduled_ms),
            status=status,
            trigger=trigger,
            attempt=1,
            scheduled_at=scheduled_ms,
            started_at=None,
            finished_at=None,
            reason=reason,
        )

    def _fire(
        self, state: _TaskState, scheduled_ms: int, trigger: str, pending: list[Outcome]
    ) -> None:
        self.fired += 1
        name = state.task.name
        if self.log_fires:  # a structlog call per fire costs more than the fire itself
            log.debug("fire", task=name, scheduled_at=scheduled_ms, trigger=trigger)
        if self.paused and name in self.paused:
            pending.append(self._never_ran(state, scheduled_ms, trigger, MISSED, "paused"))
            return
        fire = _Run(
            state,
            trigger,
            scheduled_ms,
            state.slot_prefix + str(scheduled_ms),
            new_run_id(),
        )
        if not state.running and not state.backlog:
            self._start(state, fire)  # the common case: nothing of this task in flight
            return
        if trigger == "catch_up" and (state.running or state.backlog):
            # Catch-up slots run one after another, oldest first, whatever the overlap policy.
            state.backlog.append(fire)
            return
        if state.running:
            policy = state.task.overlap
            if policy == "skip":
                pending.append(
                    self._skipped(fire, "overlap skip: the previous run is still running")
                )
                return
            if policy == "queue":
                if state.queued is None:
                    state.queued = fire
                    log.info("run_queued", task=name, scheduled_at=scheduled_ms)
                else:
                    pending.append(self._skipped(fire, "overlap queue: a run is already waiting"))
                return
            if policy == "replace":
                for run in state.running:
                    if run.cancel_reason is not None:
                        continue
                    if run.handle is not None:
                        run.cancel_reason = "replaced by a newer fire (overlap replace)"
                        run.handle.cancel()
                    elif not run.began:  # still in its batch: it will end without running
                        run.cancel_reason = "replaced by a newer fire (overlap replace)"
        self._start(state, fire)

    def _skipped(self, fire: _Run, reason: str) -> Outcome:
        return Outcome(
            task=fire.state.task.name,
            run_id=fire.run_id,
            slot_id=fire.slot_id,
            status=SKIPPED,
            trigger=fire.origin,
            attempt=1,
            scheduled_at=fire.scheduled_ms,
            started_at=None,
            finished_at=None,
            reason=reason,
        )

    def _missed(self, fire: _Run, reason: str) -> Outcome:
        outcome = self._skipped(fire, reason)
        outcome.status = MISSED
        return outcome

    def _start(self, state: _TaskState, run: _Run) -> None:
        waits = None
        if state.running:
            waits = [r.handle for r in state.running if r.cancel_reason is not None and r.handle]
        run.definition = state.task
        run.resources = state.resources
        state.running.add(run)
        self._inflight.add(run)
        if self._idle.is_set():
            self._idle.clear()
        starting = self._starting
        if starting is not None and not waits:
            starting.append(run)  # started with the rest of its batch
            return
        self._begin(run, waits)

    def _begin(self, run: _Run, waits: list[asyncio.Task[None]] | None) -> None:
        """Start a fire's coroutine at once, in a context of its own; it becomes an asyncio task
        only if it has to wait. Most runs of a batch (claimed already, steps without I/O) finish
        within this call: no task, no extra turn of the loop — 10,000 fires a second each
        paid for both before."""
        run.began = True
        coro = self._execute(run, waits)
        loop = self._loop or asyncio.get_running_loop()
        if not run.definition.inline:
            # It will wait, maybe under a timeout or a task group that binds to the current
            # task: it needs a task of its own from the start.
            run.handle = loop.create_task(coro)
            return
        context = contextvars.copy_context()
        try:
            pending = context.run(coro.send, None)
        except StopIteration:
            return
        except asyncio.CancelledError:
            return  # cancelled before it began: `_execute` recorded it
        # loop.create_task, unnamed: asyncio.create_task and a name per task are measurable
        # when 10,000 runs start in the same second.
        run.handle = loop.create_task(_carry_on(coro, pending), context=context)

    async def _begin_batch(self, runs: list[_Run]) -> None:
        """Start a batch (no state store: nothing to claim); record its final results once every
        run has started, so recording never delays a later fire of the same batch."""
        held: list[RunResult] = []
        self._holding += 1
        try:
            for i, run in enumerate(runs, 1):
                run.held = held
                self._begin(run, None)
                if i % BATCH_CHUNK == 0:
                    # Let whatever else is ready (a flush, a request) run between chunks.
                    await asyncio.sleep(0)
        finally:
            self._release(runs, held)

    async def _claim_then_begin(self, runs: list[_Run]) -> None:
        """Claim a batch's fires in the state store and start each run as soon as its claim is
        answered. With replicas, each claims its own share first (task name hash modulo the
        live replicas) and the rest only PARTITION_GRACE after the slot, when its owner has
        had its chance: the work divides evenly, and a replica that died mid-burst loses
        nothing — its share is claimed (late) by the others.

        In a burst (100,000 fires at one minute) claiming one's own share takes seconds, and
        the owners of the rest are as far behind: the grace counts from when our own share
        was claimed. Counted from the slot, each replica found most of the other's share
        still free and claimed it as well — every slot raced for twice, the burst no faster
        with two replicas than with one."""
        claims = self.claims
        assert claims is not None
        rank, count = claims.partition
        if count < 2:
            await self._claim_and_begin(runs)
            return
        own: list[_Run] = []
        others: list[_Run] = []
        for run in runs:
            mine = run.origin == MANUAL or run.state.part % count == rank
            (own if mine else others).append(run)
        for run in others:
            # Not ours (yet): it must not count as running for this task's next fires.
            run.state.running.discard(run)
        try:
            await self._claim_and_begin(own)
            if others:
                now = self.clock.now().timestamp()
                due = max(max(r.scheduled_ms for r in others) / 1000, now) + PARTITION_GRACE
                await self.clock.sleep(due - now)
        except asyncio.CancelledError:
            # Shutdown before we claimed them: each ends as cancelled (a row only if its owner
            # has not written one: the insert is refused by the slot's key otherwise).
            for run in others:
                run.cancel_reason = run.cancel_reason or "shutdown"
                self._begin(run, None)
            raise
        if others:
            # Only the slots their owner has not taken: a living owner took them all, and a
            # look costs the store less than as many refused inserts.
            try:
                free = await claims.unclaimed([(r.scheduled_ms, r.slot_id) for r in others])
            except Exception as exc:
                log.debug("unclaimed_failed", error=str(exc))
                free = {r.slot_id for r in others}  # the claims will find out
            orphans = [r for r in others if r.slot_id in free]
            for run in others:
                state = run.state
                if run.slot_id not in free:
                    self._finish(run)  # its owner ran (or is running) it
                elif self._states.get(state.task.name) is state:
                    state.running.add(run)
            await self._claim_and_begin(orphans)

    async def _claim_and_begin(self, runs: list[_Run]) -> None:
        claims = self.claims
        assert claims is not None
        for run in runs:
            run.claimed_ahead = asyncio.ensure_future(claims.claim(self._claim_of(run)))
        held: list[RunResult] = []
        self._holding += 1
        begun = 0
        try:
            for run in runs:
                fut = run.claimed_ahead
                assert fut is not None
                if not fut.done():
                    await asyncio.wait((fut,))
                run.held = held
                begun += 1
                self._begin(run, None)
        except asyncio.CancelledError:
            # Shutdown: the rest end as cancelled, each once its claim is answered (a row it
            # won must be finished as cancelled).
            for run in runs[begun:]:
                run.cancel_reason = run.cancel_reason or "shutdown"
                self._begin(run, None)
            raise
        finally:
            self._release(runs, held)

    def _release(self, runs: list[_Run], held: list[RunResult]) -> None:
        """A batch has started: runs still going record their own results from now on."""
        for run in runs:
            run.held = None
        self._holding -= 1
        if held:
            self._spawn(self._record(*(Outcome.from_result(r, True) for r in held)))
        elif not self._inflight and not self._recording and not self._holding:
            self._idle.set()

    def _claim_of(self, run: _Run) -> Claim:
        task = run.definition
        return Claim(
            run.run_id,
            task.name,
            run.slot_id,
            run.scheduled_ms,
            run.trigger,
            run.attempt,
            run.attempt == 1 and run.origin == "schedule" and task.overlap == "skip",
        )

    @staticmethod
    def _surface(handle: asyncio.Task[None]) -> None:
        # `_execute` handles everything itself; anything arriving here is a scheduler bug.
        if not handle.cancelled() and handle.exception() is not None:
            log.error("run_task_crashed", exc_info=handle.exception())

    # --- one fire, all its attempts -------------------------------------------------------------

    def _needs_claim(self, run: _Run) -> bool:
        """A fire needs a claim before it runs unless it has no effect outside this process
        (an inline task) and nobody else would run it: the store is this process's alone, or
        no other replica is alive (one that just started is counted within PARTITION_REFRESH).
        Then its final row is its only write. With replicas every fire is claimed: a final
        row written behind could reach the store after another replica's grace."""
        claims = self.claims
        if claims is None:
            return False
        if not run.definition.inline:
            return True
        return not (claims.exclusive or run.origin == MANUAL or claims.partition[1] == 1)

    async def _claim(self, run: _Run) -> bool:
        """Own this attempt in the state store before it can have any side effect."""
        claims = self.claims
        if claims is None or not self._needs_claim(run):
            return True
        task = run.definition
        try:
            # Shielded: a cancel (replace, shutdown) must not orphan a claim already on its way
            # to the store; the cancel handler waits for it so the final row updates it. A
            # claim made by the fire's batch is answered already: awaiting it does not suspend.
            ahead, run.claimed_ahead = run.claimed_ahead, None
            run.claiming = ahead or asyncio.ensure_future(claims.claim(self._claim_of(run)))
            answer = await asyncio.shield(run.claiming)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Without a claim the run could duplicate another replica's: it does not run.
            # The store logs its outage once; per fire this is detail.
            log.debug("claim_failed", task=task.name, slot_id=run.slot_id, error=str(exc))
            outcome = self._never_ran(
                run.state, run.scheduled_ms, run.trigger, MISSED,
                f"state store unavailable, the slot could not be claimed: {exc}",
            )  # fmt: skip
            outcome.run_id, outcome.attempt, outcome.slot_id = run.run_id, run.attempt, run.slot_id
            await self._record(outcome)
            return False
        if answer == EARLY:
            self._rearm_early(run)
            return False
        if self._early_tries:
            self._early_tries.pop((run.state, run.scheduled_ms), None)
        if answer == WON:
            return True
        if answer == BUSY:
            outcome = self._skipped(
                run, "overlap skip: a run of this task is running on another instance"
            )
            await self._record(outcome)
        elif self.log_fires:
            log.debug("slot_claimed_elsewhere", task=task.name, slot_id=run.slot_id)
        return False

    def _rearm_early(self, run: _Run) -> None:
        """Push a fire the store refused as EARLY back onto the heap, due at its slot but not
        sooner than the (growing) retry delay: the store's clock decides when it runs."""
        state = run.state
        if self._stopping or state.task is not run.definition:
            return  # stopping, or a reload re-armed the task from its new definition
        if self._states.get(state.task.name) is not state:
            return
        key = (state, run.scheduled_ms)
        tries = self._early_tries[key] = self._early_tries.get(key, 0) + 1
        delay = min(EARLY_RETRY_MAX, EARLY_RETRY * 2 ** (tries - 1))
        due = max(run.scheduled_ms / 1000, self.clock.now().timestamp() + delay)
        slot = datetime.fromtimestamp(due, UTC)
        self._early[(state, slot)] = run.scheduled_ms
        self._push(state, slot)
        self._wake.set()
        log.info("slot_not_due_yet", task=state.task.name, slot_id=run.slot_id, retry_at=due)

    async def _execute(self, run: _Run, waits: list[asyncio.Task[None]] | None) -> None:
        # One coroutine from start to record, awaiting nothing but the run function when there
        # is no store, no overlap to wait for, no jitter and a free concurrency slot.
        task = run.definition
        policy = task.retry
        max_attempts = policy.max_attempts if policy else 1
        try:
            if run.cancel_reason is not None:
                # Replaced or stopped while its batch waited for the store: it never ran.
                raise asyncio.CancelledError
            if waits:
                # overlap replace: the cancelled run winds down (and is recorded) first.
                await asyncio.wait(waits)
            # Without a state store there is nothing to claim: no coroutine per fire for it.
            if self.claims is not None and not await self._claim(run):
                return
            if task.jitter > 0 and run.origin != "manual":
                await self.clock.sleep(self._rng.uniform(0.0, task.jitter))
            while True:
                last = run.attempt >= max_attempts
                limit = self._limit
                if limit is not None and not limit.try_take():
                    await limit.take()
                try:
                    result = await self._run_fn(
                        task,
                        run.resources,
                        trigger=run.trigger,
                        attempt=run.attempt,
                        scheduled_at=run.scheduled_ms,
                        run_id=run.run_id,
                        slot_id=run.slot_id,
                        with_on_failure=last,
                    )
                finally:
                    if limit is not None:
                        limit.release()
                final = last or result.status == SUCCEEDED
                held = run.held
                if final and held is not None:
                    held.append(result)  # the serve loop records it once its batch has started
                    return
                outcome = Outcome.from_result(result, final)
                try:
                    await self.recorder.record(outcome)
                except Exception:
                    log.exception("record_failed", task=outcome.task, run_id=outcome.run_id)
                if final:
                    return
                assert policy is not None
                delay = backoff_delay(policy, run.attempt, self._rng)
                log.info(
                    "retry_scheduled",
                    task=task.name,
                    run_id=result.run_id,
                    attempt=run.attempt + 1,
                    max_attempts=max_attempts,
                    delay_s=round(delay, 3),
                    status=result.status,
                )
                # The next attempt exists from now on: cancelled while waiting, it is recorded
                # under its own run_id, not the failed attempt's.
                run.attempt += 1
                run.run_id = new_run_id()
                run.trigger = "retry"
                await self.clock.sleep(delay)
                if self.claims is not None and not await self._claim(run):
                    return
        except asyncio.CancelledError as cancelled:
            claiming = run.claiming or run.claimed_ahead
            if claiming is not None and not claiming.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(claiming)
            partial = partial_result(cancelled)
            if partial is not None and partial.run_id == run.run_id:
                # Cancelled while running: the runner's result keeps the trace so far.
                outcome = Outcome.from_result(partial)
                outcome.reason = run.cancel_reason or "cancelled"
            else:
                now = _ms(self.clock.now())
                outcome = Outcome(
                    task=task.name,
                    run_id=run.run_id,
                    slot_id=run.slot_id,
                    status=CANCELLED,
                    trigger=run.trigger,
                    attempt=run.attempt,
                    scheduled_at=run.scheduled_ms,
                    started_at=None,
                    finished_at=now,
                    error={"type": "CancelledError", "message": "run cancelled", "step": None},
                    reason=run.cancel_reason or "cancelled",
                )
            await self._record(outcome)
            raise
        except Exception as exc:
            # A bug in the runner, not a step failure: still exactly one outcome for the fire.
            log.exception("run_crashed", task=task.name, run_id=run.run_id)
            now = _ms(self.clock.now())
            await self._record(
                Outcome(
                    task=task.name,
                    run_id=run.run_id,
                    slot_id=run.slot_id,
                    status="failed",
                    trigger=run.trigger,
                    attempt=run.attempt,
                    scheduled_at=run.scheduled_ms,
                    started_at=None,
                    finished_at=now,
                    error={"type": "InternalError", "message": repr(exc), "step": None},
                )
            )
        finally:
            self._finish(run)

    def _finish(self, run: _Run) -> None:
        state = run.state
        state.running.discard(run)
        self._inflight.discard(run)
        if not state.backlog and state.queued is None:  # the common case: nothing waits
            if not self._inflight and not self._recording and not self._holding:
                self._idle.set()
            return
        gone = self._stopping or self._states.get(state.task.name) is not state
        if state.backlog and not state.running:
            if gone:
                for fire in state.backlog:
                    self._spawn_record(
                        self._missed(fire, "the daemon is stopping or the task was removed")
                    )
                state.backlog.clear()
            else:
                self._start(state, state.backlog.popleft())
        queued = state.queued
        if queued is not None and not state.running:
            state.queued = None
            if gone:
                outcome = self._skipped(queued, "the daemon is stopping or the task was removed")
                self._spawn_record(outcome)
            else:
                self._start(state, queued)
        if not self._inflight and not self._recording and not self._holding:
            self._idle.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` (recording, a batch) in a task of its own, tracked like a run."""
        handle = asyncio.create_task(coro)
        self._recording.add(handle)
        self._idle.clear()

        def done(h: asyncio.Task[None]) -> None:
            self._recording.discard(h)
            if not self._inflight and not self._recording and not self._holding:
                self._idle.set()
            self._surface(h)

        handle.add_done_callback(done)
        return handle

    def _spawn_record(self, *outcomes: Outcome) -> None:
        self._spawn(self._record(*outcomes))

    async def _record(self, *outcomes: Outcome) -> None:
        for outcome in outcomes:
            try:
                await self.recorder.record(outcome)
            except Exception:
                log.exception("record_failed", task=outcome.task, run_id=outcome.run_id)

    # --- control --------------------------------------------------------------------------------

    def trigger(self, name: str) -> str:
        """Run a task once now (admin "run now"); inactive tasks too. Returns the run_id.

        A manual run ignores the overlap policy (someone asked for it) but counts as running for
        scheduled fires, and waits for `max_concurrent_runs` like any other run.
        """
        state = self._states.get(name)
        if state is None:
            raise TaskLookupError(name)
        if self._stopping:
            raise RuntimeError("the scheduler is stopping")
        run_id = new_run_id()
        # A manual run's slot is its own (run_id): it never competes with a scheduled slot.
        self._manual.append(_Run(state, MANUAL, _ms(self.clock.now()), run_id, run_id))
        self._wake.set()
        return run_id

    async def run_now(self, name: str) -> str:
        """Run a task once now, as `trigger` does, and wait until it has ended and is recorded:
        the CLI's `trigger`, which has no serve loop. Returns the first attempt's run_id.

        The same fire path as every other run (claim, run, record), so a manual run from the
        CLI and one from the admin API leave the same history row."""
        state = self._states.get(name)
        if state is None:
            raise TaskLookupError(name)
        run_id = new_run_id()
        run = _Run(state, MANUAL, _ms(self.clock.now()), run_id, run_id)
        self._start(state, run)
        if run.handle is not None:
            await asyncio.wait([run.handle])
        await self.drain(None)  # outcomes recorded in tasks of their own
        return run_id

    async def update(self, tasks: Iterable[CompiledTask], resources: Resources) -> ReloadPlan:
        """Swap in a new set of compiled tasks at once. Runs in flight keep their definition."""
        new = {t.name: t for t in tasks}
        added: list[str] = []
        changed: list[str] = []
        removed: list[str] = []
        now = self.clock.now()
        memo: dict[Any, Any] = {}
        outcomes: list[Outcome] = []
        for name in list(self._states):
            if name not in new:
                state = self._states.pop(name)
                state.gen += 1
                removed.append(name)
                if state.queued is not None:
                    outcomes.append(self._skipped(state.queued, "the task was removed by a reload"))
                    state.queued = None
                for fire in state.backlog:
                    outcomes.append(self._missed(fire, "the task was removed by a reload"))
                state.backlog.clear()
        unchanged = 0
        for name, task in new.items():
            existing = self._states.get(name)
            if existing is None:
                state = _TaskState(task, resources)
                self._states[name] = state
                added.append(name)
                self._arm(state, now, memo)
                continue
            state = existing
            state.resources = resources
            if state.task.fingerprint != task.fingerprint:
                state.task = task
                state.gen += 1
                changed.append(name)
                self._arm(state, now, memo)
            else:
                # Same definition; the new object is compiled against the current schema.
                state.task = task
                unchanged += 1
        for outcome in outcomes:
            await self._record(outcome)
        if self.freeze_gc:
            _freeze_gc()  # the replaced definitions are collectable again, the new ones frozen
        self._wake.set()
        return ReloadPlan(sorted(added), sorted(changed), sorted(removed), unchanged)

    async def wait_released(self, resources: Resources) -> None:
        """Wait until no run in flight uses `resources` (after a reload replaced them)."""
        while True:
            mine = [r for r in self._inflight if r.resources is resources]
            users = [r.handle for r in mine if r.handle is not None]
            if any(not r.began for r in mine):
                users += self._batches  # some still wait in their batch for the store
            if not users:
                return
            await asyncio.wait(users)

    def stop_firing(self) -> None:
        """Stop the loop: no new fires. Runs in flight continue until drained or cancelled."""
        self._stopping = True
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def drain(self, timeout: float | None) -> bool:
        """Wait up to `timeout` seconds for runs in flight; True when none is left."""
        if not self._inflight and not self._recording:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return not self._inflight and not self._recording
        return True

    async def cancel_all(self, reason: str = "shutdown") -> int:
        """Cancel every run in flight (each recorded `cancelled`); returns how many."""
        for state in list(self._states.values()):
            if state.queued is not None:
                self._spawn_record(self._skipped(state.queued, reason))
                state.queued = None
            for fire in state.backlog:
                self._spawn_record(self._missed(fire, reason))
            state.backlog.clear()
        cancelled = 0
        for batch in list(self._batches):
            # Runs still waiting for their claims: their batch ends them as cancelled.
            cancelled += sum(1 for r in self._inflight if not r.began)
            batch.cancel()
        while True:
            for run in list(self._inflight):
                if run.handle is not None and not run.handle.done():
                    if run.cancel_reason is None:
                        cancelled += 1
                    run.cancel_reason = run.cancel_reason or reason
                    run.handle.cancel()
            pending = [
                r.handle for r in self._inflight if r.handle is not None and not r.handle.done()
            ]
            pending += [h for h in self._recording if not h.done()]
            if not pending:
                break
            await asyncio.gather(*pending, return_exceptions=True)
        return cancelled


__all__ = ["ReloadPlan", "RunFn", "Scheduler", "backoff_delay"]
