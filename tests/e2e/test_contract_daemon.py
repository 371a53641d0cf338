"""The daemon side of the contract as a black box: real `cronstack run` processes, `history --json`,
`pause` / `resume`, signals and the admin listener — the way an acceptance test drives it."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_service import Daemon, assert_json_lines, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HISTORY_KEYS = {
    "run_id",
    "task",
    "status",
    "trigger",
    "attempt",
    "scheduled_at",
    "started_at",
    "finished_at",
    "error",
}


def setup(
    root: Path, tasks: list[dict[str, Any]], daemon: str = "", admin: str = 'listen = ""'
) -> Path:
    (root / "tasks").mkdir(parents=True, exist_ok=True)
    (root / "init.sql").write_text(
        "CREATE TABLE IF NOT EXISTS marks"
        " (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT, v TEXT);\n"
    )
    for task in tasks:
        (root / "tasks" / f"{task['name']}.json").write_text(json.dumps(task))
    config = root / "config.toml"
    config.write_text(
        f"""
[daemon]
shutdown_timeout = "1s"
tasks = ["tasks/*.json"]
{daemon}

[datasources.main]
url = "sqlite:///data.db"
init_sql = ["init.sql"]

[admin]
{admin}
"""
    )
    return config


def cli(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("CRONSTACK_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=30,
    )


def history(config: Path, task: str | None = None) -> list[dict[str, Any]]:
    done = cli(config, "history", *([task] if task else []), "--json", "--limit", "500")
    assert done.returncode == 0, done.stderr
    runs: list[dict[str, Any]] = json.loads(done.stdout)
    return runs


def marks(root: Path, what: str) -> list[str]:
    con = sqlite3.connect(root / "data.db", timeout=5)
    try:
        return [
            r[0] for r in con.execute("SELECT v FROM marks WHERE what = ? ORDER BY id", (what,))
        ]
    finally:
        con.close()


def rfc3339(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


def test_history_states_retries_and_shutdown(tmp_path: Path) -> None:
    """One daemon, the contract's run states end to end: retry attempts as their own rows with
    on_failure once, overlap `skipped`, `timed_out`, paused slots `missed` (reason paused) with
    resume noticed within 5 s, a SIGTERM'd long run `cancelled` in history after exit 0, JSON
    log lines whose run-level events carry task and run_id (and `step` for a failed run)."""
    flaky = {
        "name": "flaky",
        "schedule": "* * * * * *",
        "retry": {"max_attempts": 3, "initial_delay": "50ms", "max_delay": "100ms"},
        "function_stack": [
            {
                "function": "Add Record",
                "table": "marks",
                "data": {"what": "attempt", "v": "{{task.slot_id}}|{{task.attempt}}"},
            },
            {"function": "Throw Error", "message": "boom"},
        ],
        "on_failure": [
            {
                "function": "Add Record",
                "table": "marks",
                "data": {"what": "alert", "v": "{{task.slot_id}}"},
            }
        ],
    }
    slow = {
        "name": "slow",
        "schedule": "* * * * * *",
        "function_stack": [{"function": "Sleep", "duration": "8s"}],
    }
    limited = {
        "name": "limited",
        "schedule": "* * * * * *",
        "timeout": "200ms",
        "function_stack": [{"function": "Sleep", "duration": "5s"}],
    }
    tick = {
        "name": "tick",
        "schedule": "* * * * * *",
        "function_stack": [{"function": "Log", "message": "tick"}],
    }
    config = setup(tmp_path, [flaky, slow, limited, tick])
    daemon = Daemon(config)
    try:
        wait_for(lambda: daemon.events("started"), 10, "the daemon to start")
        assert cli(config, "pause", "tick").returncode == 0
        wait_for(
            lambda: any(r["status"] == "missed" for r in history(config, "tick")),
            5,
            "a paused slot recorded missed",
        )
        wait_for(
            lambda: any(r["status"] == "skipped" for r in history(config, "slow")),
            5,
            "an overlap skip",
        )
        wait_for(
            lambda: any(r["status"] == "timed_out" for r in history(config, "limited")),
            5,
            "a timeout",
        )
        assert cli(config, "resume", "tick").returncode == 0
        resumed = time.time()

        def ran_after_resume() -> bool:
            return any(
                r["status"] == "succeeded" and rfc3339(r["scheduled_at"]).timestamp() >= resumed
                for r in history(config, "tick")
            )

        wait_for(ran_after_resume, 5, "resume noticed within 5 s")

        # SIGTERM while `slow` runs past shutdown_timeout (1 s) is cancelled, not left running.
        def fresh_slow_run() -> bool:
            # Started within the last 2 s: ~5 s to go when the 1 s drain ends, even when each
            # `cronstack history` call takes a second or two on a loaded machine.
            since = time.time() - 2.0
            return any(
                r["status"] == "running" and rfc3339(r["started_at"]).timestamp() >= since
                for r in history(config, "slow")
            )

        wait_for(
            fresh_slow_run,
            12,
            "a fresh slow run",
        )
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(10) == 0
    finally:
        daemon.close()

    runs = history(config)
    for run in runs:
        assert HISTORY_KEYS <= run.keys()
        assert run["status"] != "running", run  # every final state reached the store before exit
        for key in ("scheduled_at", "started_at", "finished_at"):
            if run[key] is not None:
                rfc3339(run[key])
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_task[run["task"]].append(run)

    missed = [r for r in by_task["tick"] if r["status"] == "missed"]
    assert missed and all(r["reason"] == "paused" for r in missed)
    skipped = [r for r in by_task["slow"] if r["status"] == "skipped"]
    assert skipped and all(r["started_at"] is None for r in skipped)
    assert any(r["status"] == "cancelled" for r in by_task["slow"])
    timed_out = next(r for r in by_task["limited"] if r["status"] == "timed_out")
    assert timed_out["error"]["type"] == "TimeoutError"

    # Each slot of `flaky` that finished: attempt 1 by schedule, 2 and 3 by retry, each its own
    # run_id, the same scheduled_at; on_failure ran once per slot, after the third.
    slots: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in by_task["flaky"]:
        slots[run["scheduled_at"]].append(run)
    complete = [
        rows
        for rows in slots.values()
        if any(r["attempt"] == 3 and r["status"] == "failed" for r in rows)
    ]
    assert complete
    for rows in complete:
        rows.sort(key=lambda r: r["attempt"])
        assert [r["attempt"] for r in rows] == [1, 2, 3]
        assert [r["trigger"] for r in rows] == ["schedule", "retry", "retry"]
        assert [r["status"] for r in rows] == ["failed"] * 3
        assert len({r["run_id"] for r in rows}) == 3
    alerts = marks(tmp_path, "alert")
    assert len(alerts) == len(set(alerts)) == len(complete)
    attempts = marks(tmp_path, "attempt")
    for slot_id in alerts:  # one slot_id across the slot's attempts
        assert [a for a in attempts if a.startswith(slot_id + "|")] == [
            f"{slot_id}|{n}" for n in (1, 2, 3)
        ]

    assert_json_lines(daemon.lines)
    finished = daemon.events("run_finished")
    assert finished and all(e.get("task") and e.get("run_id") for e in finished)
    assert all(e.get("task") and e.get("run_id") for e in daemon.events("task_log"))
    failed = [e for e in finished if e["task"] == "flaky"]
    assert failed and all(e["step"] == "function_stack[1]" for e in failed)


def test_history_marks_a_dead_daemons_run_interrupted(tmp_path: Path) -> None:
    """`kill -9` of the only daemon: no replica is left to notice, yet `history` shows the run
    `interrupted` once its lease timeout has passed, never `running` forever."""
    long_task = {
        "name": "long",
        "schedule": "* * * * * *",
        "function_stack": [{"function": "Sleep", "duration": "30s"}],
    }
    config = setup(tmp_path, [long_task], daemon='lease_timeout = "1500ms"')
    daemon = Daemon(config)
    try:
        wait_for(
            lambda: any(r["status"] == "running" for r in history(config)), 10, "a running row"
        )
        daemon.proc.kill()
        daemon.proc.wait(5)
        killed = time.monotonic()
        runs = wait_for(
            lambda: [r for r in history(config) if r["status"] == "interrupted"],
            6,
            "the run interrupted",
        )
        assert time.monotonic() - killed < 4.0
    finally:
        daemon.close()
    assert runs[0]["task"] == "long" and runs[0]["finished_at"] is not None
    assert not [r for r in history(config) if r["status"] == "running"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=3
        ) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_admin_listener_without_token_and_address_in_use(tmp_path: Path) -> None:
    """No token: /healthz and /readyz answer, /metrics and the API do not, a warning is logged.
    A second daemon on the same address stops with a clear error instead of running without it."""
    port = _free_port()
    tick = {"name": "tick", "schedule": "* * * * * *", "function_stack": []}
    config = setup(tmp_path / "a", [tick], admin=f'listen = "127.0.0.1:{port}"')
    daemon = Daemon(config, {"CRONSTACK_ADMIN_TOKEN": ""})
    try:
        wait_for(lambda: daemon.events("started"), 10, "the daemon to start")
        base = f"http://127.0.0.1:{port}"
        assert _get(base + "/healthz") == 200
        assert _get(base + "/readyz") == 200
        for path in ("/metrics", "/api/tasks", "/api/runs"):
            assert _get(base + path) in (401, 403), path
            assert _get(base + path, "guess") in (401, 403), path
        assert any(e["level"] == "warning" for e in daemon.events("admin_api_disabled"))

        other = setup(tmp_path / "b", [tick], admin=f'listen = "127.0.0.1:{port}"')
        env = {**os.environ, "CRONSTACK_ADMIN_TOKEN": "t"}
        env.pop("CRONSTACK_CONFIG", None)
        second = subprocess.run(
            [sys.executable, "-m", "daemon.cli", "run", "-c", str(other)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=20,
        )
        assert second.returncode != 0
        assert f"127.0.0.1:{port}" in second.stderr and "in use" in second.stderr
        assert_json_lines(second.stdout.splitlines())
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(10) == 0
    finally:
        daemon.close()
