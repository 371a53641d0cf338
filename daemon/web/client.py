"""What `--remote` uses: one request to a running daemon's admin API from the CLI."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from daemon.core.listen import ListenAddress


class RemoteError(RuntimeError):
    """The admin API answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


async def call(
    listen: str, token: str | None, method: str, path: str, *, timeout: float = 10.0
) -> Any:
    """One request to a running daemon's admin API; the JSON answer, or RemoteError."""
    address = ListenAddress.parse(listen)
    connector: aiohttp.BaseConnector | None = (
        aiohttp.UnixConnector(path=address.path) if address.path is not None else None
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with (
            aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as session,
            session.request(method, address.url() + path, headers=headers) as resp,
        ):
            body = await resp.read()
            try:
                data = orjson.loads(body) if body else None
            except orjson.JSONDecodeError:
                data = None
            if resp.status >= 400:
                message = data.get("error") if isinstance(data, dict) else None
                raise RemoteError(message or f"HTTP {resp.status}", resp.status)
            return data
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise RemoteError(f"cannot reach the daemon's admin API at {listen}: {exc}") from None
