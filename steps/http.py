"""External API Request: one HTTP call through the shared client; non-2xx fails the step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import msgspec
import orjson

from daemon.errors import HttpError, StepError
from daemon.httpclient import HttpResponse, safe_url
from steps._values import is_template, json_type, seconds
from steps.base import Evaluator, Step, StepCompiler, StepSpec

if TYPE_CHECKING:
    from daemon.context import RunContext
    from daemon.httpclient import HttpClient

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
EXCERPT_BYTES = 1024
_FORM = "application/x-www-form-urlencoded"


class HttpRetrySpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Step `retry`: the task retry shape plus `on` (what to retry on). None = method default."""

    max_attempts: int | None = None
    initial_delay: Any = None
    max_delay: Any = None
    on: list[str] | None = None


def _text(value: Any) -> str:
    """A header, query or form value as text: JSON spelling for non-strings (true, 1.5, [..])."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


def _pairs(value: Any, field: str) -> list[tuple[str, str]]:
    """Flatten an object into (key, text) pairs: null values dropped, lists repeat the key."""
    if isinstance(value, list) and all(isinstance(p, list | tuple) and len(p) == 2 for p in value):
        value = [(str(k), v) for k, v in value]
    elif isinstance(value, Mapping):
        value = list(value.items())
    else:
        raise StepError(f"External API Request {field} must be an object, got {json_type(value)}")
    out: list[tuple[str, str]] = []
    for key, item in value:
        if item is None:
            continue
        if isinstance(item, list):
            out.extend((str(key), _text(v)) for v in item if v is not None)
        else:
            out.append((str(key), _text(item)))
    return out


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

    function = "external_api_request"
    display_name = "External API Request"

    __slots__ = (
        "_body",
        "_headers",
        "_method",
        "_params",
        "_retry",
        "_timeout",
        "_timeout_expr",
        "_url",
    )

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        method = spec.method.strip().upper()
        if method not in METHODS:
            c.error(
                "method",
                f'unknown HTTP method "{spec.method}"; expected one of {", ".join(METHODS)}',
            )
        self._method = method
        self._url = c.template(spec.url, "url")
        self._headers: Evaluator | None = (
            c.template(spec.headers, "headers") if spec.headers is not None else None
        )
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
        if spec.retry is not None:
            self._check_retry(spec.retry, c)
        super().__init__(spec, c)

    @staticmethod
    def _check_retry(retry: HttpRetrySpec, c: StepCompiler) -> None:
        if retry.max_attempts is not None and retry.max_attempts < 1:
            c.error("retry.max_attempts", "max_attempts must be at least 1")
        for fld in ("initial_delay", "max_delay"):
            value = getattr(retry, fld)
            if value is not None:
                try:
                    seconds(value, fld)
                except ValueError as exc:
                    c.error(f"retry.{fld}", str(exc))

    async def run(self, ctx: RunContext) -> Any:
        url = self._url(ctx)
        if not isinstance(url, str) or not url:
            raise StepError(f"External API Request url must be a non-empty string, got {url!r:.80}")
        headers: dict[str, str] = {}
        if self._headers is not None:
            headers.update(_pairs(self._headers(ctx), "headers"))
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
        return resp.as_dict()

    async def _send(
        self,
        client: HttpClient,
        url: str,
        headers: dict[str, str],
        params: list[tuple[str, str]] | None,
        json_body: Any,
        data: str | None,
        timeout: float | None,
    ) -> HttpResponse:
        """Send the request once and fail on a non-2xx status.

        The hook for the next layer: the private-network guard (before sending), retries with
        backoff per `self._retry` (around this call) and secret masking of the error message
        all belong here, so `run` stays about building the request.
        """
        resp = await client.request(
            self._method,
            url,
            headers=headers,
            params=params,
            json_body=json_body,
            data=data,
            timeout=timeout,
        )
        if not 200 <= resp.status < 300:
            raise HttpError(
                f"HTTP {resp.status} from {self._method} {safe_url(url)}: {excerpt(resp.body)}",
                status=resp.status,
            )
        return resp


HTTP_STEPS: tuple[type[Step], ...] = (ExternalApiRequest,)
