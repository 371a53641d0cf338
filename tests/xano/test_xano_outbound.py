"""XanoScript's outside calls on real services: api.request and util.send_email against a
loopback HTTP server (through the private-network guard), redis.* on Redis and in memory; and
the JSON Send Email step for each provider."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from daemon.core.runs import RunResult
from daemon.engine.compiler import compile_stack
from daemon.engine.runner import run_stack
from daemon.resources.bundle import Resources
from daemon.resources.cache import Cache
from daemon.resources.http.client import HttpClient
from tests.steps.test_cache import cache as cache
from tests.steps.test_cache import prefix as prefix
from tests.steps.test_cache import raw_redis as raw_redis
from tests.xano.test_xano_statements import REGISTRY, build


class Recorder:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        raw = (await request.read()).decode()
        self.seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": raw,
            }
        )
        if request.path.startswith("/missing"):
            return web.json_response({"error": "not here"}, status=404)
        if request.path.startswith("/text"):
            return web.Response(text="plain words")
        if request.path.startswith("/down"):
            return web.Response(status=503, text="try later")
        return web.json_response({"ok": True, "id": "msg-1"}, headers={"X-Reply": "yes"})


@pytest.fixture
async def api() -> AsyncIterator[tuple[TestServer, Recorder]]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    srv = TestServer(app, host="127.0.0.1", port=0)
    await srv.start_server()
    yield srv, recorder
    await srv.close()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient(allow_hosts=["127.0.0.1"])
    yield client
    await client.close()


async def run_xs(body: str, resources: Resources) -> RunResult:
    steps, errors = build(body)
    assert not errors, errors
    compiled = compile_stack(steps, registry=REGISTRY, base_path="stack")
    return await run_stack(compiled.steps, resources=resources)


def base(srv: TestServer) -> str:
    return str(srv.make_url("")).rstrip("/")


async def test_api_request_get_post_and_statuses(
    api: tuple[TestServer, Recorder], http: HttpClient
) -> None:
    """GET sends params in the query, POST as a JSON body; headers are "Name: value" texts;
    the result is {request, response: {status, headers, result}}; a 404 does not raise."""
    srv, rec = api
    body = f"""
    api.request {{
      url = "{base(srv)}/items"
      method = "GET"
      params = {{page: 2, q: "x y"}}
      headers = []|push:"Authorization: Bearer t0k3n"|push:"X-Trace: 1"
    }} as $get
    api.request {{
      url = "{base(srv)}/items"
      method = "POST"
      params = {{name: "n", tags: ["a"]}}
    }} as $post
    api.request {{ url = "{base(srv)}/missing" method = "GET" }} as $miss
    api.request {{ url = "{base(srv)}/text" }} as $text
    return {{ value = [$get, $post.response.result.id, $miss.response, $text.response.result] }}
    """
    done = await run_xs(body, Resources(http=http))
    assert done.status == "succeeded", done.error
    got, post_id, miss, text = done.value
    assert got["response"]["status"] == 200 and got["response"]["result"]["ok"] is True
    assert "X-Reply: yes" in got["response"]["headers"]
    assert got["request"]["method"] == "GET"
    assert post_id == "msg-1"
    assert miss["status"] == 404 and miss["result"] == {"error": "not here"}
    assert text == "plain words"
    first, second = rec.seen[0], rec.seen[1]
    assert first["query"] == {"page": "2", "q": "x y"} and first["body"] == ""
    assert first["headers"]["Authorization"] == "Bearer t0k3n"
    assert first["headers"]["X-Trace"] == "1"
    assert second["query"] == {} and json.loads(second["body"]) == {"name": "n", "tags": ["a"]}


async def test_api_request_is_guarded(http: HttpClient) -> None:
    """Private addresses stay blocked: the error is catchable in try_catch."""
    guarded = HttpClient()  # no allow_hosts
    try:
        body = """
        try_catch {
          try {
            api.request { url = "http://127.0.0.1:9/x" } as $r
          }
          catch {
            var $r { value = $error.message }
          }
        }
        return { value = $r }"""
        done = await run_xs(body, Resources(http=guarded))
        assert done.status == "succeeded"
        assert "blocked" in done.value
    finally:
        await guarded.close()


async def test_redis_statements(cache: Cache) -> None:
    """The redis.* statements on Redis and the memory cache (a miss reads null)."""
    body = """
    redis.set { key = "k" data = {a: 1} ttl = 60 }
    redis.get { key = "k" } as $k
    redis.get { key = "nope" } as $miss
    redis.has { key = "k" } as $has
    redis.incr { key = "n" by = 5 } as $n1
    redis.decr { key = "n" by = 2 } as $n2
    redis.push { key = "l" value = "a" } as $len1
    redis.push { key = "l" value = "b" }
    redis.unshift { key = "l" value = "z" }
    redis.range { key = "l" start = 0 stop = -1 } as $all
    redis.pop { key = "l" } as $last
    redis.shift { key = "l" } as $first
    redis.count { key = "l" } as $count
    redis.push { key = "l" value = "a" }
    redis.remove { key = "l" value = "a" count = 0 } as $removed
    redis.keys { search = "*" } as $keys
    redis.del { key = "k" }
    redis.has { key = "k" } as $gone
    return { value = [$k, $miss, $has, $n1, $n2, $len1, $all, $last, $first, $count, $removed,
      $keys, $gone] }"""
    done = await run_xs(body, Resources(cache=cache))
    assert done.status == "succeeded", done.error
    assert done.value == [
        {"a": 1},
        None,
        True,
        5,
        3,
        1,
        ["z", "a", "b"],
        "b",
        "z",
        1,
        2,
        ["k", "n"],  # the emptied list is gone, as in Redis
        False,
    ]


async def test_redis_ratelimit(cache: Cache) -> None:
    """ratelimit counts per window; over max it fails with the message and toomanyrequests."""
    body = """
    var $seen { value = [] }
    for (4) {
      each as $i {
        try_catch {
          try {
            redis.ratelimit { key = "rl" max = 2 ttl = 60 error = "slow down" } as $calls
            array.push $seen { value = $calls }
          }
          catch {
            array.push $seen { value = $error.code ~ ": " ~ $error.message }
          }
        }
      }
    }
    return { value = $seen }"""
    done = await run_xs(body, Resources(cache=cache))
    assert done.value == [1, 2] + ["ERROR_CODE_TOO_MANY_REQUESTS: slow down"] * 2


_TO = ["a@ex.com", "b@ex.com"]
EXPECTED: dict[str, tuple[str, Any]] = {
    "resend": (
        "/emails",
        {
            "from": "me@ex.com",
            "to": _TO,
            "subject": "Hi",
            "text": "Body",
            "cc": ["c@ex.com"],
            "reply_to": ["r@ex.com"],
        },
    ),
    "sendgrid": (
        "/v3/mail/send",
        {
            "personalizations": [
                {"to": [{"email": a} for a in _TO], "cc": [{"email": "c@ex.com"}]}
            ],
            "from": {"email": "me@ex.com"},
            "subject": "Hi",
            "content": [{"type": "text/plain", "value": "Body"}],
            "reply_to": {"email": "r@ex.com"},
        },
    ),
    "postmark": (
        "/email",
        {
            "From": "me@ex.com",
            "To": "a@ex.com, b@ex.com",
            "Subject": "Hi",
            "TextBody": "Body",
            "Cc": "c@ex.com",
            "ReplyTo": "r@ex.com",
        },
    ),
    "mailgun": (
        "/v3/ex.com/messages",
        {
            "from": ["me@ex.com"],
            "subject": ["Hi"],
            "to": _TO,
            "cc": ["c@ex.com"],
            "text": ["Body"],
            "h:Reply-To": ["r@ex.com"],
        },
    ),
}


@pytest.mark.parametrize("provider", sorted(EXPECTED))
async def test_send_email_each_provider(
    provider: str, api: tuple[TestServer, Recorder], http: HttpClient
) -> None:
    """util.send_email posts each provider's API format, authenticated with the key (from
    $env, masked), to the configured base URL; the result is the provider's answer."""
    srv, rec = api
    body = f"""
    util.send_email {{
      service_provider = "{provider}"
      api_key = $env.MAIL_KEY
      to = ["a@ex.com", "b@ex.com"]
      cc = ["c@ex.com"]
      reply_to = "r@ex.com"
      from = "me@ex.com"
      subject = "Hi"
      message = "Body"
    }} as $sent"""
    resources = Resources(
        http=http, env={"MAIL_KEY": "key-123"}, endpoints={f"email.{provider}": base(srv)}
    )
    done = await run_xs(body + "\n    return { value = $sent }", resources)
    assert done.status == "succeeded", done.error
    assert done.value == {"status": 200, "result": {"ok": True, "id": "msg-1"}}
    (seen,) = rec.seen
    path, expected = EXPECTED[provider]
    assert seen["path"] == path
    if provider == "mailgun":
        assert parse_qs(seen["body"]) == expected
        auth = seen["headers"]["Authorization"].removeprefix("Basic ")
        assert base64.b64decode(auth).decode() == "api:key-123"
    else:
        assert json.loads(seen["body"]) == expected
        header = "X-Postmark-Server-Token" if provider == "postmark" else "Authorization"
        assert seen["headers"][header].endswith("key-123")
    assert "key-123" not in json.dumps([r.output for r in done.trace], default=str)


async def test_send_email_failure_and_refusals(
    api: tuple[TestServer, Recorder], http: HttpClient
) -> None:
    """A provider error fails the step (HttpError); the xano provider is refused at load."""
    srv, _ = api
    resources = Resources(http=http, endpoints={"email.resend": base(srv) + "/down"})
    done = await run_xs(
        'util.send_email { api_key = "k" to = "a@ex.com" from = "b@ex.com" }', resources
    )
    assert done.status == "failed" and done.error is not None
    assert done.error["type"] == "HttpError" and "503" in done.error["message"]
    _, errors = build(
        'util.send_email { service_provider = "xano" to = "a@ex.com" from = "b@ex.com" }'
    )
    assert "cannot run here" in errors[0].message and errors[0].line == 3


async def test_send_email_json_step(api: tuple[TestServer, Recorder], http: HttpClient) -> None:
    """The JSON/TOML form: Send Email with the same fields."""
    srv, rec = api
    steps = [
        {
            "function": "Send Email",
            "provider": "resend",
            "api_key": "{{ env.KEY }}",
            "from": "me@ex.com",
            "to": "a@ex.com",
            "subject": "Report {{ 1 + 1 }}",
            "message": "<b>hi</b>",
            "html": True,
        }
    ]
    compiled = compile_stack(steps, registry=REGISTRY)
    done = await run_stack(
        compiled.steps,
        resources=Resources(http=http, env={"KEY": "kk"}, endpoints={"email.resend": base(srv)}),
    )
    assert done.status == "succeeded", done.error
    assert json.loads(rec.seen[0]["body"]) == {
        "from": "me@ex.com",
        "to": ["a@ex.com"],
        "subject": "Report 2",
        "html": "<b>hi</b>",
    }
