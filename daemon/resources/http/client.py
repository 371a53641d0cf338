"""The shared HTTP client: one pooled aiohttp session for every External API Request."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson
from yarl import URL

from daemon.core.errors import HttpError, StepTimeoutError
from daemon.core.netpolicy import NetworkPolicy
from daemon.core.secrets import SECRETS
from daemon.resources.http.guard import GuardedResolver, blocked_cause

_READ_CHUNK = 64 * 1024
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Dropped when a redirect leaves the origin: credentials are for the host they were sent to.
_ORIGIN_HEADERS = ("authorization", "cookie", "proxy-authorization")


class HttpConnectionError(HttpError):
    """The request never got a response: refused, reset, DNS failure (retryable)."""


@dataclass(slots=True)
class HttpResponse:
    """A fully read response: JSON bodies parsed, other bodies decoded to text."""

    status: int
    headers: dict[str, str]
    body: Any

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "headers": self.headers, "body": self.body}


def safe_url(url: str | URL) -> str:
    """The URL without credentials or query string, for messages that end up in logs and history."""
    try:
        parts = urlsplit(str(url))
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


def _host(url: str | URL) -> str:
    try:
        return (url if isinstance(url, URL) else URL(url)).host or ""
    except (ValueError, TypeError):
        return ""


def is_json_type(content_type: str) -> bool:
    """`application/json`, `application/problem+json`, ... (parameters like charset ignored)."""
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


class HttpClient:
    """One aiohttp session shared by every run, created lazily inside the running loop.

    `request` raises HttpError for connection failures, blocked destinations and oversized
    bodies, and StepTimeoutError when `timeout` (or the client default) expires; any status is
    returned. Redirects are followed here, hop by hop, so the guard sees every destination.
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
        proxy: str | None = None,
        block_private_networks: bool = True,
        allow_hosts: Iterable[str] = (),
        follow_redirects: bool = True,
        resolver_overrides: Mapping[str, Sequence[str]] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.max_connections_per_host = max_connections_per_host
        self.user_agent = user_agent
        self.max_response_bytes = max_response_bytes
        self.proxy = proxy or None
        self.follow_redirects = follow_redirects
        self.policy = NetworkPolicy.build(block_private_networks, allow_hosts)
        self.resolver_overrides = dict(resolver_overrides or {})
        self._proxy_key: tuple[str, int] | None = None
        if self.proxy:
            SECRETS.add_url(self.proxy)
            purl = URL(self.proxy)
            self._proxy_key = ((purl.host or "").lower(), purl.port or 80)
        # Retry backoff goes through these, so tests can observe delays instead of sleeping.
        self.sleep = sleep
        self.random = rand
        self._cleared: set[tuple[str, int]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None
        # (host, seconds, outcome) after each request: the metrics hook (daemon.ops.metrics).
        self.observer: Callable[[str, float, str], None] | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created on first use rather than in __init__: aiohttp binds the session to the loop
        # that is running when it is made, and config is loaded before the loop starts.
        session = self._session
        if session is None or session.closed:
            self._resolver = GuardedResolver(
                self.policy,
                self.resolver_overrides,
                exempt=[self._proxy_key] if self._proxy_key else (),
            )
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=self.max_connections_per_host,
                resolver=self._resolver,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                # The overall deadline is applied per request (asyncio.timeout in `request`),
                # so a step may set a longer one than the client default.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
                headers={"User-Agent": self.user_agent},
                # Responses are parsed by us (orjson), and cookies must not leak between tasks.
                cookie_jar=aiohttp.DummyCookieJar(),
                proxy=self.proxy,
            )
            self._session = session
        return session

    async def _destination(self, url: URL) -> tuple[URL, str | None]:
        """The guard's part before a connection; returns where to send the request and, when
        that is not the URL's own host, the name to keep (Host header, TLS SNI and
        certificate check).

        IP literals are checked here (aiohttp never resolves them). Names are checked by the
        resolver on every connection — except through a proxy, which resolves names itself
        and could get another answer than the one checked (DNS rebinding). There the name is
        resolved and checked here and the proxy is asked for the checked address: `GET
        http://203.0.113.7/...` with `Host: api.example.com`, or `CONNECT 203.0.113.7:443`
        with the TLS session still for api.example.com. A name in `allow_hosts` (or with the
        guard off) goes to the proxy by name: the operator chose to trust it.
        """
        host = url.raw_host or ""
        port = url.port or 0
        key = (host, port)
        if key in self._cleared:
            return url, None
        if url.scheme not in ("http", "https"):
            raise HttpError(f'unsupported URL scheme "{url.scheme}" (use http or https)')
        if not host:
            raise HttpError(f"invalid URL {safe_url(url)!r}: no host")
        literal = self.policy.check_literal(host, port)
        if literal or self.proxy is None or not self.policy.block_private:
            if literal and len(self._cleared) < 4096:
                # An IP literal's verdict never changes (names are re-checked by the resolver
                # on every lookup), so the per-request parse is done once.
                self._cleared.add(key)
            return url, None
        name = host.lower().rstrip(".")
        if self.policy.host_allowed(name, port):
            return url, None
        assert self._resolver is not None
        try:
            answers = await self._resolver.resolve(host, port)
        except OSError as exc:
            cause = blocked_cause(exc)
            if cause is not None:
                raise cause from None
            raise HttpConnectionError(f"cannot resolve {host}: {exc}") from None
        return url.with_host(answers[0]["host"]), host

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        headers: Mapping[str, str] | None = None,
        params: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        """Send one request and read the whole response (bounded by `max_response_bytes`)."""
        observer = self.observer
        if observer is None:
            return await self._request(method, url, headers, params, json_body, data, timeout)
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await self._request(method, url, headers, params, json_body, data, timeout)
            outcome = str(response.status)
            return response
        except StepTimeoutError:
            outcome = "timeout"
            raise
        finally:
            observer(_host(url), time.perf_counter() - started, outcome)

    async def _request(
        self,
        method: str,
        url: str | URL,
        headers: Mapping[str, str] | None,
        params: Sequence[tuple[str, str]] | Mapping[str, str] | None,
        json_body: Any,
        data: bytes | str | None,
        timeout: float | None,
    ) -> HttpResponse:
        session = self._get_session()
        limit = self.timeout if timeout is None else timeout
        hdrs = dict(headers) if headers else {}
        if json_body is not None:
            data = orjson.dumps(json_body)
            if not any(k.lower() == "content-type" for k in hdrs):
                hdrs["Content-Type"] = "application/json"
        try:
            target = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError):
            raise HttpError(f"invalid URL {safe_url(str(url))!r}") from None
        if params:
            target = target.extend_query(params)
        try:
            # One deadline for connect + send + every redirect hop + reading the body, so a
            # slow trickle of bytes cannot hold a run past its timeout.
            async with asyncio.timeout(limit):
                for _hop in range(MAX_REDIRECTS + 1):
                    send_to, name = await self._destination(target)
                    extra: dict[str, Any] = {}
                    sent_headers = hdrs
                    if name is not None:  # pinned to the checked address (through a proxy)
                        if not any(k.lower() == "host" for k in hdrs):
                            sent_headers = {**hdrs, "Host": _host_header(target)}
                        if target.scheme == "https":
                            extra["server_hostname"] = name
                    async with session.request(
                        method,
                        send_to,
                        headers=sent_headers,
                        data=data,
                        allow_redirects=False,
                        **extra,
                    ) as resp:
                        nxt = self._redirect(resp, target) if self.follow_redirects else None
                        if nxt is None:
                            raw = await self._read(resp, method, target)
                            return _response(resp, raw)
                    if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                        # What browsers (and aiohttp) do: the follow-up is a GET without a body.
                        method, data = "GET", None
                        hdrs = {k: v for k, v in hdrs.items() if k.lower() != "content-type"}
                    if nxt.origin() != target.origin():
                        hdrs = {k: v for k, v in hdrs.items() if k.lower() not in _ORIGIN_HEADERS}
                    target = nxt
                raise HttpError(f"{method} {safe_url(url)}: more than {MAX_REDIRECTS} redirects")
        except TimeoutError:
            raise StepTimeoutError(
                f"{method} {safe_url(target)} timed out (limit {limit:g}s)", timeout=limit
            ) from None
        except aiohttp.InvalidURL:
            raise HttpError(f"invalid URL {safe_url(target)!r}") from None
        except aiohttp.ClientError as exc:
            cause = blocked_cause(exc)
            if cause is not None:
                raise cause from None
            raise HttpConnectionError(
                f"{method} {safe_url(target)} failed: {type(exc).__name__}: {exc}"
            ) from None

    @staticmethod
    def _redirect(resp: aiohttp.ClientResponse, current: URL) -> URL | None:
        if resp.status not in _REDIRECTS:
            return None
        location = resp.headers.get("Location")
        if not location:
            return None
        try:
            nxt = current.join(URL(location))
        except ValueError:
            return None
        return nxt.with_fragment(None)

    async def _read(self, resp: aiohttp.ClientResponse, method: str, url: URL) -> bytes:
        cap = self.max_response_bytes
        # An error response only feeds an excerpt: cut it at the cap instead of failing, so the
        # step still reports the status (the more useful error).
        truncate = not 200 <= resp.status < 300
        length = resp.content_length
        if length is not None and length <= cap:
            # The parser stops at Content-Length: one read, no chunk loop (the common case).
            return await resp.read()
        if not truncate and length is not None:
            raise HttpError(_too_big(method, url, cap), status=resp.status)
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            if size > cap:
                if truncate:
                    chunks.append(chunk[: len(chunk) - (size - cap)])
                    break
                raise HttpError(_too_big(method, url, cap), status=resp.status)
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        if self._resolver is not None:
            # Passed in, so the connector does not own (or close) it.
            await self._resolver.close()
            self._resolver = None


def _host_header(url: URL) -> str:
    """The Host header a request to `url` carries: the name, and the port unless default."""
    host = url.raw_host or ""
    return f"{host}:{url.explicit_port}" if url.explicit_port is not None else host


def _too_big(method: str, url: URL, cap: int) -> str:
    return f"{method} {safe_url(url)}: response body exceeds {cap} bytes"


def _response(resp: aiohttp.ClientResponse, raw: bytes) -> HttpResponse:
    headers: dict[str, str] = {}
    for k, value in resp.headers.items():
        key = str(k)  # multidict's istr: a plain str keeps the value JSON-serializable
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
