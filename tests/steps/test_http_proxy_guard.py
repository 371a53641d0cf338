"""`[http] proxy` with the private-network guard: the proxy is asked for the checked address."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from daemon.core.errors import HttpError
from daemon.resources.http.client import HttpClient

PUBLIC = "93.184.216.34"  # what the daemon's resolver answers for rebind.test: public


@dataclass
class Asked:
    method: str
    target: str  # the request target or CONNECT authority the proxy was given
    host_header: str | None
    sni: str | None = None  # CONNECT: the server name in the TLS ClientHello that followed


@dataclass
class LoopbackProxy:
    """A forward HTTP proxy on loopback that resolves names its own way: `rebind.test` is the
    internal server (what a rebinding DNS would answer it). It forwards what it is asked for
    to the internal server when that is where the target resolves, answers 502 for anywhere
    else (no internet here), and for CONNECT reads the TLS ClientHello to record its SNI."""

    internal_port: int
    asked: list[Asked] = field(default_factory=list)
    port: int = 0
    server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def reaches_internal(self, authority: str) -> bool:
        host = authority.rsplit(":", 1)[0]
        return host in ("rebind.test", "127.0.0.1")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, target, _ = head.split("\r\n", 1)[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
            asked = Asked(method, target, headers.get("Host"))
            self.asked.append(asked)
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                asked.sni = sni_of(await reader.read(4096))
                return
            authority = target.split("://", 1)[1].split("/", 1)[0]
            if not self.reaches_internal(authority):
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nunreachable")
                await writer.drain()
                return
            body = b"internal secret"  # what an SSRF through the proxy would read
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


def sni_of(hello: bytes) -> str | None:
    """The server_name of a TLS ClientHello (record, handshake, then extension 0)."""
    try:
        pos = 5 + 4 + 2 + 32  # record header, handshake header, version, random
        pos += 1 + hello[pos]  # session id
        pos += 2 + int.from_bytes(hello[pos : pos + 2], "big")  # cipher suites
        pos += 1 + hello[pos]  # compression methods
        end = pos + 2 + int.from_bytes(hello[pos : pos + 2], "big")
        pos += 2
        while pos < end:
            kind = int.from_bytes(hello[pos : pos + 2], "big")
            size = int.from_bytes(hello[pos + 2 : pos + 4], "big")
            if kind == 0:  # server_name: list length, type, name length, name
                name_len = int.from_bytes(hello[pos + 7 : pos + 9], "big")
                return hello[pos + 9 : pos + 9 + name_len].decode()
            pos += 4 + size
    except (IndexError, UnicodeDecodeError):
        return None
    return None


@pytest.fixture
async def proxy() -> AsyncIterator[LoopbackProxy]:
    internal = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    p = LoopbackProxy(internal.sockets[0].getsockname()[1])
    await p.start()
    yield p
    await p.close()
    internal.close()


def client(proxy: LoopbackProxy, **kw: object) -> HttpClient:
    return HttpClient(
        proxy=f"http://127.0.0.1:{proxy.port}",
        resolver_overrides={"rebind.test": [PUBLIC], "inside.test": ["10.1.2.3"]},
        timeout=5,
        **kw,  # type: ignore[arg-type]
    )


async def test_http_goes_to_the_checked_address_with_the_name_in_host(
    proxy: LoopbackProxy,
) -> None:
    """A name the daemon resolved to a public address is sent to the proxy as that address
    (with `Host: rebind.test:8080`); the proxy's own answer for the name (the internal
    server) is never used, so the internal body is never read."""
    http = client(proxy)
    try:
        response = await http.request("GET", "http://rebind.test:8080/data?x=1")
    finally:
        await http.close()
    assert response.status == 502 and response.body == "unreachable"
    assert [(a.method, a.target, a.host_header) for a in proxy.asked] == [
        ("GET", f"http://{PUBLIC}:8080/data?x=1", "rebind.test:8080")
    ]


async def test_https_connects_to_the_checked_address_with_the_name_in_sni(
    proxy: LoopbackProxy,
) -> None:
    """HTTPS: `CONNECT 93.184.216.34:443`, and the TLS ClientHello still names rebind.test
    (the certificate is checked against the name, not the address)."""
    http = client(proxy)
    try:
        with contextlib.suppress(HttpError):  # the proxy hangs up after the ClientHello
            await http.request("GET", "https://rebind.test/secure")
    finally:
        await http.close()
    assert [(a.method, a.target, a.sni) for a in proxy.asked] == [
        ("CONNECT", f"{PUBLIC}:443", "rebind.test")
    ]


@pytest.mark.parametrize(
    "url",
    ["http://inside.test/", "http://10.0.0.5/", "http://127.0.0.1:9/", "http://localhost/"],
)
async def test_private_targets_are_refused_before_the_proxy(proxy: LoopbackProxy, url: str) -> None:
    """A name resolving to a private address, or a private literal: blocked, proxy never asked."""
    http = client(proxy)
    try:
        with pytest.raises(HttpError, match="blocked"):
            await http.request("GET", url)
    finally:
        await http.close()
    assert proxy.asked == []


async def test_allow_hosts_names_go_to_the_proxy_by_name(proxy: LoopbackProxy) -> None:
    """A name in allow_hosts is trusted: the proxy gets the name and resolves it itself."""
    http = client(proxy, allow_hosts=["rebind.test"])
    try:
        response = await http.request("GET", "http://rebind.test/")
    finally:
        await http.close()
    assert response.body == "internal secret"
    assert [(a.target, a.host_header) for a in proxy.asked] == [
        ("http://rebind.test/", "rebind.test")
    ]
