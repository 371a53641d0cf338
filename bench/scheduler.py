"""Scheduler benchmark: fire lag of N every-second tasks vs a bare single-timer asyncio baseline.

Usage: python bench/scheduler.py [--tasks 1000,10000] [--seconds 3] [--rounds 3]
                                 [--loops asyncio,uvloop] [--idle-seconds 10]
Prints figures beside budgets; exits 1 if a budget is missed.

Like with like: both sides start one asyncio task per job with `loop.create_task`, and both call
the same run function, which stamps the start (`time.time()` minus the slot) and does the same
bookkeeping; the difference is the scheduler's own work. Baseline and scheduler windows
alternate `--rounds` times on fresh loops and the lags are pooled, so a noisy neighbour on the
machine lands on both sides rather than on whichever ran second. Both sides freeze what they
built before their window (`gc.freeze`, as the daemon does once armed): a full collection
walking 10,000 tasks' objects (~50 ms) landing in one side's window would decide the p99.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.core.cron import CronSchedule
from daemon.core.runs import Outcome, RunResult
from daemon.engine.compiler import CompiledTask
from daemon.ops import logs
from daemon.resources.bundle import Resources
from daemon.scheduling.scheduler import Scheduler

RATIO_BUDGET = 1.2  # p99 lag vs the baseline, same run
RSS_BUDGET_MB = 150
IDLE_CPU_BUDGET = 0.05  # CPU seconds over the idle window: "about zero"


def make_task(name: str, cron: str) -> CompiledTask:
    zone = ZoneInfo("UTC")
    return CompiledTask(
        name=name, file="bench", status="active", description="", tags=[],
        request_history=False, data_source=None, tz=zone, cron=cron,
        schedule=CronSchedule(cron, zone), steps=[], on_failure=None, timeout=None, retry=None,
        overlap="allow", jitter=0.0, misfire_grace=60.0, catch_up="none",
        expect_success_within=None, fingerprint=name.encode(),
    )  # fmt: skip


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Counting:
    def __init__(self) -> None:
        self.by_status: dict[str, int] = {}

    async def record(self, outcome: Outcome) -> None:
        self.by_status[outcome.status] = self.by_status.get(outcome.status, 0) + 1


class Probe:
    """The run function of both sides: stamps each start and counts runs per slot."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.slots: dict[tuple[str, int], int] = {}

    async def run(self, task: CompiledTask, resources: Resources, **kw: Any) -> RunResult:
        now_ms = time.time() * 1000
        self.lags.append(now_ms - kw["scheduled_at"])
        key = (task.name, kw["scheduled_at"])
        self.slots[key] = self.slots.get(key, 0) + 1
        return RunResult(task.name, kw["run_id"], kw["slot_id"], "succeeded", kw["trigger"],
                         kw["attempt"], kw["scheduled_at"], int(now_ms), int(now_ms))  # fmt: skip

    def clear(self) -> None:
        self.lags.clear()
        self.slots.clear()


def next_second() -> float:
    """Seconds until half a second past the next whole second (windows hold whole batches)."""
    return 1 - time.time() % 1 + 0.5


async def run_scheduler(n: int, seconds: int) -> dict[str, Any]:
    probe = Probe()
    tasks = [make_task(f"t{i}", "* * * * * *") for i in range(n)]
    recorder = Counting()
    sched = Scheduler(tasks, Resources(), run=probe.run, recorder=recorder, freeze_gc=True)
    serve = asyncio.create_task(sched.serve())
    await sched.armed.wait()
    await asyncio.sleep(next_second())
    probe.clear()
    recorder.by_status.clear()
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    sched.stop_firing()
    await serve
    await sched.cancel_all()
    gc.unfreeze()
    expected = n * seconds
    return {
        "lags": list(probe.lags),
        "fires": len(probe.lags),
        "expected": expected,
        "missed": max(0, expected - len(probe.slots)) + recorder.by_status.get("missed", 0),
        "duplicates": sum(c - 1 for c in probe.slots.values() if c > 1),
        "cpu": cpu,
    }


async def run_baseline(n: int, seconds: int) -> dict[str, Any]:
    """One loop.call_at timer per second that starts one task per job calling the same run
    function as the scheduler's; lag = start - due instant, stamped in that function."""
    loop = asyncio.get_running_loop()
    probe = Probe()
    tasks = [make_task(f"t{i}", "* * * * * *") for i in range(n)]
    resources = Resources()
    running: set[asyncio.Task[RunResult]] = set()

    def start_all(due_ms: int) -> None:
        for task in tasks:
            t = loop.create_task(
                probe.run(task, resources, trigger="schedule", attempt=1, scheduled_at=due_ms,
                          run_id="", slot_id="", with_on_failure=True)
            )  # fmt: skip
            running.add(t)
            t.add_done_callback(running.discard)

    # The same warm-up as the scheduler's side: what was built is frozen, and the window
    # starts between two fires.
    gc.collect()
    gc.freeze()
    await asyncio.sleep(next_second())
    cpu0, wall0 = time.process_time(), time.monotonic()
    first = int(time.time()) + 1
    for k in range(seconds):
        due = first + k
        loop.call_at(loop.time() + (due - time.time()), start_all, due * 1000)
    await asyncio.sleep(first + seconds - time.time() - 0.5)
    cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    gc.unfreeze()
    return {"lags": list(probe.lags), "fires": len(probe.lags), "cpu": cpu}


def idle(n: int, seconds: float) -> dict[str, float]:
    """n hourly tasks armed and idle: CPU over the window and resident memory."""

    async def main() -> dict[str, float]:
        tasks = [make_task(f"h{i}", f"{random.randrange(60)} * * * *") for i in range(n)]
        sched = Scheduler(tasks, Resources(), max_concurrent_runs=64)
        serve = asyncio.create_task(sched.serve())
        await sched.armed.wait()
        await asyncio.sleep(0.5)
        cpu0 = time.process_time()
        await asyncio.sleep(seconds)
        cpu = time.process_time() - cpu0
        sched.stop_firing()
        await serve
        return {"cpu_s": cpu, "rss_mb": rss_mb()}

    return run_on(loop_factory(os.environ.get("BENCH_LOOP", "asyncio")), main)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def run_on(factory: Callable[[], asyncio.AbstractEventLoop] | None, fn: Callable[[], Any]) -> Any:
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(fn())


def pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"lags": [x for r in results for x in r["lags"]]}
    for key in ("fires", "expected", "missed", "duplicates"):
        if key in results[0]:
            out[key] = sum(r[key] for r in results)
    out["cpu"] = statistics.mean(r["cpu"] for r in results)
    return out


def report(loop: str, n: int, seconds: int, rounds: int) -> bool:
    bases, ourses = [], []
    for _ in range(rounds):
        bases.append(run_on(loop_factory(loop), lambda: run_baseline(n, seconds)))
        ourses.append(run_on(loop_factory(loop), lambda: run_scheduler(n, seconds)))
    base, ours = pooled(bases), pooled(ourses)
    b99, o99 = pct(base["lags"], 0.99), pct(ours["lags"], 0.99)
    ratio = o99 / b99 if b99 > 0 else float("inf")
    ok = ratio <= RATIO_BUDGET and ours["missed"] == 0 and ours["duplicates"] == 0
    print(f"\n[{loop}] {n} tasks every second, {rounds} x {seconds} s windows")
    print(f"  {'':10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'fires':>8} {'cpu/s':>6}")
    for label, r in (("baseline", base), ("scheduler", ours)):
        lags = r["lags"]
        print(
            f"  {label:10} {statistics.median(lags):8.1f} {pct(lags, 0.99):8.1f} "
            f"{max(lags):8.1f} {r['fires']:8d} {r['cpu']:6.2f}"
        )
    print(
        f"  p99 ratio {ratio:.2f} (budget <= {RATIO_BUDGET}); missed {ours['missed']} "
        f"duplicates {ours['duplicates']} (budget 0); fires {ours['fires']}/{ours['expected']}"
        f"  -> {'OK' if ok else 'OVER BUDGET'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default="1000,10000")
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--idle", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logs.configure(level="info", fmt="json", stream=sys.stderr)
    if args.idle:
        print(json.dumps(idle(10_000, args.idle_seconds)))
        return 0
    loops = [x for x in args.loops.split(",") if x]
    if "uvloop" in loops:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("uvloop not installed: default loop only")
            loops.remove("uvloop")
    ok = True
    for loop in loops:
        for n in (int(x) for x in args.tasks.split(",")):
            ok &= report(loop, n, args.seconds, args.rounds)
        # A fresh process, so RSS is the idle daemon's alone.
        out = subprocess.run(
            [sys.executable, __file__, "--idle", "--idle-seconds", str(args.idle_seconds)],
            capture_output=True, text=True, check=True, env={**os.environ, "BENCH_LOOP": loop},
        )  # fmt: skip
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        idle_ok = figures["cpu_s"] <= IDLE_CPU_BUDGET and figures["rss_mb"] <= RSS_BUDGET_MB
        ok &= idle_ok
        print(
            f"\n[{loop}] 10000 hourly tasks idle {args.idle_seconds:g} s: "
            f"CPU {figures['cpu_s']:.3f} s (budget <= {IDLE_CPU_BUDGET}), "
            f"RSS {figures['rss_mb']:.0f} MB (budget <= {RSS_BUDGET_MB})"
            f"  -> {'OK' if idle_ok else 'OVER BUDGET'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
