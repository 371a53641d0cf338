"""Several `cronstack run` processes on one PostgreSQL state store: each slot exactly once,
leases and interrupted runs, dropped connections and a restarted server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import fresh_pg_database, run_sync

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test (state store and task table)."""
    yield from fresh_pg_database("cronstack_replicas")


def query(url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return run_sync(go())


def write_config(root: Path, url: str, tasks: list[dict[str, Any]], lease: str = "30s") -> Path:
    (root / "tasks").mkdir(parents=True, exist_ok=True)
    # Created here, not by init_sql: replicas starting together would race on CREATE TABLE.
    # `at`: when the side effect happened, by the database clock.
    query(
        url,
        "CREATE TABLE IF NOT EXISTS slots"
        " (slot_id text PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())",
    )
    for task in tasks:
        (root / "tasks" / f"{task['name']}.json").write_text(json.dumps(task))
    config = root / "config.toml"
    config.write_text(
        f"""
[daemon]
tasks = ["tasks/*.json"]
lease_timeout = "{lease}"
shutdown_timeout = "2s"

[datasources.main]
url = "{url}"

[admin]
listen = ""
"""
    )
    return config


def insert_slot(name: str, schedule: str = "* * * * * *", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "schedule": schedule,
        "function_stack": [
            *extra.pop("before", []),
            {"function": "Add Record", "table": "slots", "data": {"slot_id": "{{task.slot_id}}"}},
        ],
        **extra,
    }


class Daemon:
    """A `cronstack run` child; its output goes to a file (no pipe to fill up)."""

    def __init__(self, config: Path, tag: str, env: dict[str, str] | None = None) -> None:
        self.log = config.parent / f"{tag}.log"
        full = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        full.pop("CRONSTACK_CONFIG", None)
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "daemon.cli", "run", "-c", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full,
                cwd=ROOT,
            )
        self.instance = f"{socket.gethostname()}:{self.proc.pid}"

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text().splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("event") == name:
                found.append(doc)
        return found

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(5)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def started(d: Daemon) -> bool:
    return bool(d.events("started"))


def check_every_slot_once(url: str, first: int, last: int) -> dict[str, int]:
    """Every second in [first, last] has its slot row in the task table, exactly one run row,
    and that run succeeded (a duplicate execution would have failed on the primary key)."""
    runs = query(
        url,
        "SELECT slot_id, status, instance FROM cronstack_runs WHERE task = 'tick'"
        " AND scheduled_at BETWEEN $1 AND $2",
        first * 1000,
        last * 1000,
    )
    inserted = {r["slot_id"] for r in query(url, "SELECT slot_id FROM slots")}
    by_slot: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_slot.setdefault(r["slot_id"], []).append(r)
    per_instance: dict[str, int] = {}
    for second in range(first, last + 1):
        slot = f"tick@{second * 1000}"
        assert slot in inserted, f"slot {slot} never ran"
        assert [r["status"] for r in by_slot.get(slot, [])] == ["succeeded"], slot
        inst = by_slot[slot][0]["instance"]
        per_instance[inst] = per_instance.get(inst, 0) + 1
    return per_instance


@pytest.mark.parametrize("offsets", [("0", "0", "0"), ("0", "90")], ids=["three", "one-fast"])
def test_replicas_run_each_slot_exactly_once(
    tmp_path: Path, database: str, daemons: list[Daemon], offsets: tuple[str, ...]
) -> None:
    """Two or three processes on one store (one 90 s fast): every slot ran exactly once, on time,
    and with three the tasks' runs are shared (each replica claims its share of the tasks)."""
    others = [insert_slot(f"tock{i}") for i in range(8)]
    config = write_config(tmp_path, database, [insert_slot("tick"), *others])
    for i, offset in enumerate(offsets):
        daemons.append(Daemon(config, f"d{i}", {"CRONSTACK_CLOCK_OFFSET": offset}))
    for d in daemons:
        wait_for(partial(started, d), 10, "the daemons to start")
    first = int(time.time()) + 1
    time.sleep(10 if len(offsets) == 3 else 6)
    last = int(time.time()) - 1
    for d in daemons:
        assert d.stop() == 0
    per_instance = check_every_slot_once(database, first, last)
    if len(offsets) == 3:
        runs_by = query(database, "SELECT DISTINCT instance FROM cronstack_runs")
        assert len(runs_by) >= 2, (per_instance, runs_by)  # the work really is shared
    else:
        # The fast one measured the database clock and fires on it, not 90 s early.
        offsets_seen = [e["offset_s"] for e in daemons[1].events("clock_offset")]
        assert offsets_seen and abs(offsets_seen[0] + 90) < 1, offsets_seen
        assert daemons[1].events("clock_offset")[0]["level"] == "warning"
    assert_on_time(database)


def assert_on_time(url: str) -> None:
    """Every run started, and every slot's side effect happened, at its slot by the database
    clock (the test host's): never before it, and at most a couple of seconds after."""
    # Rows without a start are fires that never ran (a replica's share cancelled at shutdown).
    runs = query(
        url,
        "SELECT slot_id, scheduled_at, started_at FROM cronstack_runs WHERE started_at IS NOT NULL",
    )
    assert runs
    for r in runs:
        late = r["started_at"] - r["scheduled_at"]
        assert -100 <= late <= 2000, r
    effects = query(
        url,
        "SELECT slot_id, (extract(epoch FROM at) * 1000)::bigint AS at_ms FROM slots",
    )
    assert effects
    for e in effects:
        late = e["at_ms"] - int(e["slot_id"].split("@")[1])
        assert -100 <= late <= 2000, e


def test_fast_replica_alone_fires_on_the_database_clock(
    tmp_path: Path, database: str, daemons: list[Daemon]
) -> None:
    """A lone process 90 s fast runs its slots when the database clock reaches them."""
    config = write_config(tmp_path, database, [insert_slot("tick")])
    d = Daemon(config, "fast", {"CRONSTACK_CLOCK_OFFSET": "90"})
    daemons.append(d)
    wait_for(lambda: started(d), 10, "the daemon to start")
    first = int(time.time()) + 1
    time.sleep(3.5)
    last = int(time.time()) - 1
    assert d.stop() == 0
    assert check_every_slot_once(database, first, last) == {d.instance: last - first + 1}
    assert_on_time(database)
    # Nothing was claimed ahead of the database clock, and the backstop never had to refuse.
    ahead = query(
        database,
        "SELECT count(*) AS n FROM cronstack_runs WHERE scheduled_at > $1",
        (last + 2) * 1000,
    )
    assert ahead[0]["n"] == 0
    assert not d.events("slot_not_due_yet")


def test_killed_owner_run_becomes_interrupted(
    tmp_path: Path, database: str, daemons: list[Daemon]
) -> None:
    """`kill -9` of the process running a 30 s run: the run is `interrupted` within the lease
    timeout, and the task's next slot runs on the survivor."""
    slow = {
        "name": "slow",
        "schedule": "* * * * * *",
        "function_stack": [{"function": "Sleep", "duration": "30s"}],
    }
    config = write_config(tmp_path, database, [slow], lease="1500ms")
    daemons.extend([Daemon(config, "a"), Daemon(config, "b")])
    for d in daemons:
        wait_for(partial(started, d), 10, "the daemons to start")

    def running() -> list[dict[str, Any]]:
        return query(
            database,
            "SELECT run_id, instance FROM cronstack_runs WHERE status = 'running'",
        )

    run = wait_for(running, 5, "a running row")[0]
    owner = next(d for d in daemons if d.instance == run["instance"])
    survivor = next(d for d in daemons if d is not owner)
    # Skip overlap holds across the processes while the run lives.
    time.sleep(1.5)
    assert len(running()) == 1
    os.kill(owner.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    owner.proc.wait(5)

    def interrupted() -> bool:
        rows = query(database, "SELECT status FROM cronstack_runs WHERE run_id = $1", run["run_id"])
        return rows[0]["status"] == "interrupted"

    wait_for(interrupted, 4, "the dead owner's run to be marked interrupted")
    # lease 1.5 s + one heartbeat period (0.5 s) + polling slack
    assert time.monotonic() - killed < 3.0
    wait_for(
        lambda: [r for r in running() if r["instance"] == survivor.instance],
        3,
        "the next slot to run on the survivor",
    )
    assert survivor.stop() == 0


def test_terminated_connections_reconnect_and_record(
    tmp_path: Path, database: str, daemons: list[Daemon]
) -> None:
    """`pg_terminate_backend` on all the daemon's connections mid-run: the run's final state is
    still written and later runs succeed (the pools reconnect)."""
    task = insert_slot("tick", "*/2 * * * * *", before=[{"function": "Sleep", "duration": "1s"}])
    config = write_config(tmp_path, database, [task])
    d = Daemon(config, "d")
    daemons.append(d)
    wait_for(lambda: started(d), 10, "the daemon to start")
    run = wait_for(
        lambda: query(database, "SELECT run_id FROM cronstack_runs WHERE status = 'running'"),
        4,
        "a running row",
    )[0]
    killed = query(
        database,
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity"
        " WHERE application_name = 'cronstack' AND datname = current_database()",
    )[0]["n"]
    assert killed >= 1
    wait_for(
        lambda: query(
            database,
            "SELECT 1 FROM cronstack_runs WHERE run_id = $1 AND status <> 'running'",
            run["run_id"],
        ),
        4,
        "the interrupted-connection run's final state",
    )
    after = int(time.time() * 1000)
    wait_for(
        lambda: query(
            database,
            "SELECT 1 FROM cronstack_runs WHERE status = 'succeeded' AND started_at > $1",
            after,
        ),
        6,
        "a later run to succeed",
    )
    assert d.stop() == 0


@pytest.fixture
def own_cluster() -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A throwaway PostgreSQL cluster on a free port: (url, stop, start)."""
    if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL server binaries not available")
    # Not under tmp_path: the `postgres` user cannot enter pytest's private temp folder.
    base = Path(tempfile.mkdtemp(prefix="cronstack-pg-"))
    base.chmod(0o755)
    data = base / "pgdata"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    data.chmod(0o700)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def pg(*args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    pg(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    opts = f"-p {port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off"
    log = str(data / "server.log")

    def start() -> None:
        pg(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", log, "-w", "start")

    def stop() -> None:
        pg(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")

    start()
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", stop, start
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data),
             "-m", "immediate", "stop"],
            capture_output=True,
            timeout=30,
        )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_restart_is_survived(
    tmp_path: Path,
    own_cluster: tuple[str, Callable[[], None], Callable[[], None]],
    daemons: list[Daemon],
) -> None:
    """PostgreSQL restarted under a running daemon: slots in the outage are recorded failed or
    missed with a reason, and firing resumes by itself."""
    url, stop, start = own_cluster
    config = write_config(tmp_path / "conf", url, [insert_slot("tick")])
    d = Daemon(config, "d")
    daemons.append(d)
    wait_for(lambda: started(d), 10, "the daemon to start")
    wait_for(
        lambda: query(url, "SELECT 1 FROM cronstack_runs WHERE status = 'succeeded'"),
        4,
        "a first run",
    )
    stop()
    down_from = int(time.time())
    time.sleep(2.5)
    start()
    up_at = int(time.time())
    wait_for(
        lambda: query(
            url,
            "SELECT 1 FROM cronstack_runs WHERE status = 'succeeded' AND scheduled_at > $1",
            (up_at + 1) * 1000,
        ),
        8,
        "firing to resume",
    )
    time.sleep(1.0)  # the write-behind queue catches up
    assert d.stop() == 0
    rows = query(
        url,
        "SELECT scheduled_at, status, reason, error FROM cronstack_runs"
        " WHERE scheduled_at BETWEEN $1 AND $2 ORDER BY scheduled_at",
        (down_from + 1) * 1000,
        up_at * 1000,
    )
    assert rows, "the outage left no rows"
    for r in rows:
        assert r["status"] in ("missed", "failed", "succeeded"), r
        if r["status"] == "missed":
            assert "state store unavailable" in r["reason"]
        if r["status"] == "failed":
            assert r["error"]["type"] == "DatabaseError"
    assert any(r["status"] != "succeeded" for r in rows)
