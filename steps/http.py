"""External API Request: one HTTP call through the shared client; non-2xx fails the step."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode

import msgspec
import orjson
import structlog
from yarl import URL

from daemon.core.errors import ExpressionError, HttpError, RunError, StepError, StepTimeoutError
from daemon.core.netpolicy import BlockedAddressError
from daemon.core.secrets import SECRETS, is_secret_header
from daemon.core.text import type_name
from daemon.expr.parser import is_template, template_parts
from daemon.expr.values import render
from daemon.resources.http.client import HttpConnectionError, HttpResponse, safe_url
from steps._values import seconds
from steps.base import Evaluator, Step, StepCompiler, StepContext, StepSpec

if TYPE_CHECKING:
    from daemon.resources.http.client import HttpClient

log = structlog.get_logger("cronstack.http")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Safe to send twice; POST and PATCH are retried only when the step asks (Idempotency-Key).
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
DEFAULT_ATTEMPTS = 3
DEFAULT_INITIAL_DELAY = 1.0
DEFAULT_MAX_DELAY = 30.0
DEFAULT_ON = frozenset({"connection", "timeout", "429", "5xx"})
_ON_ALIASES = {
    "connection_error": "connection",
    "connection_errors": "connection",
    "connect": "connection",
    "timeouts": "timeout",
}
EXCERPT_BYTES = 1024
_FORM = "application/x-www-form-urlencoded"
# Literal URL text keeps every reserved character and existing %-escapes; only what may never
# appear raw in a URL (spaces, non-ASCII) is escaped.
_LITERAL_SAFE = "!#$%&'()*+,/:;=?@[]~"


class HttpRetrySpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Step `retry`: the task retry shape plus `on` (what to retry on). None = method default."""

    max_attempts: int | None = None
    initial_delay: Any = None
    max_delay: Any = None
    on: list[str | int] | None = None  # "5xx", "timeout", "connection", 429 or "429"


def _text(value: Any) -> str:
    """A header, query or form value as text: JSON spelling for non-strings (true, 1.5, [..])."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


def _pairs(value: Any, field: str) -> list[tuple[str, str]]:
    """Flatten an object into (key, text) pairs: null values dropped, lists repeat the key.
    A list of `"Name: value"` texts (XanoScript's headers) is read as those pairs."""
    if isinstance(value, list) and value and all(isinstance(p, str) for p in value):
        value = [_header_line(p, field) for p in value]
    elif isinstance(value, list) and all(
        isinstance(p, list | tuple) and len(p) == 2 for p in value
    ):
        value = [(str(k), v) for k, v in value]
    elif isinstance(value, Mapping):
        value = list(value.items())
    else:
        raise StepError(f"External API Request {field} must be an object, got {type_name(value)}")
    out: list[tuple[str, str]] = []
    for key, item in value:
        if item is None:
            continue
        if isinstance(item, list):
            out.extend((str(key), _text(v)) for v in item if v is not None)
        else:
            out.append((str(key), _text(item)))
    return out


def _header_line(line: str, field: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    if not sep or not name.strip():
        raise StepError(f'External API Request {field}: expected "Name: value", got {line!r:.80}')
    return name.strip(), value.strip()


def _on_set(values: list[str | int] | None) -> tuple[frozenset[str], list[str]]:
    """Normalise `retry.on`: connection, timeout, 4xx, 5xx, or a status code; plus bad entries."""
    if values is None:
        return DEFAULT_ON, []
    out: set[str] = set()
    bad: list[str] = []
    for raw in values:
        item = _ON_ALIASES.get(str(raw).strip().lower(), str(raw).strip().lower())
        if item in ("connection", "timeout", "4xx", "5xx") or (
            item.isdigit() and len(item) == 3 and 100 <= int(item) <= 599
        ):
            out.add(item)
        else:
            bad.append(str(raw))
    return frozenset(out), bad


def _status_matches(status: int, on: frozenset[str]) -> bool:
    return str(status) in on or f"{status // 100}xx" in on


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# URL positions, in the order they appear in a URL.
_RAW, _HOST, _PATH, _QUERY, _FRAGMENT = range(5)
_HOST_FORBIDDEN = frozenset("/?#@\\ \t\r\n%")


def _advance(state: int, literal: str) -> int:
    """The position after a piece of literal URL text."""
    i = 0
    if state == _RAW:
        sep = literal.find("://")
        if sep < 0 and literal[:1] not in ("/", "?", "#"):
            return _RAW
        state = _HOST
        i = sep + 3 if sep >= 0 else 0
    for ch in literal[i:]:
        if ch == "#":
            return _FRAGMENT
        if ch == "?" and state < _QUERY:
            state = _QUERY
        elif ch == "/" and state == _HOST:
            state = _PATH
    return state


def _encode_segment(value: Any) -> str:
    # safe="": "/" "?" "#" "&" are data here, so a value stays one segment of the path.
    text = quote(render(value), safe="")
    # Dot segments would be resolved away by the server (or yarl); keep them data too.
    return text.replace(".", "%2E") if text in (".", "..") else text


def _encode_query(value: Any) -> str:
    return quote(render(value), safe="")


def _check_host(value: Any) -> str:
    text = render(value)
    if not text or any(ch in _HOST_FORBIDDEN for ch in text):
        raise StepError(f"URL host value {text!r:.80} is not a host name")
    return text


def _raw(value: Any) -> str:
    return quote(render(value), safe=_LITERAL_SAFE)


def compile_url(text: str) -> Callable[[Any], str | URL]:
    """Build the URL evaluator once: literal text as written, each `{{ }}` value encoded for
    its position — a path value is one segment, a query value one parameter value, a host
    value a host name only. A value before the scheme (`{{env.BASE}}/x`) is inserted as is."""
    parts = template_parts(text)
    state = _RAW
    plan: list[tuple[Callable[[Any], str], Callable[[Any], Any]] | str] = []
    encoded = False
    for part in parts:
        if isinstance(part, str):
            plan.append(quote(part, safe=_LITERAL_SAFE))
            state = _advance(state, part)
            continue
        if state == _RAW:
            plan.append((_raw, part))
        elif state == _HOST:
            plan.append((_check_host, part))
        elif state == _PATH:
            encoded = True
            plan.append((_encode_segment, part))
        else:
            encoded = True
            plan.append((_encode_query, part))
    first = plan[0]
    if len(plan) == 1 and not isinstance(first, str):
        # The whole URL is one value: yarl encodes it as any URL string.
        only = first[1]
        return lambda ctx: render(only(ctx))
    steps = tuple(plan)

    def build(ctx: Any) -> str | URL:
        out = "".join(p if isinstance(p, str) else p[0](p[1](ctx)) for p in steps)
        # Already encoded component by component: yarl must not decode %2F or %2E back.
        return URL(out, encoded=True) if encoded else out

    return build


def excerpt(body: Any, limit: int = EXCERPT_BYTES) -> str:
    """At most `limit` bytes of a response body, for error messages."""
    if body is None:
        return ""
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body, default=str)
    if len(raw) <= limit:
        return raw.decode(errors="replace")
    # Cut on a byte boundary and drop a split trailing character rather than exceed the limit.
    return raw[:limit].decode(errors="ignore")


class ExternalApiRequest(Step):
    """Call an HTTP API; the result is `{status, headers, body}` (JSON bodies parsed)."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        url: Any
        method: str = "GET"
        headers: Any = None
        params: Any = None
        body: Any = None
        timeout: Any = None
        retry: HttpRetrySpec | None = None
        # "xano": XanoScript's api.request - any status is a result (no error, no retry
        # unless `retry` asks) shaped {request, response: {status, headers, result}}.
        response_format: Literal["cronstack", "xano"] = "cronstack"

    function = "external_api_request"
    display_name = "External API Request"

    __slots__ = (
        "_attempts",
        "_body",
        "_const_headers",
        "_header_secrets",
        "_headers",
        "_initial_delay",
        "_max_delay",
        "_method",
        "_on",
        "_params",
        "_retry",
        "_timeout",
        "_timeout_expr",
        "_url",
        "_xano",
    )

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        method = spec.method.strip().upper()
        if method not in METHODS:
            c.error(
                "method",
                f'unknown HTTP method "{spec.method}"; expected one of {", ".join(METHODS)}',
            )
        self._method = method
        self._url: Callable[[Any], str | URL] = c.template(spec.url, "url")
        if isinstance(spec.url, str) and "{{" in spec.url:
            try:
                self._url = compile_url(spec.url)
            except ExpressionError:
                pass  # already reported by c.template, which fails the step at run time
        self._headers: Evaluator | None = (
            c.template(spec.headers, "headers") if spec.headers is not None else None
        )
        # Literal headers (the common `Authorization: Bearer ...` written in the task) are
        # flattened and classified once here; a run only re-registers the secret values.
        self._const_headers: dict[str, str] | None = None
        self._header_secrets: tuple[str, ...] = ()
        if isinstance(spec.headers, Mapping) and not any(
            is_template(k) or is_template(v) or isinstance(v, Mapping | list)
            for k, v in spec.headers.items()
        ):
            with contextlib.suppress(StepError):
                pairs = _pairs(spec.headers, "headers")
                self._const_headers = dict(pairs)
                self._header_secrets = tuple(v for k, v in pairs if is_secret_header(k))
        self._params: Evaluator | None = (
            c.template(spec.params, "params") if spec.params is not None else None
        )
        self._body: Evaluator | None = (
            c.template(spec.body, "body") if spec.body is not None else None
        )
        self._timeout: float | None = None
        self._timeout_expr: Evaluator | None = None
        if is_template(spec.timeout):
            self._timeout_expr = c.template(spec.timeout, "timeout")
        elif spec.timeout is not None:
            try:
                self._timeout = seconds(spec.timeout, "timeout")
            except ValueError as exc:
                c.error("timeout", str(exc))
        self._retry = spec.retry
        self._xano = spec.response_format == "xano"
        self._attempts = DEFAULT_ATTEMPTS if method in IDEMPOTENT and not self._xano else 1
        self._initial_delay = DEFAULT_INITIAL_DELAY
        self._max_delay = DEFAULT_MAX_DELAY
        self._on = DEFAULT_ON
        if spec.retry is not None:
            self._compile_retry(spec.retry, c)
        super().__init__(spec, c)

    def _compile_retry(self, retry: HttpRetrySpec, c: StepCompiler) -> None:
        if retry.max_attempts is not None:
            if retry.max_attempts < 1:
                c.error("retry.max_attempts", "max_attempts must be at least 1")
            else:
                # Setting retry opts a POST or PATCH in: the author vouches it is idempotent.
                self._attempts = retry.max_attempts
        elif self._method not in IDEMPOTENT:
            self._attempts = DEFAULT_ATTEMPTS
        for fld in ("initial_delay", "max_delay"):
            value = getattr(retry, fld)
            if value is not None:
                try:
                    setattr(self, f"_{fld}", seconds(value, fld))
                except ValueError as exc:
                    c.error(f"retry.{fld}", str(exc))
        on, bad = _on_set(retry.on)
        for item in bad:
            c.error(
                "retry.on",
                f'unknown retry condition "{item}"; expected connection, timeout, 4xx, 5xx '
                "or a status code like 429",
            )
        self._on = on

    async def run(self, ctx: StepContext) -> Any:
        url = self._url(ctx)
        if isinstance(url, str):
            if not url:
                raise StepError("External API Request url must be a non-empty string, got ''")
            if "@" in url:
                SECRETS.add_url(url)
        elif not isinstance(url, URL):
            raise StepError(f"External API Request url must be a non-empty string, got {url!r:.80}")
        headers: dict[str, str] = {}
        if self._const_headers is not None:
            for value in self._header_secrets:
                SECRETS.add(value)  # a set lookup once known; a registry may be new
            headers = self._const_headers  # never mutated: the client copies what it sends
        elif self._headers is not None:
            for name, value in _pairs(self._headers(ctx), "headers"):
                if is_secret_header(name):
                    SECRETS.add(value)
                headers[name] = value
        params = _pairs(self._params(ctx), "params") if self._params is not None else None
        json_body: Any = None
        data: str | None = None
        if self._body is not None:
            body = self._body(ctx)
            if isinstance(body, str):
                data = body
            elif body is not None:
                content_type = next(
                    (v for k, v in headers.items() if k.lower() == "content-type"), ""
                )
                if content_type.split(";", 1)[0].strip().lower() == _FORM:
                    data = urlencode(_pairs(body, "body"))
                else:
                    json_body = body
        timeout = self._timeout
        if self._timeout_expr is not None:
            try:
                timeout = seconds(self._timeout_expr(ctx), "timeout")
            except ValueError as exc:
                raise StepError(str(exc)) from None
        resp = await self._send(ctx.http, url, headers, params, json_body, data, timeout)
        if self._xano:
            sent = json_body if json_body is not None else (data if data is not None else params)
            return {
                "request": {
                    "url": safe_url(url),
                    "method": self._method,
                    "headers": [f"{k}: {v}" for k, v in headers.items()],
                    "params": sent if not isinstance(sent, list) else dict(sent),
                },
                "response": {
                    "status": resp.status,
                    "headers": [f"{k}: {v}" for k, v in resp.headers.items()],
                    "result": resp.body,
                },
            }
        return resp.as_dict()

    async def _send(
        self,
        client: HttpClient,
        url: str | URL,
        headers: dict[str, str],
        params: list[tuple[str, str]] | None,
        json_body: Any,
        data: str | None,
        timeout: float | None,
    ) -> HttpResponse:
        """Send with retries (backoff with full jitter, Retry-After honoured) and fail on a
        non-2xx status; every error message leaves here with secrets masked."""
        attempts = self._attempts
        on = self._on
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            wait: float | None = None
            try:
                resp = await client.request(
                    self._method,
                    url,
                    headers=headers,
                    params=params,
                    json_body=json_body,
                    data=data,
                    timeout=timeout,
                )
            except BlockedAddressError:
                raise
            except (HttpConnectionError, StepTimeoutError) as exc:
                kind = "timeout" if isinstance(exc, StepTimeoutError) else "connection"
                if last or kind not in on:
                    raise _masked(exc, attempt) from None
                reason = exc.message
            except RunError as exc:
                raise _masked(exc, attempt) from None
            else:
                if 200 <= resp.status < 300 or (self._xano and (last or resp.status < 500)):
                    return resp
                if last or not _status_matches(resp.status, on):
                    raise _masked(
                        HttpError(
                            f"HTTP {resp.status} from {self._method} {safe_url(url)}: "
                            f"{excerpt(resp.body)}",
                            status=resp.status,
                        ),
                        attempt,
                    )
                reason = f"HTTP {resp.status}"
                wait = retry_after(resp.headers.get("Retry-After"))
            # Full jitter: a uniform pick below the exponential ceiling spreads the retries of
            # many runs that failed together; a server's Retry-After wins, up to max_delay.
            ceiling = min(self._max_delay, self._initial_delay * 2 ** (attempt - 1))
            delay = min(wait, self._max_delay) if wait is not None else client.random() * ceiling
            log.info(
                "http_retry",
                url=safe_url(url),
                attempt=attempt,
                reason=SECRETS.mask(reason),
                delay=round(delay, 3),
            )
            await client.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _masked(exc: RunError, attempts: int) -> RunError:
    """The error with secrets masked in its message (a response may echo a token back)."""
    message = SECRETS.mask(exc.message)
    if attempts > 1:
        message += f" (after {attempts} attempts)"
    exc.message = message
    exc.args = (message,)
    return exc


HTTP_STEPS: tuple[type[Step], ...] = (ExternalApiRequest,)
