"""A burst: N tasks due at the same minute on a PostgreSQL store, one process vs two replicas.

    .venv/bin/python bench/burst.py [--tasks 100000] [--kill]

Spawns `cronstack run` (default config) on N tasks `* * * * *` of one Create Variable step, waits
for the next whole minute and reads that minute's run rows: every slot must have exactly one
row and have run once, and all must have started within 10 s of the minute. Then the same with
two replicas on one store: each must run a fair share (neither under 30 %) and the burst must
finish in at most 0.6x the one-process time. `--kill` also runs the two-replica case with one
replica killed (SIGKILL) a moment into the burst: nothing may be lost — every slot still has
its row (runs the dead one had claimed end `interrupted` once their lease expires).

Also samples CPU time every 0.25 s — the cronstack processes' and PostgreSQL's (every
`postgres` process on the machine) — and reports what each spent up to the burst's last start.
That bounds what replicas can gain here: when one process already keeps every core busy
(itself one, PostgreSQL the rest), two replicas cannot finish before (daemon + PostgreSQL CPU)
/ cores, whatever the division of work.

Prints the figures with the budgets; exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before bench/, where bench/daemon.py would shadow the package


def _bench_daemon() -> Any:
    """bench/daemon.py, loaded by path under another name: the same generated configs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_daemon", ROOT / "bench" / "daemon.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_daemon"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


load = _bench_daemon()

START_BUDGET_S = 10.0
SHARE_BUDGET = 0.30
SPEEDUP_BUDGET = 0.6


@dataclass
class Burst:
    replicas: int
    rows: int = 0
    slots: int = 0
    duplicates: int = 0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    shares: dict[str, int] = field(default_factory=dict)
    last_start_s: float = 0.0
    p50_start_s: float = 0.0
    # (seconds after the minute, CPU-s of the cronstack processes, CPU-s of PostgreSQL) since
    # a second before the minute.
    cpu: list[tuple[float, float, float]] = field(default_factory=list)

    def cpu_by(self, at_s: float) -> tuple[float, float]:
        """CPU-s spent by the daemons and by PostgreSQL from a second before the minute to
        `at_s` after it (the first sample at or after it)."""
        for t, daemons, pg in self.cpu:
            if t >= at_s:
                return daemons, pg
        return (self.cpu[-1][1], self.cpu[-1][2]) if self.cpu else (0.0, 0.0)


def postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().startswith("postgres"):
                    pids.append(int(entry))
            except OSError:
                pass  # gone meanwhile
    return pids


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += load.proc_cpu(pid)
        except (OSError, IndexError):
            pass  # a backend that ended: its time is lost to the sum (small, and only after)
    return total


def sample_cpu(
    procs: list[subprocess.Popen[bytes]], minute: int, until: float
) -> list[tuple[float, float, float]]:
    """CPU-s used by the daemons and by PostgreSQL from a second before `minute` to `until`
    (epoch s), every 0.25 s. New PostgreSQL backends count from zero (they start at 0)."""
    time.sleep(max(0.0, minute - 1 - time.time()))
    daemons = [p.pid for p in procs]
    base_d = cpu_of(daemons)
    base_pg: dict[int, float] = {pid: cpu_of([pid]) for pid in postgres_pids()}
    samples = []
    while time.time() < until:
        time.sleep(0.25)
        d = cpu_of(daemons) - base_d
        pg = sum(cpu_of([pid]) - base_pg.get(pid, 0.0) for pid in postgres_pids())
        samples.append((time.time() - minute, d, pg))
    return samples


def minute_config(
    work: Path, n: int, url: str, replicas: int, *, waiting: bool, lease: str
) -> list[Path]:
    config = load.write_config(work, n, url)
    path = work / "tasks" / "load.json"
    tasks = json.loads(path.read_text())
    for task in tasks:
        task["schedule"] = "* * * * *"
        if waiting:
            # A step that waits: every run is claimed before it runs and has a task of its own
            # (a task that never waits runs inline, unclaimed when no other replica is alive).
            task["function_stack"].append({"function": "Sleep", "duration": "0s"})
    path.write_text(json.dumps(tasks))
    configs = []
    for r in range(replicas):
        text = config.read_text().replace(
            "[daemon]\n", f'[daemon]\ninstance = "r{r}"\nlease_timeout = "{lease}"\n', 1
        )
        text = re.sub(r'listen = "127.0.0.1:\d+"', f'listen = "127.0.0.1:{load.free_port()}"', text)
        out = work / f"config{r}.toml"
        out.write_text(text)
        configs.append(out)
    return configs


def spawn(config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*load.CRONSTACK, "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def run_burst(n: int, replicas: int, *, waiting: bool, kill_after: float | None = None) -> Burst:
    name = f"cronstack_burst_{os.getpid()}_{replicas}"
    url = asyncio.run(load.fresh_pg(name))
    with tempfile.TemporaryDirectory(prefix="cronstack-burst-") as tmp:
        work = Path(tmp)
        # Killed: a short lease, so the survivor marks the dead one's runs within the window.
        lease = "6s" if kill_after is not None else "30s"
        configs = minute_config(work, n, url, replicas, waiting=waiting, lease=lease)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [spawn(c, env) for c in configs]
        try:
            minute = (int(time.time()) // 60 + 1) * 60
            if minute - time.time() < 20:  # loading 100,000 tasks takes a while
                minute += 60
            samples: list[tuple[float, float, float]] = []
            if kill_after is not None:
                time.sleep(max(0.0, minute + kill_after - time.time()))
                procs[-1].send_signal(signal.SIGKILL)
            else:
                samples = sample_cpu(procs, minute, minute + START_BUDGET_S + 2)
            time.sleep(max(0.0, minute + 25 - time.time()))
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=120)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        rows = asyncio.run(read(url))
    asyncio.run(load.drop_pg(name))
    burst = tally(rows, replicas, minute)
    burst.cpu = samples
    return burst


async def read(url: str) -> list[dict[str, Any]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT task, scheduled_at, status, started_at, instance, attempt FROM cronstack_runs"
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


def tally(rows: list[dict[str, Any]], replicas: int, minute: int) -> Burst:
    burst = Burst(replicas)
    mine = [r for r in rows if r["scheduled_at"] == minute * 1000 and r["attempt"] == 1]
    burst.rows = len(mine)
    per_task = collections.Counter(r["task"] for r in mine)
    burst.slots = len(per_task)
    burst.duplicates = sum(c - 1 for c in per_task.values())
    burst.statuses = collections.Counter(r["status"] for r in mine)
    burst.shares = dict(collections.Counter(r["instance"] for r in mine))
    starts = sorted((r["started_at"] - minute * 1000) / 1000 for r in mine if r["started_at"])
    if starts:
        burst.last_start_s = starts[-1]
        burst.p50_start_s = starts[len(starts) // 2]
    return burst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--kill", action="store_true", help="also kill a replica mid-burst")
    parser.add_argument(
        "--inline", action="store_true", help="tasks whose steps never wait (see README)"
    )
    args = parser.parse_args()
    ok = True
    waiting = not args.inline
    one = run_burst(args.tasks, 1, waiting=waiting)
    two = run_burst(args.tasks, 2, waiting=waiting)
    kind = "inline (Create Variable)" if args.inline else "claimed (Create Variable + Sleep 0s)"
    print(f"{args.tasks} tasks due at one minute, PostgreSQL store, {kind}")
    for b in (one, two):
        shares = {k: f"{v / max(1, b.rows):.0%}" for k, v in sorted(b.shares.items())}
        print(
            f"  {b.replicas} process(es): {b.slots} slots, {b.rows} rows, {b.duplicates} dup,"
            f" statuses {dict(b.statuses)}, started p50 {b.p50_start_s:.2f} s,"
            f" all by {b.last_start_s:.2f} s (budget <= {START_BUDGET_S:g}), shares {shares}"
        )
        ok = ok and b.slots == args.tasks and not b.duplicates
        ok = ok and b.last_start_s <= START_BUDGET_S
    cores = os.cpu_count() or 1
    for b in (one, two):
        daemons, pg = b.cpu_by(b.last_start_s)
        print(
            f"  {b.replicas} process(es), CPU from 1 s before the minute to the last start:"
            f" cronstack {daemons:.2f} s, PostgreSQL {pg:.2f} s"
        )
    daemons, pg = one.cpu_by(one.last_start_s)
    bound = (daemons + pg) / cores / one.last_start_s if one.last_start_s else 0.0
    print(
        f"  on {cores} cores shared with PostgreSQL two replicas cannot beat"
        f" (cronstack + PostgreSQL CPU of one process) / cores = {bound:.2f}x one process"
        " (the same work, spread over every core)"
    )
    fair = min(two.shares.values(), default=0) / max(1, two.rows)
    ratio = two.last_start_s / one.last_start_s if one.last_start_s else float("inf")
    print(
        f"  two replicas: smallest share {fair:.0%} (budget >= {SHARE_BUDGET:.0%}),"
        f" burst time {ratio:.2f}x one process (budget <= {SPEEDUP_BUDGET})"
    )
    ok = ok and fair >= SHARE_BUDGET and ratio <= SPEEDUP_BUDGET
    if args.kill:
        killed = run_burst(args.tasks, 2, waiting=waiting, kill_after=0.5)
        print(
            f"  one replica killed 0.5 s into the burst: {killed.slots} slots with a row"
            f" ({killed.duplicates} dup), statuses {dict(killed.statuses)}"
        )
        ok = ok and killed.slots == args.tasks and not killed.duplicates
    print("all within budget" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
