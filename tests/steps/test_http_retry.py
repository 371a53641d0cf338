"""External API Request retries, timeouts, body cap and URL encoding, against loopback servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from daemon.core.errors import StepError
from daemon.core.runs import RunResult
from daemon.resources.bundle import Resources
from daemon.resources.http.client import HttpClient
from steps.http import compile_url, retry_after
from tests.steps.helpers import compile_issues, run, step


class Recorder:
    """A loopback server that answers from a script of statuses and records every request."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = []
        self.hits: list[tuple[str, str, float]] = []  # method, raw path, monotonic time

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append((request.method, request.raw_path, time.monotonic()))
        if request.path.startswith("/slow"):
            await asyncio.sleep(5)
        if request.path.startswith("/big"):
            return web.Response(body=b"x" * 5000, content_type="text/plain")
        if request.path.startswith("/raw"):
            return web.json_response({"raw_path": request.raw_path, "parts": request.path})
        status, headers = self.script.pop(0) if self.script else (200, {})
        return web.json_response({"n": len(self.hits)}, status=status, headers=headers)


@pytest.fixture
async def rec() -> AsyncIterator[tuple[Recorder, TestServer]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    srv = TestServer(app, host="127.0.0.1", port=0)
    await srv.start_server()
    yield recorder, srv
    await srv.close()


class Sleeps:
    """Records backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def call(client: HttpClient, **fields: Any) -> RunResult:
    return await run(
        [
            step("External API Request", return_variable="r", **fields),
            step("Return", value="{{r}}"),
        ],
        resources=Resources(http=client),
    )


def client_for(**kw: Any) -> HttpClient:
    kw.setdefault("allow_hosts", ["127.0.0.1"])
    return HttpClient(max_response_bytes=3000, **kw)


async def test_503_503_200_succeeds_after_three_requests(
    rec: tuple[Recorder, TestServer],
) -> None:
    """A GET retries 5xx by default: two 503s then a 200 is a success after 3 requests, with
    full-jitter delays below the doubling ceiling (1 s, then 2 s)."""
    recorder, srv = rec
    recorder.script = [(503, {}), (503, {})]
    sleeps = Sleeps()
    client = client_for(sleep=sleeps, rand=lambda: 0.5)
    try:
        result = await call(client, url=str(srv.make_url("/flaky")))
    finally:
        await client.close()
    assert result.status == "succeeded", result.error
    assert result.value["status"] == 200
    assert len(recorder.hits) == 3
    assert sleeps.delays == [0.5, 1.0]


async def test_retry_after_is_honoured_for_real(rec: tuple[Recorder, TestServer]) -> None:
    """429 with Retry-After: 1 waits about one second (real sleep) before the retry succeeds."""
    recorder, srv = rec
    recorder.script = [(429, {"Retry-After": "1"})]
    client = client_for()
    try:
        result = await call(client, url=str(srv.make_url("/limited")))
    finally:
        await client.close()
    assert result.status == "succeeded", result.error
    assert len(recorder.hits) == 2
    waited = recorder.hits[1][2] - recorder.hits[0][2]
    assert 0.95 <= waited < 2.0


async def test_retry_after_capped_by_max_delay(rec: tuple[Recorder, TestServer]) -> None:
    """A Retry-After longer than the step's max_delay waits only max_delay."""
    recorder, srv = rec
    recorder.script = [(503, {"Retry-After": "3600"})]
    sleeps = Sleeps()
    client = client_for(sleep=sleeps)
    try:
        result = await call(client, url=str(srv.make_url("/x")), retry={"max_delay": "2s"})
    finally:
        await client.close()
    assert result.status == "succeeded"
    assert sleeps.delays == [2.0]


async def test_post_not_retried_by_default(rec: tuple[Recorder, TestServer]) -> None:
    """POST fails on the first 503 (one request); with `retry` set it is retried."""
    recorder, srv = rec
    recorder.script = [(503, {})] * 5
    sleeps = Sleeps()
    client = client_for(sleep=sleeps)
    try:
        result = await call(client, url=str(srv.make_url("/p")), method="POST", body={"a": 1})
        assert result.status == "failed"
        assert result.error is not None and result.error["status"] == 503
        assert len(recorder.hits) == 1
        again = await call(
            client,
            url=str(srv.make_url("/p")),
            method="POST",
            body={"a": 1},
            retry={"max_attempts": 2},
        )
    finally:
        await client.close()
    assert again.status == "failed"
    assert len(recorder.hits) == 3
    assert again.error is not None and "(after 2 attempts)" in again.error["message"]


async def test_4xx_not_retried_unless_listed(rec: tuple[Recorder, TestServer]) -> None:
    """A 404 is final by default; `on: ["404"]` makes it retryable."""
    recorder, srv = rec
    recorder.script = [(404, {}), (404, {})]
    client = client_for(sleep=Sleeps())
    try:
        first = await call(client, url=str(srv.make_url("/a")))
        second = await call(client, url=str(srv.make_url("/a")), retry={"on": ["404"]})
    finally:
        await client.close()
    assert first.status == "failed" and len(recorder.hits) == 3
    assert second.status == "succeeded"


async def test_connection_errors_are_retried() -> None:
    """A refused connection is retried (3 attempts for GET) and then fails as HttpError."""
    sleeps = Sleeps()
    client = client_for(sleep=sleeps)
    try:
        result = await call(client, url="http://127.0.0.1:9/nothing")
    finally:
        await client.close()
    assert result.status == "failed"
    assert result.error is not None and result.error["type"] == "HttpError"
    assert "failed" in result.error["message"] and "(after 3 attempts)" in result.error["message"]
    assert len(sleeps.delays) == 2


async def test_timeout_fails_with_clear_error(rec: tuple[Recorder, TestServer]) -> None:
    """A step timeout is a TimeoutError naming the URL and the limit."""
    _recorder, srv = rec
    client = client_for(sleep=Sleeps())
    start = time.monotonic()
    try:
        result = await call(
            client, url=str(srv.make_url("/slow")), timeout="200ms", retry={"max_attempts": 1}
        )
    finally:
        await client.close()
    assert time.monotonic() - start < 2
    assert result.error is not None
    assert result.error["type"] == "TimeoutError"
    assert result.error["message"] == (f"GET {srv.make_url('/slow')} timed out (limit 0.2s)")


async def test_response_over_cap_fails_cleanly(rec: tuple[Recorder, TestServer]) -> None:
    """A 2xx body over max_response_bytes fails the step at once (no retry, no huge read)."""
    recorder, srv = rec
    client = client_for(sleep=Sleeps())
    try:
        result = await call(client, url=str(srv.make_url("/big")))
    finally:
        await client.close()
    assert result.error is not None
    assert result.error["type"] == "HttpError"
    assert "response body exceeds 3000 bytes" in result.error["message"]
    assert len(recorder.hits) == 1


async def test_templated_path_value_stays_one_segment(rec: tuple[Recorder, TestServer]) -> None:
    """`../admin?x=1` in the path is one encoded segment; query values cannot add parameters."""
    _recorder, srv = rec
    base = f"http://127.0.0.1:{srv.port}"
    client = client_for(sleep=Sleeps())
    try:
        result = await run(
            [
                step("Create Variable", name="name", value="../admin?x=1"),
                step("Create Variable", name="q", value="a&b=c#d e"),
                step(
                    "External API Request",
                    url=base + "/raw/users/{{name}}/orders?q={{q}}&n=1",
                    return_variable="r",
                ),
                step("External API Request", url=base + "/raw/{{'..'}}/x", return_variable="d"),
                step("Return", value="{{[r.body, d.body]}}"),
            ],
            resources=Resources(http=client),
        )
    finally:
        await client.close()
    assert result.status == "succeeded", result.error
    body, dots = result.value
    assert body["raw_path"] == "/raw/users/..%2Fadmin%3Fx%3D1/orders?q=a%26b%3Dc%23d%20e&n=1"
    assert body["parts"] == "/raw/users/../admin?x=1/orders"
    assert dots["raw_path"] == "/raw/%2E%2E/x"


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("https://api.x.com/v1/{{a}}", {"a": "b/c"}, "https://api.x.com/v1/b%2Fc"),
        (
            "https://api.x.com/v1/{{a}}?k={{b}}",
            {"a": 7, "b": "x y"},
            "https://api.x.com/v1/7?k=x%20y",
        ),
        ("{{a}}/users/{{b}}", {"a": "https://h.io/v2", "b": "1?"}, "https://h.io/v2/users/1%3F"),
        ("https://{{a}}.h.io/p", {"a": "eu"}, "https://eu.h.io/p"),
        ("https://h.io/p#{{a}}", {"a": "x"}, "https://h.io/p#x"),
        ("{{a}}", {"a": "https://h.io/a b"}, "https://h.io/a b"),
    ],
)
def test_compile_url_positions(template: str, values: dict[str, Any], expected: str) -> None:
    """Each template value is encoded for the URL position it lands in."""
    assert str(compile_url(template)(SimpleNamespace(vars=values))) == expected


def test_host_value_cannot_change_the_url() -> None:
    """A value in the host position may not carry a path, userinfo or port separator."""
    with pytest.raises(StepError, match="not a host name"):
        compile_url("https://{{a}}.h.io/")(SimpleNamespace(vars={"a": "evil.com/x?"}))


def test_retry_after_parsing() -> None:
    """Retry-After is delta-seconds or an HTTP date; junk is ignored."""
    now = datetime(2026, 3, 8, 12, 0, 0, tzinfo=UTC)
    assert retry_after("3") == 3.0
    assert retry_after("Sun, 08 Mar 2026 12:00:05 GMT", now) == 5.0
    assert retry_after("soon") is None
    assert retry_after(None) is None


def test_bad_retry_condition_is_a_load_error() -> None:
    """`retry.on` accepts connection, timeout, 4xx, 5xx and status codes only."""
    issues = compile_issues(
        [step("External API Request", url="http://x", retry={"on": ["5xx", "sometimes"]})]
    )
    assert [i.path for i in issues] == ["function_stack[0].retry.on"]
    assert "sometimes" in issues[0].message
