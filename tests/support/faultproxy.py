"""A TCP proxy for tests that injects faults: refused connects, cut connections, slow links.

Put it between a client and a real server (PostgreSQL, Redis, an HTTP server) and break the
link on cue, deterministically, without touching the server:

    async with FaultProxy(("127.0.0.1", 5432)) as proxy:
        url = proxy.url_for("postgresql://postgres@127.0.0.1:5432/db")  # same URL, our port
        ...
        await proxy.refuse()     # new connects get ECONNREFUSED; open ones keep working
        proxy.cut()              # every open connection reset (both sides), now
        proxy.delay(200)         # each chunk, either direction, forwarded 200 ms late
        proxy.hold_replies()     # the server's answers are dropped: a request that reached it
                                 # is done there, its reply never arrives (then cut())
        await proxy.resume()     # accept again (same port), no delay

`FaultProxy` lives on the event loop that starts it (a test's own loop, or the `fault_proxy`
fixture in tests/conftest.py). For a daemon started as a subprocess, `BackgroundFaultProxy`
runs the same proxy on its own loop in a daemon thread, with the same methods, all blocking:

    with BackgroundFaultProxy(("127.0.0.1", 5432)) as proxy:
        config = f'url = "{proxy.url_for(pg_url)}"'
        proxy.refuse(); proxy.cut(); proxy.resume()

Counters (`accepted`, `open_connections`) let a test wait for "the client has connected"
instead of sleeping. Data is forwarded as it arrives, chunk by chunk, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")
_CHUNK = 64 * 1024
_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "http": 80, "https": 443}


def address_of(url: str) -> tuple[str, int]:
    """(host, port) a URL points at, with the scheme's default port: the proxy's upstream."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)


class FaultProxy:
    """Forwards every connection made to (host, port) to `upstream`, until told otherwise."""

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0):
        self.upstream = upstream
        self.host = host
        self.port = port  # 0 picks a free port at the first start; kept across refuse/resume
        self.accepted = 0  # connections accepted since start
        self._server: asyncio.Server | None = None
        self._delay = 0.0  # seconds added before forwarding each chunk
        self._hold = False  # drop what the upstream sends (lost replies)
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> FaultProxy:
        await self._listen()
        return self

    async def close(self) -> None:
        """Stop listening, reset every connection, wait for the forwarding tasks to end."""
        await self._stop_listening()
        self.cut()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def open_connections(self) -> int:
        return len(self._links)

    def url_for(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's (user, path and query kept)."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" if userinfo else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}{self.host}:{self.port}"))

    # --- faults ---------------------------------------------------------------------------------

    async def refuse(self) -> None:
        """Close the listening socket: new connects are refused; open connections go on."""
        await self._stop_listening()

    async def resume(self) -> None:
        """Listen again on the same port and forward without delay."""
        self._delay = 0.0
        await self._listen()

    def hold_replies(self, hold: bool = True) -> None:
        """Drop every byte the upstream sends from now on (until cut or `hold_replies(False)`):
        a request already sent is carried out by the server, but its reply is lost — the
        ambiguous failure of a commit whose answer never came."""
        self._hold = hold

    def cut(self) -> int:
        """Reset every open connection on both sides at once (ending a hold); returns how
        many were cut."""
        self._hold = False
        links = list(self._links)
        for client, upstream in links:
            client.transport.abort()
            upstream.transport.abort()
        self._links.clear()
        return len(links)

    def delay(self, ms: float) -> None:
        """Hold each chunk `ms` milliseconds before forwarding it (both directions, in order)."""
        self._delay = max(0.0, ms) / 1000

    # --- forwarding -----------------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            # Not wait_closed(): since 3.12 it also waits for the accepted connections.
            await asyncio.sleep(0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.accepted += 1
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                writer.transport.abort()
                return
            link = (writer, up_writer)
            self._links.add(link)
            try:
                await asyncio.gather(
                    self._pump(reader, up_writer), self._pump(up_reader, writer, replies=True)
                )
            finally:
                self._links.discard(link)
                writer.transport.abort()
                up_writer.transport.abort()
        finally:
            self._handlers.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, replies: bool = False
    ) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()  # half-close: the other direction may still talk
                    return
                if self._delay:
                    await asyncio.sleep(self._delay)
                if replies and self._hold:
                    continue  # lost on the way back
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            # Reset by a peer or by cut(): the other direction is ended by the caller.
            writer.transport.abort()


class BackgroundFaultProxy:
    """A FaultProxy on its own event loop in a daemon thread; every method blocks until done.

    For clients in other processes (a `cronstack run` subprocess) or in sync tests.
    """

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0):
        self.proxy = FaultProxy(upstream, host=host, port=port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> BackgroundFaultProxy:
        self._thread.start()
        self._call(self.proxy.start())
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self.proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> BackgroundFaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def accepted(self) -> int:
        return self.proxy.accepted

    @property
    def open_connections(self) -> int:
        return self.proxy.open_connections

    def url_for(self, url: str) -> str:
        return self.proxy.url_for(url)

    def refuse(self) -> None:
        self._call(self.proxy.refuse())

    def resume(self) -> None:
        self._call(self.proxy.resume())

    def cut(self) -> int:
        return self._call(_sync(self.proxy.cut))

    def delay(self, ms: float) -> None:
        self._call(_sync(lambda: self.proxy.delay(ms)))

    def hold_replies(self, hold: bool = True) -> None:
        self._call(_sync(lambda: self.proxy.hold_replies(hold)))


async def _sync(fn: Any) -> Any:
    """Run a plain function on the proxy's loop (its state belongs to that thread)."""
    return fn()
