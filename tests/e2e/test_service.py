"""`cronstack run` as a real process: fires, reloads, drains on SIGTERM, sd_notify, JSON logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

TICK = {
    "name": "tick",
    "schedule": "* * * * * *",
    "function_stack": [
        {
            "function": "Add Record",
            "table": "ticks",
            "data": {"task": "tick", "at": "{{timestamp}}"},
        }
    ],
}


def write_config(
    root: Path, *, shutdown_timeout: str = "5s", level: str = "info", log_file: str = ""
) -> Path:
    (root / "tasks").mkdir(exist_ok=True)
    (root / "init.sql").write_text(
        "CREATE TABLE IF NOT EXISTS ticks "
        "(id INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, at INTEGER);\n"
    )
    config = root / "config.toml"
    config.write_text(
        f"""
[daemon]
shutdown_timeout = "{shutdown_timeout}"
tasks = ["tasks/*.json"]

[datasources.main]
url = "sqlite:///data.db"
init_sql = ["init.sql"]

[log]
level = "{level}"
file = "{log_file}"

[admin]
listen = ""
"""
    )
    return config


def write_task(root: Path, name: str, task: dict[str, Any]) -> None:
    (root / "tasks" / f"{name}.json").write_text(json.dumps(task))


class Daemon:
    """A `cronstack run` child process whose stdout lines are collected as they arrive."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.root = config.parent
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        full_env.pop("CRONSTACK_CONFIG", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "run", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=Path(__file__).resolve().parents[2],
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if name is None or doc.get("event") == name:
                out.append(doc)
        return out

    def rows(self, task: str | None = None) -> int:
        db = self.root / "data.db"
        if not db.exists():
            return 0
        con = sqlite3.connect(db, timeout=5)
        try:
            sql = "SELECT count(*) FROM ticks" + (" WHERE task = ?" if task else "")
            return int(con.execute(sql, (task,) if task else ()).fetchone()[0])
        except sqlite3.OperationalError:
            return 0
        finally:
            con.close()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(2)
        return code

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(2)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def wait_for(check: Callable[[], Any], timeout: float = 8.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.05)
    yield sock
    sock.close()


def drain_notify(sock: socket.socket, into: list[str]) -> list[str]:
    while True:
        try:
            into.append(sock.recv(4096).decode())
        except TimeoutError:
            return into


def assert_json_lines(lines: list[str]) -> None:
    assert lines
    for line in lines:
        doc = json.loads(line)
        assert isinstance(doc, dict), line
        assert {"ts", "level", "event"} <= doc.keys(), line


def test_run_fires_reloads_and_notifies(tmp_path: Path, notify_socket: socket.socket) -> None:
    """Fires once a second; a valid SIGHUP adds a task, an invalid one is rejected with every
    error while the old tasks keep firing; SIGTERM exits 0; sd_notify sees the whole story."""
    config = write_config(tmp_path)
    write_task(tmp_path, "tick", TICK)
    daemon = Daemon(config, {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    notes: list[str] = []
    try:
        wait_for(lambda: daemon.rows("tick") >= 1, what="first tick row")
        first = time.monotonic()
        start_rows = daemon.rows("tick")
        wait_for(lambda: daemon.rows("tick") >= start_rows + 2, what="two more ticks")
        rate = (daemon.rows("tick") - start_rows) / (time.monotonic() - first)
        assert 0.5 <= rate <= 3.0, rate  # about once per second

        second = {**TICK, "name": "second"}
        second["function_stack"] = [
            {"function": "Add Record", "table": "ticks", "data": {"task": "second"}}
        ]
        write_task(tmp_path, "second", second)
        daemon.signal(signal.SIGHUP)
        reload = wait_for(lambda: daemon.events("reload"), what="reload event")[0]
        assert reload["added"] == ["second"] and reload["removed"] == []
        wait_for(lambda: daemon.rows("second") >= 1, what="rows from the added task")

        # Two problems at once: both must be reported, and nothing swapped.
        write_task(tmp_path, "bad", {"name": "bad", "schedule": "61 * * * *", "function_stack": []})
        write_task(
            tmp_path,
            "worse",
            {"name": "worse", "schedule": "* 25 * * *", "function_stack": []},
        )
        daemon.signal(signal.SIGHUP)
        rejected = wait_for(lambda: daemon.events("reload_rejected"), what="rejection")[0]
        joined = "\n".join(rejected["errors"])
        assert "bad.json" in joined and "worse.json" in joined, joined
        ticks, seconds = daemon.rows("tick"), daemon.rows("second")
        wait_for(
            lambda: daemon.rows("tick") > ticks and daemon.rows("second") > seconds,
            what="old tasks still firing after a rejected reload",
        )

        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(10) == 0
        assert daemon.events("shutdown")
        assert_json_lines(daemon.lines)
        drain_notify(notify_socket, notes)
    finally:
        daemon.close()
    kinds = [n.split("\n")[0] for n in notes]
    assert [k for k in kinds if k != "WATCHDOG=1" and not k.startswith("STATUS=")] == [
        "READY=1",
        "RELOADING=1",
        "READY=1",
        "RELOADING=1",
        "READY=1",
        "STOPPING=1",
    ]
    reloading = [n for n in notes if n.startswith("RELOADING=1")]
    assert all("\nMONOTONIC_USEC=" in n for n in reloading)
    assert any("STATUS=" in n for n in notes)


def test_watchdog_pings_at_half_watchdog_usec(tmp_path: Path, notify_socket: socket.socket) -> None:
    """WATCHDOG_USEC=200 ms: the running daemon sends WATCHDOG=1 about every 100 ms."""
    config = write_config(tmp_path)
    write_task(tmp_path, "tick", TICK)
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"}
    daemon = Daemon(config, env)
    notes: list[str] = []
    try:
        wait_for(
            lambda: any(n.startswith("READY=1") for n in drain_notify(notify_socket, notes)),
            what="READY=1",
        )
        notes.clear()
        started = time.monotonic()
        wait_for(
            lambda: sum(n == "WATCHDOG=1" for n in drain_notify(notify_socket, notes)) >= 5,
            timeout=3.0,
            what="five WATCHDOG=1",
        )
        # Five pings are four intervals after the first (~0.4 s): far below the 30 s default.
        assert time.monotonic() - started < 2.0
    finally:
        daemon.close()


def test_sighup_reopens_log_file(tmp_path: Path) -> None:
    """The log file renamed away (logrotate) and SIGHUP: new lines go to a new file by that name."""
    config = write_config(tmp_path, log_file="logs/cronstack.log")
    write_task(tmp_path, "tick", TICK)
    log_file = tmp_path / "logs" / "cronstack.log"
    rotated = tmp_path / "logs" / "cronstack.log.1"
    daemon = Daemon(config)
    try:
        wait_for(lambda: log_file.exists() and "started" in log_file.read_text(), what="started")
        log_file.rename(rotated)
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.events("reload"), what="reload event")
        wait_for(lambda: log_file.exists() and '"reload"' in log_file.read_text(), what="new file")
        assert_json_lines(log_file.read_text().splitlines())
        old = rotated.read_text()
        assert '"started"' in old and '"reload"' not in old
        # Later lines keep landing in the new file only.
        size = log_file.stat().st_size
        wait_for(lambda: log_file.stat().st_size > size, what="more lines in the new file")
        assert rotated.read_text() == old
    finally:
        daemon.close()


def test_sigterm_with_long_run_exits_within_shutdown_timeout(tmp_path: Path) -> None:
    """A 30 s run in flight: SIGTERM exits 0 within shutdown_timeout + 1 s, run cancelled."""
    config = write_config(tmp_path, shutdown_timeout="1s")
    long_task = {
        "name": "long",
        "schedule": "* * * * * *",
        "function_stack": [
            {"function": "Add Record", "table": "ticks", "data": {"task": "long"}},
            {"function": "Sleep", "duration": "30s"},
        ],
    }
    write_task(tmp_path, "long", long_task)
    daemon = Daemon(config)
    try:
        wait_for(lambda: daemon.rows("long") >= 1, what="the long run to start")
        sent = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(5) == 0
        assert time.monotonic() - sent <= 1.0 + 1.0
    finally:
        daemon.close()
    shutdown = daemon.events("shutdown")[0]
    assert shutdown["cancelled"] == 1
    cancelled = [e for e in daemon.events("run_finished") if e["status"] == "cancelled"]
    assert len(cancelled) == 1 and cancelled[0]["task"] == "long"
    assert_json_lines(daemon.lines)


def test_second_signal_stops_at_once(tmp_path: Path) -> None:
    """A second SIGTERM during the drain cancels the runs without waiting out the timeout."""
    config = write_config(tmp_path, shutdown_timeout="30s")
    write_task(
        tmp_path,
        "long",
        {
            "name": "long",
            "schedule": "* * * * * *",
            "function_stack": [
                {"function": "Add Record", "table": "ticks", "data": {"task": "long"}},
                {"function": "Sleep", "duration": "30s"},
            ],
        },
    )
    daemon = Daemon(config)
    try:
        wait_for(lambda: daemon.rows("long") >= 1, what="the long run to start")
        daemon.signal(signal.SIGTERM)
        wait_for(lambda: daemon.events("shutdown_started"), what="drain to begin")
        sent = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(5) == 0
        assert time.monotonic() - sent < 2.0
    finally:
        daemon.close()
    assert daemon.events("shutdown")[0]["forced"] is True


def test_invalid_config_at_start_exits_2(tmp_path: Path) -> None:
    """Every error goes to stderr and the process exits 2 without starting."""
    config = write_config(tmp_path)
    write_task(tmp_path, "a", {"name": "a", "schedule": "99 * * * *", "function_stack": []})
    write_task(tmp_path, "b", {"name": "b", "schedule": "* * 32 * *", "function_stack": []})
    daemon = Daemon(config)
    try:
        assert daemon.wait_exit(10) == 2
        err = daemon.stderr()
    finally:
        daemon.close()
    assert "a.json" in err and "b.json" in err, err
    assert not daemon.events("started")
    assert_json_lines(daemon.lines)
