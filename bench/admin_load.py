"""Fire lag with the admin listener idle vs under ~200 req/s on /api/tasks, in one run.

    .venv/bin/python bench/admin_load.py [--tasks 100] [--seconds 10] [--rate 200]

The daemon side (scheduler on the system clock + SQLite state store + admin listener) runs in
this process; the HTTP load comes from a separate process on loopback, so the client's own CPU
does not count against the daemon's loop (2 cores: one each).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon.core.cron import CronSchedule
from daemon.core.runs import RunResult
from daemon.engine.compiler import CompiledTask
from daemon.ops import logs
from daemon.ops.metrics import Metrics, ObservingRecorder
from daemon.resources.bundle import Resources
from daemon.resources.db import create_datasource
from daemon.scheduling.scheduler import Scheduler
from daemon.state.store import StateStore
from daemon.web.server import AdminContext, AdminServer

TOKEN = "bench-token-0123456789"


def task(name: str) -> CompiledTask:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("UTC")
    return CompiledTask(
        name=name, file="", status="active", description="", tags=[], request_history=True,
        data_source=None, tz=tz, cron="* * * * * *", schedule=CronSchedule("* * * * * *", tz),
        steps=[], on_failure=None, timeout=None, retry=None, overlap="allow", jitter=0.0,
        misfire_grace=60.0, catch_up="none", expect_success_within=None,
        fingerprint=name.encode(),
    )  # fmt: skip


class LagRun:
    """Records how late each scheduled fire started (wall clock vs its slot)."""

    def __init__(self) -> None:
        self.lags: list[tuple[float, float]] = []  # (when, lag)

    async def __call__(self, t: CompiledTask, resources: Resources, **kw: Any) -> RunResult:
        now = time.time()
        scheduled = int(kw["scheduled_at"])
        self.lags.append((now, now - scheduled / 1000))
        ms = int(now * 1000)
        return RunResult(t.name, kw["run_id"], kw["slot_id"], "succeeded", kw["trigger"],
                         kw["attempt"], scheduled, ms, ms)  # fmt: skip


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def summary(lags: list[float]) -> dict[str, float]:
    return {
        "fires": len(lags),
        "p50_ms": round(pct(lags, 0.50) * 1000, 2),
        "p99_ms": round(pct(lags, 0.99) * 1000, 2),
        "max_ms": round(max(lags) * 1000, 2) if lags else float("nan"),
    }


async def client(url: str, rate: float, seconds: float) -> None:
    """The load generator (separate process): `rate` GETs per second on a fixed schedule."""
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {TOKEN}"}
    interval = 1.0 / rate
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:

        async def one() -> None:
            nonlocal errors
            start = time.perf_counter()
            try:
                async with session.get(url, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - start)

        pending: set[asyncio.Task[None]] = set()
        begin = time.perf_counter()
        n = 0
        while (elapsed := time.perf_counter() - begin) < seconds:
            due = int(elapsed / interval) + 1
            while n < due:
                t = asyncio.create_task(one())
                pending.add(t)
                t.add_done_callback(pending.discard)
                n += 1
            await asyncio.sleep(interval / 2)
        await asyncio.gather(*pending)
        took = time.perf_counter() - begin
    print(json.dumps({
        "requests": len(latencies), "errors": errors, "rps": round(len(latencies) / took, 1),
        "latency_p50_ms": round(pct(latencies, 0.5) * 1000, 2),
        "latency_p99_ms": round(pct(latencies, 0.99) * 1000, 2),
    }))  # fmt: skip


async def main(args: argparse.Namespace) -> dict[str, Any]:
    # Logs as the daemon writes them (JSON lines), to a sink: the terminal is not the subject.
    logs.configure(level="info", fmt="json", stream=io.StringIO())
    tmp = Path(tempfile.mkdtemp(prefix="cronstack-bench-"))
    store = StateStore(create_datasource("state", f"sqlite:///{tmp}/state.db", base_dir=tmp))
    await store.open(exclusive=True)
    store.start()
    run = LagRun()
    metrics = Metrics()
    scheduler = Scheduler(
        [task(f"t{i:03d}") for i in range(args.tasks)], Resources(), run=run,
        recorder=ObservingRecorder(store, [metrics]), claims=store,
    )  # fmt: skip
    serve = asyncio.create_task(scheduler.serve())
    await scheduler.armed.wait()
    server = AdminServer(AdminContext(scheduler, store, metrics), listen="127.0.0.1:0", token=TOKEN)
    await server.start()
    await asyncio.sleep(2)  # warm up: the first fires, the store's first flushes
    t0 = time.time()
    await asyncio.sleep(args.seconds)
    t1 = time.time()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", server.base_url + "/api/tasks",
        "--rate", str(args.rate), "--seconds", str(args.seconds),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    t2 = time.time()
    scheduler.stop_firing()
    await serve
    await scheduler.drain(5)
    await server.close()
    await store.close()
    idle = [lag for when, lag in run.lags if t0 <= when < t1]
    loaded = [lag for when, lag in run.lags if t1 + 0.5 <= when < t2]
    return {
        "tasks": args.tasks,
        "loop": type(asyncio.get_running_loop()).__module__,
        "idle": summary(idle),
        "under_load": summary(loaded),
        "load": json.loads(out.decode().strip().splitlines()[-1]),
        "cpu_count": os.cpu_count(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--client", metavar="URL")
    args = parser.parse_args()
    if args.client:
        asyncio.run(client(args.client, args.rate, args.seconds))
    else:
        result = asyncio.run(main(args))
        print(json.dumps(result, indent=2))
        print(
            f"fire lag p99: idle {result['idle']['p99_ms']} ms, "
            f"under {result['load']['rps']} req/s on /api/tasks "
            f"{result['under_load']['p99_ms']} ms"
        )
