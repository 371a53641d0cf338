"""sd_notify datagrams reach a path socket and an abstract one; the watchdog interval and beat."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from daemon.ops.sdnotify import Notifier, monotonic_usec
from daemon.service import Service


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


def _received(sock: socket.socket) -> list[bytes]:
    """Every datagram already queued on the socket, without waiting for more."""
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


async def _until(check: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_watchdog_pings_every_half_interval_from_the_loop(tmp_path: Path) -> None:
    """WATCHDOG_USEC=200 ms: WATCHDOG=1 every ~100 ms; a loop blocked for 500 ms sends none."""
    path = str(tmp_path / "notify.sock")
    sock = _bind(path)
    sock.setblocking(False)
    service = Service(tmp_path / "config.toml", {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    assert service.notifier.watchdog_interval == 0.1
    pinger = asyncio.create_task(service._watchdog(0.1))
    try:
        seen: list[bytes] = []
        started = time.monotonic()
        await _until(lambda: seen.extend(_received(sock)) or seen.count(b"WATCHDOG=1") >= 5)
        # Five pings take four intervals (the first is immediate); well under a second.
        assert 0.35 <= time.monotonic() - started < 1.0
        # Blocking the loop on purpose: the pinger is a loop task, so nothing may arrive.
        _received(sock)
        time.sleep(0.5)
        assert _received(sock) == []
        # The loop runs again: the overdue ping goes out at once, then the beat resumes.
        seen.clear()
        await _until(lambda: seen.extend(_received(sock)) or seen.count(b"WATCHDOG=1") >= 2)
    finally:
        pinger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinger
        service.notifier.close()
        sock.close()
