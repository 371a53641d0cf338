"""The test fault proxy itself: forwards, refuses, cuts, delays and resumes, on a loop or thread."""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.faultproxy import BackgroundFaultProxy, FaultProxy, address_of


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, int]]:
    """A loopback server that echoes every chunk back."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield "127.0.0.1", server.sockets[0].getsockname()[1]
    server.close()


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


@pytest.fixture
def threaded_echo() -> Iterator[tuple[str, int]]:
    """The echo server on threads, for tests that block."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", server.server_address[1]
    server.shutdown()
    server.server_close()


async def roundtrip(port: int, payload: bytes = b"ping") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await reader.readexactly(len(payload))
    finally:
        writer.close()


async def test_forwards_refuses_and_resumes_on_the_same_port(echo: tuple[str, int]) -> None:
    """Bytes go through; refuse() makes connects fail with ECONNREFUSED; resume() accepts again."""
    async with FaultProxy(echo) as proxy:
        port = proxy.port
        assert await roundtrip(port) == b"ping"
        await proxy.refuse()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        await proxy.resume()
        assert proxy.port == port and await roundtrip(port) == b"ping"
        assert proxy.accepted == 2


async def test_cut_resets_open_connections_only(echo: tuple[str, int]) -> None:
    """cut() ends every open connection at once; new ones work."""
    async with FaultProxy(echo) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        assert proxy.open_connections == 1 and proxy.cut() == 1
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await reader.readexactly(1)
        writer.close()
        assert await roundtrip(proxy.port) == b"ping"


async def test_delay_holds_each_chunk(echo: tuple[str, int]) -> None:
    """delay(100): one round trip (a chunk each way) takes at least 200 ms; resume clears it."""
    async with FaultProxy(echo) as proxy:
        proxy.delay(100)
        started = time.monotonic()
        assert await roundtrip(proxy.port) == b"ping"
        assert time.monotonic() - started >= 0.2
        await proxy.resume()
        started = time.monotonic()
        await roundtrip(proxy.port)
        assert time.monotonic() - started < 0.1


def test_background_proxy_serves_blocking_clients(threaded_echo: tuple[str, int]) -> None:
    """The threaded proxy works for blocking sockets (another process would do the same)."""
    with BackgroundFaultProxy(threaded_echo) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(b"hello")
            assert sock.recv(5) == b"hello"
            assert proxy.cut() == 1
        proxy.refuse()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        proxy.resume()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(b"again")
            assert sock.recv(5) == b"again"


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("postgresql://u:p@db.example:6543/x", ("db.example", 6543)),
        ("postgresql://u@127.0.0.1/x", ("127.0.0.1", 5432)),
        ("redis://127.0.0.1/0", ("127.0.0.1", 6379)),
        ("http://127.0.0.1:8080/", ("127.0.0.1", 8080)),
    ],
)
def test_address_of_and_url_for(url: str, address: tuple[str, int]) -> None:
    """address_of reads host and default port; url_for keeps user, path, query, swaps host:port."""
    assert address_of(url) == address
    proxy = FaultProxy(address, port=1234)
    rewritten = proxy.url_for(url + "?sslmode=disable")
    assert rewritten.endswith("127.0.0.1:1234/" + url.split("/", 3)[3] + "?sslmode=disable")
    assert ("u:p@" in rewritten) == ("u:p@" in url)
