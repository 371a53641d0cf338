"""The shared HTTP client: one pooled aiohttp session for every External API Request."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

from daemon.errors import HttpError, StepTimeoutError

_READ_CHUNK = 64 * 1024


@dataclass(slots=True)
class HttpResponse:
    """A fully read response: JSON bodies parsed, other bodies decoded to text."""

    status: int
    headers: dict[str, str]
    body: Any

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "headers": self.headers, "body": self.body}


def safe_url(url: str) -> str:
    """The URL without credentials or query string, for messages that end up in logs and history."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def is_json_type(content_type: str) -> bool:
    """`application/json`, `application/problem+json`, ... (parameters like charset ignored)."""
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


class HttpClient:
    """One aiohttp session shared by every run, created lazily inside the running loop.

    `request` raises HttpError for connection failures and oversized bodies and
    StepTimeoutError when `timeout` (or the client default) expires; any status is returned.
    """

    def __init__(
        self,
        *,
        timeout: float = 30,
        connect_timeout: float = 10,
        max_connections: int = 100,
        max_connections_per_host: int = 0,
        user_agent: str = "cronstack/0.1",
        max_response_bytes: int = 10 * 1024 * 1024,
    ) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.max_connections_per_host = max_connections_per_host
        self.user_agent = user_agent
        self.max_response_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created on first use rather than in __init__: aiohttp binds the session to the loop
        # that is running when it is made, and config is loaded before the loop starts.
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, limit_per_host=self.max_connections_per_host
            )
            session = aiohttp.ClientSession(
                connector=connector,
                # The overall deadline is applied per request (asyncio.timeout in `request`),
                # so a step may set a longer one than the client default.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
                headers={"User-Agent": self.user_agent},
                # Responses are parsed by us (orjson), and cookies must not leak between tasks.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._session = session
        return session

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        """Send one request and read the whole response (bounded by `max_response_bytes`)."""
        session = self._get_session()
        limit = self.timeout if timeout is None else timeout
        hdrs = dict(headers) if headers else {}
        if json_body is not None:
            data = orjson.dumps(json_body)
            if not any(k.lower() == "content-type" for k in hdrs):
                hdrs["Content-Type"] = "application/json"
        try:
            # One deadline for connect + send + reading the body, so a slow trickle of bytes
            # cannot hold a run past its timeout.
            async with asyncio.timeout(limit):
                async with session.request(
                    method, url, headers=hdrs, params=params, data=data
                ) as resp:
                    raw = await self._read(resp, method, url)
                    return _response(resp, raw)
        except TimeoutError:
            raise StepTimeoutError(
                f"{method} {safe_url(url)} timed out (limit {limit:g}s)", timeout=limit
            ) from None
        except aiohttp.InvalidURL:
            raise HttpError(f"invalid URL {safe_url(url)!r}") from None
        except aiohttp.ClientError as exc:
            raise HttpError(
                f"{method} {safe_url(url)} failed: {type(exc).__name__}: {exc}"
            ) from None

    async def _read(self, resp: aiohttp.ClientResponse, method: str, url: str) -> bytes:
        cap = self.max_response_bytes
        # An error response only feeds an excerpt: cut it at the cap instead of failing, so the
        # step still reports the status (the more useful error).
        truncate = not 200 <= resp.status < 300
        too_big = f"{method} {safe_url(url)}: response body exceeds {cap} bytes"
        if not truncate and resp.content_length is not None and resp.content_length > cap:
            raise HttpError(too_big, status=resp.status)
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            if size > cap:
                if truncate:
                    chunks.append(chunk[: len(chunk) - (size - cap)])
                    break
                raise HttpError(too_big, status=resp.status)
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _response(resp: aiohttp.ClientResponse, raw: bytes) -> HttpResponse:
    headers: dict[str, str] = {}
    for key, value in resp.headers.items():
        # Repeated headers (e.g. Set-Cookie) are joined rather than silently dropped.
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    content_type = resp.headers.get("Content-Type", "")
    body: Any
    if not raw:
        body = None if is_json_type(content_type) else ""
    elif is_json_type(content_type):
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            # A server that mislabels its body: keep the text rather than failing the step.
            body = _decode(raw, resp.charset)
    else:
        body = _decode(raw, resp.charset)
    return HttpResponse(resp.status, headers, body)


def _decode(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name in Content-Type
        return raw.decode("utf-8", errors="replace")
