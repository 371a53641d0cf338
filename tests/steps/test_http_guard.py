"""The private-network guard: every refused destination is refused before any connection."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from daemon.core.netpolicy import NetworkPolicy, parse_ip_literal, why_blocked
from daemon.resources.bundle import Resources
from daemon.resources.http.client import HttpClient
from tests.steps.helpers import run, step


class ConnectionRecorder:
    """A raw TCP listener on loopback (IPv4 and, when available, IPv6) counting every
    connection it accepts: the proof that a refused request never reached it."""

    def __init__(self) -> None:
        self.connections = 0
        self.servers: list[asyncio.Server] = []
        self.port = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def start(self) -> None:
        v4 = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = v4.sockets[0].getsockname()[1]
        self.servers.append(v4)
        try:
            self.servers.append(await asyncio.start_server(self._accept, "::1", self.port))
        except OSError:
            pass  # no IPv6 loopback here; the v6 cases are still refused before connecting

    async def close(self) -> None:
        for srv in self.servers:
            srv.close()
            await srv.wait_closed()


@pytest.fixture
async def recorder() -> AsyncIterator[ConnectionRecorder]:
    rec = ConnectionRecorder()
    await rec.start()
    yield rec
    await rec.close()


async def fetch(client: HttpClient, url: str) -> dict[str, Any] | None:
    result = await run(
        [step("External API Request", url=url, retry={"max_attempts": 1})],
        resources=Resources(http=client),
    )
    return result.error


def matrix(port: int) -> list[tuple[str, str]]:
    return [
        (f"http://127.0.0.1:{port}/", "loopback"),
        (f"http://localhost:{port}/", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        (f"http://[::1]:{port}/", "loopback"),
        (f"http://[::ffff:127.0.0.1]:{port}/", "loopback"),
        (f"http://2130706433:{port}/", "127.0.0.1"),
        (f"http://0x7f.1:{port}/", "127.0.0.1"),
        ("http://10.0.0.1/", "private"),
        (f"http://api.example.test:{port}/", "loopback"),
    ]


async def test_guard_matrix_refuses_before_connecting(recorder: ConnectionRecorder) -> None:
    """With default settings each private destination is refused with a 'blocked' HttpError
    naming the rule, promptly, and the loopback listener never sees a connection."""
    client = HttpClient(resolver_overrides={"api.example.test": ["127.0.0.1"]})
    loop = asyncio.get_running_loop()
    try:
        for url, reason in matrix(recorder.port):
            start = loop.time()
            error = await fetch(client, url)
            assert error is not None, url
            assert error["type"] == "HttpError", (url, error)
            assert error["message"].startswith("blocked: "), (url, error)
            assert "block_private_networks" in error["message"], (url, error)
            assert reason in error["message"], (url, error)
            assert loop.time() - start < 0.5, url  # no connect attempt, no timeout
    finally:
        await client.close()
    assert recorder.connections == 0


async def test_redirect_to_blocked_address_is_refused(recorder: ConnectionRecorder) -> None:
    """A 302 from an allowed server to a blocked address (or to a name resolving to one) is
    refused at that hop; the blocked listener receives nothing."""

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/go", redirect)
    app.router.add_get("/ok", ok)
    srv = TestServer(app, host="127.0.0.1", port=0)
    await srv.start_server()
    client = HttpClient(
        allow_hosts=[f"127.0.0.1:{srv.port}"],
        resolver_overrides={"evil.example.test": ["127.0.0.1"]},
    )
    try:
        for target in (
            f"http://127.0.0.1:{recorder.port}/",
            f"http://evil.example.test:{recorder.port}/",
            "http://169.254.169.254/latest/meta-data",
        ):
            error = await fetch(client, str(srv.make_url("/go").with_query(to=target)))
            assert error is not None and error["message"].startswith("blocked: "), error
        # An allowed hop is followed.
        good = await run(
            [step("External API Request", url=str(srv.make_url("/go").with_query(to="/ok")))],
            resources=Resources(http=client),
        )
        assert good.status == "succeeded", good.error
    finally:
        await client.close()
        await srv.close()
    assert recorder.connections == 0


async def test_redirects_not_followed_when_disabled() -> None:
    """With follow_redirects off, a 302 is the response (and so a failed step)."""

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    app = web.Application()
    app.router.add_get("/go", redirect)
    srv = TestServer(app, host="127.0.0.1", port=0)
    await srv.start_server()
    client = HttpClient(allow_hosts=["127.0.0.0/8"], follow_redirects=False)
    try:
        error = await fetch(client, str(srv.make_url("/go")))
    finally:
        await client.close()
        await srv.close()
    assert error is not None and error["status"] == 302


async def test_allow_hosts_opens_exactly_what_it_names(recorder: ConnectionRecorder) -> None:
    """host:port, CIDR and host-name entries open those destinations and nothing else."""
    for entries, url, allowed in [
        ([f"127.0.0.1:{recorder.port}"], f"http://127.0.0.1:{recorder.port}/", True),
        ([f"127.0.0.1:{recorder.port + 1}"], f"http://127.0.0.1:{recorder.port}/", False),
        (["127.0.0.0/8"], f"http://127.0.0.1:{recorder.port}/", True),
        (["api.example.test"], f"http://api.example.test:{recorder.port}/", True),
        (["other.example.test"], f"http://api.example.test:{recorder.port}/", False),
    ]:
        client = HttpClient(
            allow_hosts=entries, resolver_overrides={"api.example.test": ["127.0.0.1"]}
        )
        try:
            error = await fetch(client, url)
        finally:
            await client.close()
        assert (error is None) is allowed, (entries, url, error)
    assert recorder.connections == 3


async def test_guard_off_connects(recorder: ConnectionRecorder) -> None:
    """block_private_networks = false lets loopback through."""
    client = HttpClient(block_private_networks=False)
    try:
        assert await fetch(client, f"http://127.0.0.1:{recorder.port}/") is None
    finally:
        await client.close()
    assert recorder.connections == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("example.com", None),
        ("cafe.be", None),
    ],
)
def test_parse_ip_literal(text: str, expected: str | None) -> None:
    """Every spelling a resolver would turn into an address is recognised as that address."""
    ip = parse_ip_literal(text)
    assert (str(ip) if ip else None) == expected


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("::1", "loopback"),
        ("fd00::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "IPv4-mapped"),
        ("::", "unspecified"),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_why_blocked(address: str, kind: str | None) -> None:
    """Non-public address classes are named; public ones pass."""
    reason = why_blocked(ipaddress.ip_address(address))
    if kind is None:
        assert reason is None
    else:
        assert reason is not None and kind in reason


def test_allow_hosts_parsing() -> None:
    """Entries: names, host:port, IP literals, CIDRs, [v6]:port; junk is a ValueError."""
    policy = NetworkPolicy.build(
        True, ["API.example.com", "db.local:5432", "10.0.0.5", "192.168.0.0/16", "[::1]:8080"]
    )
    assert policy.host_allowed("api.example.com", 443)
    assert policy.host_allowed("db.local", 5432) and not policy.host_allowed("db.local", 80)
    assert policy.address_allowed(ipaddress.ip_address("10.0.0.5"), 1)
    assert policy.address_allowed(ipaddress.ip_address("192.168.3.4"), 1)
    assert policy.address_allowed(ipaddress.ip_address("::1"), 8080)
    assert not policy.address_allowed(ipaddress.ip_address("::1"), 80)
    with pytest.raises(ValueError):
        NetworkPolicy.build(True, ["10.0.0.0/33"])
    with pytest.raises(ValueError):
        NetworkPolicy.build(True, ["host:notaport"])
