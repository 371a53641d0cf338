"""Run Command under a real `cronstack run`: nothing of a command outlives the daemon, whether it
stops on SIGTERM or is killed with -9."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.test_service import Daemon, wait_for, write_config, write_task

pytestmark = pytest.mark.slow


def live_members(pgid: int) -> list[int]:
    """Processes of the group that still run (zombies waiting for init to reap them do not)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            found.append(int(name))
    return found


def start_sleeper(tmp_path: Path, shutdown_timeout: str) -> tuple[Daemon, int]:
    """A daemon whose every-second task runs `sleep 60` (and a backgrounded grandchild sleep);
    returns it with the command's process group once that runs."""
    config = write_config(tmp_path, shutdown_timeout=shutdown_timeout)
    pidfile = tmp_path / "pid"
    write_task(
        tmp_path,
        "sleeper",
        {
            "name": "sleeper",
            "schedule": "* * * * * *",
            "function_stack": [
                {
                    "function": "Run Command",
                    "command": ["sh", "-c", f"echo $$ > {pidfile}; sleep 60 & sleep 60"],
                }
            ],
        },
    )
    daemon = Daemon(config)
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the command to start")
    pgid = int(pidfile.read_text())
    # sh and its two sleeps (the guard's watcher has a group of its own).
    wait_for(lambda: len(live_members(pgid)) == 3, timeout=3, what="the command's processes")
    return daemon, pgid


def test_sigterm_ends_the_command_group(tmp_path: Path) -> None:
    """SIGTERM: after shutdown_timeout the run is cancelled and its whole group ended."""
    daemon, pgid = start_sleeper(tmp_path, shutdown_timeout="0.5s")
    try:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(10) == 0
    finally:
        daemon.close()
    assert live_members(pgid) == []
    shutdown = daemon.events("shutdown")[0]
    assert shutdown["cancelled"] == 1


def test_kill_9_leaves_no_process_behind(tmp_path: Path) -> None:
    """SIGKILL of the daemon: its guard kills the command's group within a moment."""
    daemon, pgid = start_sleeper(tmp_path, shutdown_timeout="5s")
    try:
        daemon.signal(signal.SIGKILL)
        daemon.wait_exit(5)
        killed = time.monotonic()
        wait_for(lambda: not live_members(pgid), timeout=2.0, what="the group to be gone")
        assert time.monotonic() - killed < 2.0
        # The watcher is gone too: no process names the dead daemon's guard any more.
        wait_for(lambda: not _guards(daemon.proc.pid), timeout=2.0, what="the watcher to exit")
    finally:
        daemon.close()


def _guards(daemon_pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b") ", 1)[1][:1]
        except (OSError, IndexError):
            continue
        if state != b"Z" and any(a.endswith(b"_command_guard.py") for a in cmdline):
            if str(daemon_pid).encode() in cmdline:
                found.append(int(name))
    return found
