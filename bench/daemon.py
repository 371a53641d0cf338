"""The assembled daemon under load, as a user runs it: `cronstack run` on N every-second tasks.

    .venv/bin/python bench/daemon.py [--tasks 100,1000,10000] [--stores sqlite,postgresql]
                                     [--seconds 10] [--warmup 3] [--load 1000,10000,100000]

For each store and N: a generated config (default settings and logging, state store on, the
admin listener on a free port) with N tasks `* * * * * *` of one Create Variable step; the
daemon is spawned as a black box, READY=1 read from our own NOTIFY_SOCKET, a window of
`--seconds` measured, then SIGTERM. From the run rows of every slot in the window: fire lag
(`started_at - scheduled_at`), skipped, missed, duplicate and missing slots, and rows still
`running` after the clean stop; from /proc: CPU seconds per second and peak RSS (VmHWM).
Beside it, in the same run, a bare single-timer asyncio peer doing the same every-second job
and storing nothing. `--load` times `cronstack check` on generated files of that many tasks.

Prints a table with the budgets; exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before bench/, where this file would shadow the daemon package

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CRONSTACK = [sys.executable, "-m", "daemon.cli"]

# Budgets (issue 10), per N: p99 fire lag (ms); and for every N: nothing skipped, missed,
# duplicated, missing or left running; CPU and RSS as below, READY within 2 s.
P99_BUDGET_MS = {100: 10.0, 1000: 40.0, 10000: 500.0}
CPU_BUDGET = 0.5  # CPU seconds per second of wall clock (10,000 fires/s: 50 us per fire)
RSS_BUDGET_MB = 130.0
READY_BUDGET_S = 2.0
LOAD_BUDGET_S = {100_000: 10.0}


@dataclass
class Result:
    store: str
    n: int
    ready_s: float = 0.0
    lags_ms: list[float] = field(default_factory=list)
    expected: int = 0
    succeeded: int = 0
    skipped: int = 0
    missed: int = 0
    failed: int = 0
    duplicates: int = 0
    missing: int = 0
    running_after_stop: int = 0
    cpu_per_s: float = 0.0
    rss_mb: float = 0.0
    exit_code: int | None = None
    errors: list[str] = field(default_factory=list)

    def pct(self, q: float) -> float:
        if not self.lags_ms:
            return float("nan")
        data = sorted(self.lags_ms)
        return data[min(len(data) - 1, int(q * len(data)))]


# --- the daemon as a black box -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(work: Path, n: int, db_url: str) -> Path:
    tasks = [
        {
            "name": f"t{i:06d}",
            "schedule": "* * * * * *",
            "function_stack": [{"function": "Create Variable", "name": "x", "value": i}],
        }
        for i in range(n)
    ]
    (work / "tasks").mkdir(parents=True, exist_ok=True)
    (work / "tasks" / "load.json").write_text(json.dumps(tasks))
    config = work / "config.toml"
    config.write_text(
        f"""
[daemon]
tasks = ["tasks/*.json"]
state = "primary"

[datasources.primary]
url = "{db_url}"

[admin]
listen = "127.0.0.1:{free_port()}"
"""
    )
    return config


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def proc_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(sock: socket.socket, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        sock.settimeout(max(0.01, min(0.5, deadline - time.monotonic())))
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        if b"READY=1" in data.split(b"\n"):
            return True
    return False


async def fresh_pg(name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


async def drop_pg(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def read_rows(db_url: str, work: Path, lo_ms: int, hi_ms: int) -> list[dict[str, Any]]:
    from daemon.resources.db import create_datasource

    ds = create_datasource("bench", db_url, base_dir=work)
    await ds.open()
    try:
        return await ds.fetch(
            "SELECT task, scheduled_at, status, started_at, attempt FROM cronstack_runs"
            f" WHERE scheduled_at >= {lo_ms} AND scheduled_at < {hi_ms}",
            [],
        )
    finally:
        await ds.close()


async def count_running(db_url: str, work: Path) -> int:
    from daemon.resources.db import create_datasource

    ds = create_datasource("bench", db_url, base_dir=work)
    await ds.open()
    try:
        rows = await ds.fetch(
            "SELECT count(*) AS n FROM cronstack_runs WHERE status = 'running'", []
        )
        return int(rows[0]["n"])
    finally:
        await ds.close()


def run_daemon(store: str, n: int, seconds: float, warmup: float) -> Result:
    result = Result(store, n)
    with tempfile.TemporaryDirectory(prefix="cronstack-bench-") as tmp:
        work = Path(tmp)
        pg_name = f"cronstack_bench_{os.getpid()}_{n}"
        db_url = asyncio.run(fresh_pg(pg_name)) if store == "postgresql" else "sqlite:///state.db"
        config = write_config(work, n, db_url)
        notify = work / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(notify))
        env = {**os.environ, "NOTIFY_SOCKET": str(notify), "PYTHONPATH": str(ROOT)}
        log = (work / "daemon.log").open("wb")
        started = time.monotonic()
        proc = subprocess.Popen(
            [*CRONSTACK, "run", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            if not wait_ready(sock, proc, 120):
                result.errors.append("never READY")
                return result
            result.ready_s = time.monotonic() - started
            time.sleep(warmup)
            # The window: whole seconds, so every slot in it is one row per task.
            lo = int(time.time()) + 1
            time.sleep(max(0.0, lo - time.time()))
            cpu0 = proc_cpu(proc.pid)
            t0 = time.monotonic()
            hi = lo + int(seconds)
            time.sleep(max(0.0, hi - time.time()))
            cpu1 = proc_cpu(proc.pid)
            result.cpu_per_s = (cpu1 - cpu0) / (time.monotonic() - t0)
            # Runs of the window's last slot need a moment to start and end.
            time.sleep(1.5)
            result.rss_mb = proc_hwm_mb(proc.pid)
            proc.send_signal(signal.SIGTERM)
            result.exit_code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            sock.close()
            log.close()
        rows = asyncio.run(read_rows(db_url, work, lo * 1000, hi * 1000))
        result.running_after_stop = asyncio.run(count_running(db_url, work))
        tally(result, rows, n, lo, hi)
        log_text = (work / "daemon.log").read_text(errors="replace")
        for line in log_text.splitlines():
            if '"level":"error"' in line or '"level":"critical"' in line:
                result.errors.append(line[:300])
        if store == "postgresql":
            asyncio.run(drop_pg(pg_name))
    return result


def tally(result: Result, rows: list[dict[str, Any]], n: int, lo: int, hi: int) -> None:
    result.expected = n * (hi - lo)
    seen: dict[tuple[str, int], int] = {}
    for row in rows:
        key = (row["task"], int(row["scheduled_at"]))
        if row["attempt"] == 1:
            seen[key] = seen.get(key, 0) + 1
        status = row["status"]
        if status == "succeeded":
            result.succeeded += 1
            result.lags_ms.append(float(row["started_at"] - row["scheduled_at"]))
        elif status == "skipped":
            result.skipped += 1
        elif status == "missed":
            result.missed += 1
        elif status != "running":
            result.failed += 1
    result.duplicates = sum(c - 1 for c in seen.values() if c > 1)
    result.missing = result.expected - len(seen)


# --- the bare single-timer peer ----------------------------------------------------------------

PEER = r"""
import asyncio, gc, json, sys, time
n, seconds = int(sys.argv[1]), int(sys.argv[2])
lags = []
def job(slot):
    lags.append((time.time() - slot) * 1000)
async def run(slot):
    job(slot)
async def main():
    loop = asyncio.get_running_loop()
    gc.freeze()
    nxt = int(time.time()) + 2
    end = nxt + seconds
    while nxt < end:
        await asyncio.sleep(max(0.0, nxt - time.time()))
        for _ in range(n):
            loop.create_task(run(nxt))
        nxt += 1
    await asyncio.sleep(0.5)
asyncio.run(main())
json.dump(sorted(lags), sys.stdout)
"""


def run_peer(n: int, seconds: float) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-c", PEER, str(n), str(int(seconds))],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(out.stdout))


# --- loading ----------------------------------------------------------------------------------


def time_check(n: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="cronstack-load-") as tmp:
        work = Path(tmp)
        config = write_config(work, n, "sqlite:///state.db")
        started = time.monotonic()
        proc = subprocess.run(
            [*CRONSTACK, "check", "-c", str(config), "--json", "--next", "1"],
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        return time.monotonic() - started, proc.returncode


# --- report -------------------------------------------------------------------------------------


def pct(data: list[float], q: float) -> float:
    return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="100,1000,10000")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--load", default="1000,10000,100000", help="'' skips the check timing")
    args = parser.parse_args()
    ok = True
    sizes = [int(x) for x in args.tasks.split(",") if x]
    print(f"cronstack run, default config, state store on; {args.seconds:g} s windows")
    header = (
        f"{'store':<10} {'N':>6} {'peer p99':>9} {'p50':>7} {'p99':>8} {'max':>8} {'budget':>7}"
        f" {'ratio':>6} {'skip':>5} {'miss':>5} {'dup':>4} {'gone':>5} {'run':>4}"
        f" {'cpu/s':>6} {'rss MB':>7} {'ready s':>7}"
    )
    print(header)
    for n in sizes:
        peer = run_peer(n, args.seconds)
        peer_p99 = pct(peer, 0.99)
        for store in args.stores.split(","):
            r = run_daemon(store, n, args.seconds, args.warmup)
            budget = P99_BUDGET_MS.get(n, 500.0)
            p99 = r.pct(0.99)
            bad = [
                p99 > budget or p99 != p99,
                r.skipped or r.missed or r.failed or r.duplicates or r.missing,
                r.running_after_stop,
                r.cpu_per_s > CPU_BUDGET,
                r.rss_mb > RSS_BUDGET_MB,
                r.ready_s > READY_BUDGET_S,
                r.exit_code != 0,
            ]
            verdict = "OK" if not any(bad) else "OVER"
            ok = ok and not any(bad)
            print(
                f"{store:<10} {n:>6} {peer_p99:>9.1f} {r.pct(0.5):>7.1f} {p99:>8.1f}"
                f" {r.pct(1.0):>8.1f} {budget:>7.0f} {p99 / peer_p99 if peer_p99 else 0:>6.1f}"
                f" {r.skipped:>5} {r.missed:>5} {r.duplicates:>4} {r.missing:>5}"
                f" {r.running_after_stop:>4} {r.cpu_per_s:>6.3f} {r.rss_mb:>7.1f}"
                f" {r.ready_s:>7.2f}  {verdict}"
                + (f"  exit={r.exit_code}" if r.exit_code != 0 else "")
            )
            for line in r.errors[:5]:
                print("    error:", line)
    print(
        f"budgets: p99 {P99_BUDGET_MS} ms; 0 skipped/missed/duplicate/missing/running;"
        f" cpu <= {CPU_BUDGET} s/s; rss <= {RSS_BUDGET_MB:g} MB; ready <= {READY_BUDGET_S:g} s"
    )
    for n in [int(x) for x in args.load.split(",") if x]:
        took, code = time_check(n)
        budget = LOAD_BUDGET_S.get(n)
        over = budget is not None and took > budget
        ok = ok and not over and code == 0
        note = f"budget <= {budget:g} s" if budget else ""
        print(
            f"check of {n:>7} tasks: {took:6.2f} s ({took / n * 1e6:6.1f} us/task) {note}"
            f"  exit={code}  {'OVER' if over or code else 'OK'}"
        )
    print("all within budget" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
