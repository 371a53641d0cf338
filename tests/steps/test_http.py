"""External API Request and the shared HttpClient, against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from daemon.core.errors import HttpError, StepTimeoutError
from daemon.resources.bundle import Resources
from daemon.resources.http.client import HttpClient, safe_url
from steps.http import excerpt
from tests.steps.helpers import compile_issues, run, step


async def _echo(request: web.Request) -> web.Response:
    raw = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "query": [[k, v] for k, v in request.query.items()],
            "content_type": request.headers.get("Content-Type"),
            "user_agent": request.headers.get("User-Agent"),
            "x_token": request.headers.get("X-Token"),
            "body": raw.decode(),
        }
    )


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="E" * 5000)


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(text="late")


async def _big(request: web.Request) -> web.StreamResponse:
    # Streamed without Content-Length, so the client must enforce the cap while reading.
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    for _ in range(10):
        await resp.write(b"x" * 500)
    await resp.write_eof()
    return resp


async def _text(request: web.Request) -> web.Response:
    return web.Response(text="héllo", content_type="text/plain", charset="utf-8")


async def _problem(request: web.Request) -> web.Response:
    return web.Response(
        body=b'{"title": "nope"}', content_type="application/problem+json", status=200
    )


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/big", _big)
    app.router.add_get("/text", _text)
    app.router.add_get("/problem", _problem)
    srv = TestServer(app, host="127.0.0.1", port=0)
    await srv.start_server()
    yield srv
    await srv.close()


async def _no_sleep(_delay: float) -> None:
    """Retry backoff without the wait (tests that need the real wait build their own client)."""


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    # The guard is on by default; the loopback test server is opened explicitly.
    http = HttpClient(
        max_response_bytes=3000,
        user_agent="cronstack-test",
        allow_hosts=["127.0.0.1"],
        sleep=_no_sleep,
    )
    yield http
    await http.close()


def url(server: TestServer, path: str) -> str:
    return str(server.make_url(path))


async def call(client: HttpClient, **fields: Any) -> Any:
    result = await run(
        [
            step("External API Request", return_variable="r", **fields),
            step("Return", value="{{r}}"),
        ],
        resources=Resources(http=client),
    )
    return result


async def test_get_json_with_params_and_headers(server: TestServer, client: HttpClient) -> None:
    """GET parses the JSON body; params are encoded (lists repeat, nulls dropped, bools as JSON)."""
    result = await call(
        client,
        url=url(server, "/echo"),
        params={"q": "a b&c", "n": 2, "flag": True, "tags": ["x", "y"], "skip": None},
        headers={"X-Token": "t"},
    )
    assert result.status == "succeeded", result.error
    assert result.value["status"] == 200
    assert result.value["headers"]["Content-Type"].startswith("application/json")
    body = result.value["body"]
    assert body["method"] == "GET"
    assert body["query"] == [
        ["q", "a b&c"],
        ["n", "2"],
        ["flag", "true"],
        ["tags", "x"],
        ["tags", "y"],
    ]
    assert body["user_agent"] == "cronstack-test"
    assert body["x_token"] == "t"


async def test_post_json_body(server: TestServer, client: HttpClient) -> None:
    """A dict body is sent as JSON with a JSON content type."""
    result = await call(
        client, url=url(server, "/echo"), method="post", body={"a": [1, {"b": None}]}
    )
    body = result.value["body"]
    assert body["method"] == "POST"
    assert body["content_type"] == "application/json"
    assert body["body"] == '{"a":[1,{"b":null}]}'


async def test_form_body(server: TestServer, client: HttpClient) -> None:
    """With a form Content-Type, a dict body is form-encoded."""
    result = await call(
        client,
        url=url(server, "/echo"),
        method="POST",
        headers={"content-type": "application/x-www-form-urlencoded"},
        body={"name": "A&B", "n": 1, "ok": False},
    )
    body = result.value["body"]
    assert body["content_type"] == "application/x-www-form-urlencoded"
    assert body["body"] == "name=A%26B&n=1&ok=false"


async def test_string_body_sent_as_is(server: TestServer, client: HttpClient) -> None:
    """A string body is sent unchanged."""
    result = await call(
        client,
        url=url(server, "/echo"),
        method="PUT",
        headers={"Content-Type": "application/xml"},
        body="<a>1</a>",
    )
    body = result.value["body"]
    assert body["content_type"] == "application/xml"
    assert body["body"] == "<a>1</a>"


async def test_text_and_problem_json_bodies(server: TestServer, client: HttpClient) -> None:
    """Non-JSON bodies come back as text; `+json` types are parsed."""
    text = await call(client, url=url(server, "/text"))
    assert text.value["body"] == "héllo"
    problem = await call(client, url=url(server, "/problem"))
    assert problem.value["body"] == {"title": "nope"}


async def test_non_2xx_is_http_error_with_bounded_excerpt(
    server: TestServer, client: HttpClient
) -> None:
    """A 500 fails with HttpError carrying the status and at most 1 KiB of the body."""
    result = await call(
        client, url=url(server, "/status/500") + "?api_key=secret", retry={"max_attempts": 1}
    )
    assert result.status == "failed"
    err = result.error
    assert err is not None
    assert err["type"] == "HttpError"
    assert err["status"] == 500
    assert err["message"].startswith(f"HTTP 500 from GET {url(server, '/status/500')}: ")
    assert "secret" not in err["message"]
    assert err["message"].rsplit(": ", 1)[1] == "E" * 1024


async def test_step_timeout_is_timeout_error(server: TestServer, client: HttpClient) -> None:
    """A step-level timeout fails the step with error type TimeoutError, promptly."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await call(client, url=url(server, "/slow"), timeout="200ms")
    assert loop.time() - start < 2
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "TimeoutError"
    assert "timed out" in result.error["message"]


async def test_response_over_cap(server: TestServer, client: HttpClient) -> None:
    """A body larger than max_response_bytes is an HttpError, not a memory spike."""
    with pytest.raises(HttpError, match="response body exceeds 3000 bytes"):
        await client.request("GET", url(server, "/big"))


async def test_connection_refused_is_http_error(client: HttpClient) -> None:
    """A connection error is an HttpError naming the URL (without its query)."""
    with pytest.raises(HttpError, match=r"GET http://127\.0\.0\.1:9/x failed"):
        await client.request("GET", "http://127.0.0.1:9/x?token=abc")


async def test_client_timeout_raises_step_timeout(server: TestServer, client: HttpClient) -> None:
    """HttpClient.request raises StepTimeoutError when its timeout expires."""
    with pytest.raises(StepTimeoutError):
        await client.request("GET", url(server, "/slow"), timeout=0.1)


async def test_session_is_shared(server: TestServer, client: HttpClient) -> None:
    """Consecutive requests reuse one session (and its connection pool)."""
    await client.request("GET", url(server, "/text"))
    first = client._session
    await client.request("GET", url(server, "/text"))
    assert client._session is first


def test_helpers() -> None:
    """safe_url drops credentials and query; excerpt bounds bytes without splitting characters."""
    assert safe_url("https://u:p@api.x.com:8443/v1/a?key=s#f") == "https://api.x.com:8443/v1/a"
    assert excerpt("é" * 1000) == "é" * 512
    assert excerpt({"a": 1}) == '{"a":1}'
    assert excerpt(None) == ""


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "http://x", "method": "FETCH"}, "method"),
        ({"url": "http://x", "timeout": "soon"}, "timeout"),
        ({"url": "http://x", "retry": {"max_attempts": 0}}, "retry.max_attempts"),
    ],
)
def test_load_time_errors(fields: dict[str, Any], field: str) -> None:
    """Bad literal fields are load-time errors on their path."""
    issues = compile_issues([step("External API Request", **fields)])
    assert [i.path for i in issues] == [f"function_stack[0].{field}"]


def test_retry_shape_is_accepted() -> None:
    """The step accepts the retry shape (max_attempts, initial_delay, max_delay, on)."""
    raw = step(
        "External API Request",
        url="http://x",
        retry={"max_attempts": 3, "initial_delay": "1s", "max_delay": "30s", "on": ["5xx"]},
    )
    assert compile_issues([raw]) == []
