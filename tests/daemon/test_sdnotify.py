"""sd_notify datagrams reach a path socket and an abstract one; the watchdog interval."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from daemon.sdnotify import Notifier, monotonic_usec


def _bind(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2)
    return sock


def test_path_socket_receives_ready_reloading_stopping(tmp_path: Path) -> None:
    """READY, RELOADING with MONOTONIC_USEC, STOPPING arrive as datagrams on a path socket."""
    path = str(tmp_path / "notify.sock")
    sock = _bind(path)
    n = Notifier({"NOTIFY_SOCKET": path})
    try:
        assert n.enabled
        before = monotonic_usec()
        n.ready("3 tasks")
        n.reloading()
        n.stopping()
        assert sock.recv(4096).decode().split("\n") == ["READY=1", "STATUS=3 tasks"]
        reloading = sock.recv(4096).decode().split("\n")
        assert reloading[0] == "RELOADING=1"
        usec = int(reloading[1].removeprefix("MONOTONIC_USEC="))
        assert before <= usec <= monotonic_usec()
        assert sock.recv(4096) == b"STOPPING=1"
    finally:
        n.close()
        sock.close()


def test_abstract_socket() -> None:
    """`@name` means the abstract namespace."""
    name = f"cronstack-test-{uuid.uuid4().hex}"
    sock = _bind("\0" + name)
    n = Notifier({"NOTIFY_SOCKET": "@" + name})
    try:
        assert n.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        n.close()
        sock.close()


def test_without_socket_nothing_is_sent() -> None:
    """Not started by systemd: every call is a no-op."""
    n = Notifier({})
    assert not n.enabled and not n.ready() and n.watchdog_interval is None


def test_unreachable_socket_does_not_raise(tmp_path: Path) -> None:
    """A socket that went away is logged, not fatal."""
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).ready()


def test_watchdog_interval_is_half_and_for_this_pid() -> None:
    """WATCHDOG_USEC=30s gives a 15 s ping; another process's WATCHDOG_PID disables it."""
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).watchdog_interval == 1.0
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
