"""Secrets masked by construction: registry, env tracking, logs, traces, errors, trigger --json."""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from daemon.core.secrets import SecretEnv, SecretRegistry, is_secret_header
from daemon.ops import logs
from daemon.resources.bundle import Resources
from daemon.resources.http.client import HttpClient
from tests.steps.helpers import run, step

ROOT = Path(__file__).resolve().parents[2]


def test_registry_masks_longest_first_and_tokens() -> None:
    """A secret and the token of a `Bearer x` value are masked; short values are ignored."""
    reg = SecretRegistry()
    assert reg.mask("nothing yet") == "nothing yet"
    reg.add("Bearer s3cr3t-token")
    reg.add("s3cr3t")
    reg.add("ab")
    assert reg.mask("auth=Bearer s3cr3t-token;") == "auth=***;"
    assert reg.mask("echo s3cr3t-token and s3cr3t") == "echo *** and ***"
    assert reg.mask("ab cd") == "ab cd"
    assert reg.mask_value({"k": ["x s3cr3t", 1, None], "s3cr3t": True}) == {
        "k": ["x ***", 1, None],
        "***": True,
    }


def test_registry_url_userinfo_and_env_flags() -> None:
    """URL passwords are tracked; obvious flag words from env are not."""
    reg = SecretRegistry()
    reg.add_url("postgresql://app:pa%24%24word@db:5432/x")
    assert reg.mask("pa$$word pa%24%24word") == "*** ***"
    reg.add_env_value("true")
    assert reg.mask("true") == "true"


def test_secret_env_registers_on_read() -> None:
    """Only the env values a task reads become secrets."""
    reg = SecretRegistry()
    env = SecretEnv({"A": "alpha-value", "B": "beta-value"}, reg)
    assert env.get("A") == "alpha-value"
    assert env.get("MISSING") is None
    assert reg.mask("alpha-value beta-value") == "*** beta-value"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("Authorization", True),
        ("proxy-authorization", True),
        ("Cookie", True),
        ("X-Api-Key", True),
        ("X-Auth-Token", True),
        ("Stripe-Key", True),
        ("Content-Type", False),
        ("Idempotency-Key", False),  # carries task.slot_id, no secret
        ("Accept", False),
    ],
)
def test_secret_headers(name: str, secret: bool) -> None:
    """Authorization, Cookie, *-Key and *-Token headers are secret."""
    assert is_secret_header(name) is secret


async def _echo(request: web.Request) -> web.Response:
    """Echo the credential headers back, in the body (and in an error for /fail)."""
    seen = {
        "authorization": request.headers.get("Authorization"),
        "key": request.headers.get("X-Api-Key"),
    }
    status = 400 if request.path == "/fail" else 200
    return web.json_response(seen, status=status)


@pytest.fixture
async def echo_server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _echo)
    srv = TestServer(app, host="127.0.0.1", port=0)
    await srv.start_server()
    yield srv
    await srv.close()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.configure(level="debug", fmt="json", stream=stream)
    yield stream
    structlog.reset_defaults()


def _stack(port: int) -> list[dict[str, object]]:
    base = f"http://127.0.0.1:{port}"
    return [
        step(
            "External API Request",
            url=base + "/echo",
            headers={"Authorization": "Bearer {{env.LEAK_TOKEN}}"},
            return_variable="r",
        ),
        step("Log", level="warning", message="server said {{r.body}}"),
        step(
            "External API Request",
            url=base + "/fail",
            headers={"X-Api-Key": "{{env.LEAK_TOKEN}}"},
        ),
    ]


async def test_secret_echoed_back_is_masked_in_logs_trace_and_error(
    echo_server: TestServer, log_stream: io.StringIO
) -> None:
    """A token from env, sent in headers and echoed in a body and an error, is `***` in the
    log stream, the step trace outputs and the run error — yet the request carried it."""
    token = "tok-" + secrets.token_hex(8)
    client = HttpClient(allow_hosts=["127.0.0.1"])
    try:
        result = await run(
            _stack(echo_server.port),
            resources=Resources(http=client, env={"LEAK_TOKEN": token}),
        )
    finally:
        await client.close()
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["message"].startswith("HTTP 400")
    assert "***" in result.error["message"]
    assert result.trace[0].output["body"]["authorization"] == "***"
    everything = orjson.dumps(
        [result.error, [r.output for r in result.trace], [r.as_dict() for r in result.trace]]
    ).decode()
    captured = log_stream.getvalue()
    assert "server said" in captured
    assert token not in everything
    assert token not in captured


async def test_trigger_json_never_shows_the_secret(echo_server: TestServer, tmp_path: Path) -> None:
    """`cronstack trigger --json` (a real subprocess on a temp config): the env secret the
    server echoes appears nowhere on stdout or stderr."""
    token = "tok-" + secrets.token_hex(8)
    port = echo_server.port
    (tmp_path / "config.toml").write_text(
        f"""
[daemon]
tasks = []

[http]
allow_hosts = ["127.0.0.1:{port}"]

[admin]
listen = ""

[[task]]
name = "leak"

[[task.function_stack]]
function = "External API Request"
url = "http://127.0.0.1:{port}/echo"
headers = {{ Authorization = "Bearer {{{{env.LEAK_TOKEN}}}}" }}
return_variable = "r"

[[task.function_stack]]
function = "Log"
level = "error"
message = "server said {{{{r.body}}}}"

[[task.function_stack]]
function = "External API Request"
url = "http://127.0.0.1:{port}/fail"
headers = {{ "X-Api-Key" = "{{{{env.LEAK_TOKEN}}}}" }}
""",
        encoding="utf-8",
    )
    env = {**os.environ, "LEAK_TOKEN": token}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon.cli",
        "trigger",
        "leak",
        "-c",
        str(tmp_path / "config.toml"),
        "--json",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1, err.decode()
    doc = orjson.loads(out)
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "HttpError"
    assert "***" in doc["error"]["message"]
    assert "server said" in err.decode()  # the Log step did log, masked
    assert token.encode() not in out
    assert token.encode() not in err
