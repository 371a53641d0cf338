"""Scheduler behaviour on a fake clock: fires, drift, misfires, overlap, limits, retries, DST."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.core.cron import CronSchedule
from daemon.core.errors import TaskLookupError
from daemon.core.runs import Outcome, RunResult
from daemon.engine.compiler import CompiledTask, RetryPolicy
from daemon.resources.bundle import Resources
from daemon.scheduling.scheduler import Scheduler, backoff_delay
from daemon.testing import FakeClock

START = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
FINAL = {"succeeded", "failed", "timed_out", "cancelled", "skipped", "missed"}


def make_task(
    name: str,
    cron: str = "* * * * * *",
    *,
    tz: str = "UTC",
    status: str = "active",
    overlap: str = "skip",
    jitter: float = 0.0,
    misfire_grace: float = 60.0,
    catch_up: str = "none",
    retry: RetryPolicy | None = None,
    fingerprint: bytes | None = None,
    inline: bool = True,
) -> CompiledTask:
    zone = ZoneInfo(tz)
    return CompiledTask(
        name=name,
        file=f"{name}.json",
        status=status,
        description="",
        tags=[],
        request_history=True,
        data_source=None,
        tz=zone,
        cron=cron,
        schedule=CronSchedule(cron, zone),
        steps=[],
        on_failure=None,
        timeout=None,
        retry=retry,
        overlap=overlap,
        jitter=jitter,
        misfire_grace=misfire_grace,
        catch_up=catch_up,
        expect_success_within=None,
        fingerprint=fingerprint if fingerprint is not None else f"{name}|{cron}".encode(),
        inline=inline,
    )


@dataclass
class Call:
    task: str
    trigger: str
    attempt: int
    scheduled_at: int
    run_id: str
    slot_id: str
    with_on_failure: bool
    started: datetime
    finished: datetime | None = None


@dataclass
class FakeRun:
    """Stands in for `run_task`: sleeps on the fake clock and returns scripted statuses."""

    clock: FakeClock
    durations: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, list[str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    running: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)
    total_running: int = 0
    total_peak: int = 0

    async def __call__(
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
    ) -> RunResult:
        assert run_id is not None and slot_id is not None and scheduled_at is not None
        now = self.clock.now()
        call = Call(
            task.name, trigger, attempt, scheduled_at, run_id, slot_id, with_on_failure, now
        )
        self.calls.append(call)
        self.running[task.name] += 1
        self.total_running += 1
        self.peak[task.name] = max(self.peak[task.name], self.running[task.name])
        self.total_peak = max(self.total_peak, self.total_running)
        try:
            await self.clock.sleep(self.durations.get(task.name, 0.0))
        finally:
            self.running[task.name] -= 1
            self.total_running -= 1
        script = self.statuses.get(task.name)
        status = script.pop(0) if script else "succeeded"
        call.finished = self.clock.now()
        started_ms = int(now.timestamp() * 1000)
        return RunResult(
            task=task.name,
            run_id=run_id,
            slot_id=slot_id,
            status=status,
            trigger=trigger,
            attempt=attempt,
            scheduled_at=scheduled_at,
            started_at=started_ms,
            finished_at=int(self.clock.now().timestamp() * 1000),
            error=None if status == "succeeded" else {"type": "StepError", "message": "boom"},
        )


class ListRecorder:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    async def record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def statuses(self, task: str | None = None) -> list[str]:
        return [o.status for o in self.outcomes if task is None or o.task == task]

    def seconds_all(self, start: datetime = START) -> list[float]:
        return [(o.scheduled_at - start.timestamp() * 1000) / 1000 for o in self.outcomes]

    def seconds(self, status: str, start: datetime = START) -> list[float]:
        base = start.timestamp() * 1000
        return [(o.scheduled_at - base) / 1000 for o in self.outcomes if o.status == status]


@dataclass
class Harness:
    clock: FakeClock
    run: FakeRun
    recorder: ListRecorder
    scheduler: Scheduler
    loop_task: asyncio.Task[None]

    async def stop(self) -> None:
        self.scheduler.stop_firing()
        await self.loop_task
        await self.scheduler.cancel_all()


async def start(
    tasks: list[CompiledTask],
    *,
    clock: FakeClock | None = None,
    limit: int | None = None,
    seed: int = 1,
) -> Harness:
    clock = clock or FakeClock(START)
    run = FakeRun(clock)
    recorder = ListRecorder()
    scheduler = Scheduler(
        tasks,
        Resources(),
        clock=clock,
        run=run,
        recorder=recorder,
        max_concurrent_runs=limit,
        rng=random.Random(seed),
    )
    loop_task = asyncio.create_task(scheduler.serve())
    await scheduler.armed.wait()
    return Harness(clock, run, recorder, scheduler, loop_task)


@pytest.fixture
async def stopper() -> AsyncIterator[list[Harness]]:
    harnesses: list[Harness] = []
    yield harnesses
    for h in harnesses:
        if not h.loop_task.done():
            await h.stop()


async def test_every_second_task_fires_exactly_n_times(stopper: list[Harness]) -> None:
    """A six-field every-second task fires once per second of clock advance, on the second."""
    h = await start([make_task("tick")])
    stopper.append(h)
    await h.clock.advance(10)
    assert h.recorder.statuses() == ["succeeded"] * 10
    assert h.recorder.seconds("succeeded") == [float(i) for i in range(1, 11)]
    assert [c.trigger for c in h.run.calls] == ["schedule"] * 10


async def test_no_drift_over_a_long_window(stopper: list[Harness]) -> None:
    """Slots come from the previous slot, so runs that take time never shift later fires."""
    h = await start([make_task("tick", "*/7 * * * * *", overlap="allow")])
    stopper.append(h)
    h.run.durations["tick"] = 0.9
    await h.clock.advance(3600)
    slots = [c.scheduled_at for c in h.run.calls]
    expected = CronSchedule("*/7 * * * * *", ZoneInfo("UTC")).next_n(START, len(slots))
    assert slots == [int(e.timestamp() * 1000) for e in expected]
    assert all(c.started.timestamp() * 1000 == c.scheduled_at for c in h.run.calls)
    assert len(slots) == 3600 // 60 * 9  # :00 :07 ... :56 -> 9 a minute


class EarlyClock(FakeClock):
    """A clock whose timers return 1 ms early, as uvloop's can (then sleep the rest)."""

    async def sleep_until(self, deadline: datetime | None, wake: asyncio.Event) -> None:
        early = timedelta(milliseconds=1)
        if deadline is not None and deadline - self.now() > early:
            deadline -= early
        await super().sleep_until(deadline, wake)


async def test_early_timer_neither_fires_early_nor_twice(stopper: list[Harness]) -> None:
    """The wall clock is re-checked on wake: an early timer just sleeps the rest."""
    h = await start([make_task("tick")], clock=EarlyClock(START))
    stopper.append(h)
    await h.clock.advance(5)
    assert [c.started for c in h.run.calls] == [START + timedelta(seconds=i) for i in range(1, 6)]


async def test_inactive_task_never_fires_but_can_be_triggered(stopper: list[Harness]) -> None:
    """`status: inactive` is loaded and listed, never fired; a manual trigger still runs it."""
    h = await start([make_task("off", status="inactive"), make_task("on")])
    stopper.append(h)
    await h.clock.advance(5)
    assert {c.task for c in h.run.calls} == {"on"}
    run_id = h.scheduler.trigger("off")
    await h.clock.advance(0)
    manual = [c for c in h.run.calls if c.task == "off"]
    assert [(c.trigger, c.run_id, c.slot_id) for c in manual] == [("manual", run_id, run_id)]
    with pytest.raises(TaskLookupError):
        h.scheduler.trigger("nope")


async def test_misfire_after_suspend_is_missed_not_run(stopper: list[Harness]) -> None:
    """After a 2 h suspend, slots later than the grace are recorded missed, none run late."""
    task = make_task("five", "*/5 * * * *", misfire_grace=300)
    h = await start([task])
    stopper.append(h)
    await h.clock.advance(330)  # 12:05:30, one fire at 12:05
    await h.clock.jump(7200)  # 14:05:30
    await h.clock.advance(300)  # 14:10:30
    ran = [
        datetime.fromtimestamp(c.scheduled_at / 1000, UTC).strftime("%H:%M") for c in h.run.calls
    ]
    assert ran == ["12:05", "14:05", "14:10"]  # 14:05 is 30 s late, inside the grace
    # 12:10 .. 14:00: every slot between, each exactly once.
    assert h.recorder.seconds("missed") == [float(300 * m) for m in range(2, 25)]
    assert len({o.slot_id for o in h.recorder.outcomes}) == len(h.recorder.outcomes)


async def test_long_suspend_records_at_most_a_bounded_number(stopper: list[Harness]) -> None:
    """An every-second task after an hour's suspend: 100 missed records, then it resumes."""
    h = await start([make_task("tick")])
    stopper.append(h)
    await h.clock.jump(3600)
    await h.clock.advance(2)
    missed = [o for o in h.recorder.outcomes if o.status == "missed"]
    assert len(missed) == 100
    assert "not recorded" in (missed[-1].reason or "")
    assert h.recorder.seconds("succeeded") == [3600.0, 3601.0, 3602.0]


async def test_blocked_loop_within_grace_coalesces_to_latest_slot(stopper: list[Harness]) -> None:
    """Several due slots within the grace: only the latest runs; earlier ones are missed."""
    h = await start([make_task("tick", misfire_grace=60)])
    stopper.append(h)
    await h.clock.advance(2)
    await h.clock.jump(5)  # 12:00:07: slots 3..7 are due at once
    await h.clock.advance(0)
    by_second = dict(zip(h.recorder.seconds_all(), h.recorder.statuses(), strict=True))
    assert by_second == {
        1.0: "succeeded",
        2.0: "succeeded",
        3.0: "missed",
        4.0: "missed",
        5.0: "missed",
        6.0: "missed",
        7.0: "succeeded",
    }


async def test_backward_clock_jump_does_not_rerun_fired_slots(stopper: list[Harness]) -> None:
    """The wall clock going back an hour never repeats a slot that already fired."""
    h = await start([make_task("tick")])
    stopper.append(h)
    await h.clock.advance(5)
    await h.clock.jump(-3600)
    await h.clock.advance(3600 + 3)
    slots = [c.scheduled_at for c in h.run.calls]
    assert len(slots) == len(set(slots)) == 8
    assert h.recorder.seconds("succeeded") == [float(i) for i in range(1, 9)]


async def test_catch_up_latest_runs_the_last_missed_slot(stopper: list[Harness]) -> None:
    """`catch_up: latest` runs the latest missed slot once (trigger catch_up) after a suspend."""
    h = await start([make_task("hourly", "0 * * * *", misfire_grace=60, catch_up="latest")])
    stopper.append(h)
    await h.clock.jump(3 * 3600 + 1800)  # 15:30: 13:00, 14:00, 15:00 missed
    catch = [(c.trigger, c.scheduled_at) for c in h.run.calls]
    assert catch == [("catch_up", int((START + timedelta(hours=3)).timestamp() * 1000))]
    assert h.recorder.statuses().count("missed") == 2


@pytest.mark.parametrize(
    ("policy", "advance", "expected"),
    [
        # Runs take 2.5 s; fires every second from t=1.
        ("skip", 6, {1: "succeeded", 2: "skipped", 3: "skipped", 5: "skipped", 6: "skipped"}),
        ("allow", 6, {1: "succeeded", 2: "succeeded", 3: "succeeded"}),
        ("queue", 5.5, {1: "succeeded", 3: "skipped", 5: "skipped"}),
        (
            "replace",
            6,
            {1: "cancelled", 2: "cancelled", 3: "cancelled", 4: "cancelled", 5: "cancelled"},
        ),
    ],
)
async def test_overlap_policies(
    stopper: list[Harness], policy: str, advance: float, expected: dict[int, str]
) -> None:
    """skip / allow / queue (one waiting) / replace (the running one cancelled) outcomes."""
    h = await start([make_task("slow", overlap=policy)])
    stopper.append(h)
    h.run.durations["slow"] = 2.5
    await h.clock.advance(advance)
    got = {
        int(s): o.status for s, o in zip(h.recorder.seconds_all(), h.recorder.outcomes, strict=True)
    }
    assert got == expected
    if policy == "skip":
        assert h.run.peak["slow"] == 1
    if policy == "allow":
        assert h.run.peak["slow"] == 3
    if policy == "queue":
        # The queued slot 2 starts when slot 1 ends (t=3.5); slot 4 waits behind it.
        assert [(c.scheduled_at, c.started) for c in h.run.calls][1] == (
            int((START + timedelta(seconds=2)).timestamp() * 1000),
            START + timedelta(seconds=3.5),
        )
        assert h.run.peak["slow"] == 1
    if policy == "replace":
        cancelled = [o for o in h.recorder.outcomes if o.status == "cancelled"]
        assert all("replace" in (o.reason or "") for o in cancelled)
        assert h.run.peak["slow"] == 1


async def test_max_concurrent_runs_across_tasks(stopper: list[Harness]) -> None:
    """At most `max_concurrent_runs` runs at once; waiting fires start late, none is lost."""
    tasks = [make_task(f"t{i}", "*/10 * * * * *") for i in range(5)]
    h = await start(tasks, limit=2)
    stopper.append(h)
    for t in tasks:
        h.run.durations[t.name] = 1.0
    await h.clock.advance(10)
    assert h.run.total_peak == 2
    await h.clock.advance(5)
    assert sorted(h.recorder.statuses()) == ["succeeded"] * 5
    lags = sorted((c.started.timestamp() * 1000 - c.scheduled_at) / 1000 for c in h.run.calls)
    assert lags == [0.0, 0.0, 1.0, 1.0, 2.0]


async def test_retry_attempts_backoff_and_on_failure_last_only(stopper: list[Harness]) -> None:
    """Each attempt its own run_id, same slot; trigger retry; on_failure only on the last."""
    policy = RetryPolicy(max_attempts=4, initial_delay=1.0, max_delay=3.0)
    h = await start([make_task("flaky", "0 * * * *", retry=policy)])
    stopper.append(h)
    h.run.statuses["flaky"] = ["failed", "timed_out", "failed", "failed"]
    h.run.durations["flaky"] = 0.5
    await h.clock.advance(3600 + 60)
    calls = [c for c in h.run.calls if c.scheduled_at == h.run.calls[0].scheduled_at]
    assert [c.attempt for c in calls] == [1, 2, 3, 4]
    assert [c.trigger for c in calls] == ["schedule", "retry", "retry", "retry"]
    assert [c.with_on_failure for c in calls] == [False, False, False, True]
    assert len({c.run_id for c in calls}) == 4 and len({c.slot_id for c in calls}) == 1
    for prev, nxt in itertools.pairwise(calls):
        assert prev.finished is not None
        wait = (nxt.started - prev.finished).total_seconds()
        assert 0 <= wait <= min(3.0, 1.0 * 2 ** (prev.attempt - 1))
    finals = [o.final for o in h.recorder.outcomes if o.slot_id == calls[0].slot_id]
    assert finals == [False, False, False, True]


async def test_retry_stops_at_first_success(stopper: list[Harness]) -> None:
    """A success ends the retries; that outcome is the fire's final one."""
    policy = RetryPolicy(max_attempts=5, initial_delay=1.0, max_delay=30.0)
    h = await start([make_task("flaky", "0 * * * *", retry=policy)])
    stopper.append(h)
    h.run.statuses["flaky"] = ["failed", "succeeded"]
    await h.clock.advance(3600 + 10)
    assert [(o.status, o.attempt, o.final) for o in h.recorder.outcomes] == [
        ("failed", 1, False),
        ("succeeded", 2, True),
    ]


@given(
    attempt=st.integers(min_value=1, max_value=40),
    initial=st.floats(min_value=0.0, max_value=100.0),
    maximum=st.floats(min_value=0.0, max_value=1000.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_bounds(attempt: int, initial: float, maximum: float, seed: int) -> None:
    """Full jitter: 0 <= delay <= min(max_delay, initial_delay * 2**(n-1))."""
    delay = backoff_delay(RetryPolicy(9, initial, maximum), attempt, random.Random(seed))
    assert 0.0 <= delay <= min(maximum, initial * 2 ** (attempt - 1))


async def test_reload_adds_changes_removes(stopper: list[Harness]) -> None:
    """update(): added tasks fire, removed stop, changed are rescheduled; in-flight runs keep
    the definition they started with."""
    keep, old, gone = make_task("keep"), make_task("chg", "*/2 * * * * *"), make_task("gone")
    h = await start([keep, old, gone])
    stopper.append(h)
    h.run.durations["chg"] = 3.0
    await h.clock.advance(2.5)
    new_chg = make_task("chg", "*/5 * * * * *")
    plan = await h.scheduler.update([make_task("keep"), new_chg, make_task("new")], Resources())
    assert (plan.added, plan.changed, plan.removed) == (["new"], ["chg"], ["gone"])
    before = len(h.run.calls)
    await h.clock.advance(10)
    later = h.run.calls[before:]
    assert {c.task for c in later} == {"keep", "chg", "new"}
    chg_slots = sorted({c.scheduled_at % 60000 // 1000 for c in later if c.task == "chg"})
    assert set(chg_slots) <= {0, 5, 10}
    assert h.recorder.statuses("chg").count("succeeded") >= 1  # the old run finished


# --- every fire ends as exactly one outcome ---------------------------------------------------

CRONS = ["* * * * * *", "*/3 * * * * *", "*/7 * * * * *", "0,30 * * * * *", "* * * * *"]


@dataclass
class Scenario:
    tasks: list[
        tuple[str, str, float, list[str], int, float]
    ]  # cron overlap dur statuses retry jitter
    jumps: list[tuple[int, int]]  # (at second, forward seconds)
    limit: int | None


scenarios = st.builds(
    Scenario,
    tasks=st.lists(
        st.tuples(
            st.sampled_from(CRONS),
            st.sampled_from(["skip", "allow", "queue", "replace"]),
            st.sampled_from([0.0, 0.5, 2.0, 7.5, 45.0]),
            st.lists(st.sampled_from(["succeeded", "failed", "timed_out"]), max_size=30),
            st.integers(min_value=1, max_value=3),
            st.sampled_from([0.0, 0.0, 1.5]),
        ),
        min_size=1,
        max_size=4,
    ),
    jumps=st.lists(
        st.tuples(st.integers(min_value=1, max_value=590), st.integers(min_value=1, max_value=90)),
        max_size=2,
    ),
    limit=st.sampled_from([None, 1, 3]),
)


async def _simulate(sc: Scenario) -> None:
    tasks = [
        make_task(
            f"t{i}",
            cron,
            overlap=overlap,
            jitter=jitter,
            misfire_grace=20.0,
            retry=RetryPolicy(retry, 0.5, 4.0) if retry > 1 else None,
        )
        for i, (cron, overlap, _, _, retry, jitter) in enumerate(sc.tasks)
    ]
    h = await start(tasks, limit=sc.limit)
    for i, (_, _, dur, statuses, _, _) in enumerate(sc.tasks):
        h.run.durations[f"t{i}"] = dur
        h.run.statuses[f"t{i}"] = list(statuses)
    elapsed = 0
    total_jump = 0
    for at, forward in sorted(sc.jumps):
        if at > elapsed:
            await h.clock.advance(at - elapsed)
            elapsed = at
        await h.clock.jump(forward)
        total_jump += forward
    await h.clock.advance(600 - elapsed)
    await h.stop()
    end = START + timedelta(seconds=600 + total_jump)

    outcomes = h.recorder.outcomes
    assert all(o.status in FINAL for o in outcomes)
    finals = Counter(o.slot_id for o in outcomes if o.final)
    assert all(n == 1 for n in finals.values()), finals.most_common(3)
    # Non-final outcomes are failed attempts a retry follows, of slots that have a final one.
    for o in outcomes:
        if not o.final:
            assert o.status in ("failed", "timed_out") and o.slot_id in finals
    # Every slot in the window has exactly one final outcome: none lost, none invented.
    for task in tasks:
        assert task.schedule is not None
        expected = set()
        cur = START
        while (cur := task.schedule.next_after(cur)) <= end:
            expected.add(f"{task.name}@{int(cur.timestamp() * 1000)}")
        got = {s for s in finals if s.startswith(f"{task.name}@")}
        assert got == expected
    assert len({o.run_id for o in outcomes}) == len(outcomes)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=scenarios)
def test_every_fire_ends_as_exactly_one_outcome(sc: Scenario) -> None:
    """Random policies, durations, failures, retries, jitter and clock jumps over 10 minutes."""
    asyncio.run(_simulate(sc))


def _local(task: CompiledTask, outcome: Any) -> datetime:
    return datetime.fromtimestamp(outcome.scheduled_at / 1000, task.tz)


@pytest.mark.parametrize(
    ("tz", "day", "cron", "fires", "first_local"),
    [
        # Spring forward: 02:30 does not exist; fires once, at the first instant after the gap.
        ("America/New_York", "2026-03-08", "30 2 * * *", 1, "03:00"),
        ("Europe/Berlin", "2026-03-29", "30 2 * * *", 1, "03:00"),
        # Fall back: 01:30 (New York) / 02:30 (Berlin) happen twice; fire once.
        ("America/New_York", "2026-11-01", "30 1 * * *", 1, "01:30"),
        ("Europe/Berlin", "2026-10-25", "30 2 * * *", 1, "02:30"),
        # Hourly jobs: one fire per real hour: 23 on the short day, 25 on the long one.
        ("America/New_York", "2026-03-08", "0 * * * *", 23, "00:00"),
        ("Europe/Berlin", "2026-03-29", "0 * * * *", 23, "00:00"),
        ("America/New_York", "2026-11-01", "0 * * * *", 25, "00:00"),
        ("Europe/Berlin", "2026-10-25", "0 * * * *", 25, "00:00"),
    ],
)
async def test_dst_transitions(
    stopper: list[Harness], tz: str, day: str, cron: str, fires: int, first_local: str
) -> None:
    """Across 2026 DST transitions jobs fire once per local slot and once per real hour."""
    zone = ZoneInfo(tz)
    midnight = datetime.fromisoformat(day).replace(tzinfo=zone)
    task = make_task("dst", cron, tz=tz)
    start_utc = midnight.astimezone(UTC) - timedelta(seconds=1)
    h = await start([task], clock=FakeClock(start_utc))
    stopper.append(h)
    next_midnight = datetime.fromisoformat(day).replace(tzinfo=zone) + timedelta(days=1)
    next_midnight = next_midnight.replace(hour=0)
    span = (next_midnight.astimezone(UTC) - start_utc).total_seconds() - 1
    await h.clock.advance(span)
    got = h.recorder.outcomes
    assert len(got) == fires
    assert _local(task, got[0]).strftime("%H:%M") == first_local
    real = [o.scheduled_at for o in got]
    assert len(set(real)) == len(real)
    if fires > 1:
        assert all(b - a == 3_600_000 for a, b in itertools.pairwise(real))
