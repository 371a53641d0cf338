"""Data Caching on a real Redis: TTL in one stack, and an outage mid-run that the pool survives."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from daemon.resources.bundle import Resources
from daemon.resources.cache import create_cache
from tests.steps.helpers import run, step

REDIS_BIN = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A private redis-server on its own port that a test can stop and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert REDIS_BIN is not None
        self.proc = subprocess.Popen(
            [
                REDIS_BIN,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):  # wait until it accepts connections (up to 2 s)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    if REDIS_BIN is None:
        pytest.skip("redis-server not installed")
    server = RedisProcess(_free_port())
    server.start()
    yield server
    server.stop()


def _stack(key: str) -> list[dict[str, object]]:
    return [
        step(
            "Data Caching (Redis)",
            operation="set",
            key=key,
            value={"total": 42, "tags": ["a"]},
            ttl="30s",
        ),
        step("Data Caching (Redis)", operation="get", key=key, return_variable="v"),
        step("Return", value="{{v}}"),
    ]


async def test_set_with_ttl_then_get_in_one_stack(private_redis: RedisProcess) -> None:
    """set (ttl 30s) then get in one stack returns the value; Redis holds JSON with TTL <= 30 s."""
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    cache = create_cache(url, prefix="t:")
    raw = aioredis.Redis.from_url(url)
    try:
        result = await run(_stack("report"), resources=Resources(cache=cache))
        assert result.status == "succeeded", result.error
        assert result.value == {"total": 42, "tags": ["a"]}
        assert await raw.get("t:report") == b'{"total":42,"tags":["a"]}'
        assert 0 < await raw.pttl("t:report") <= 30_000
    finally:
        await raw.aclose()
        await cache.close()


async def test_redis_outage_fails_the_step_and_recovers(private_redis: RedisProcess) -> None:
    """Redis stopped mid-run: the step fails with CacheError (nothing else breaks); after Redis
    restarts on the same port the next run succeeds on the same pool."""
    url = f"redis://127.0.0.1:{private_redis.port}/0"
    cache = create_cache(url)
    key = f"k-{uuid.uuid4().hex}"
    try:
        first = await run(_stack(key), resources=Resources(cache=cache))
        assert first.status == "succeeded", first.error

        # Stop Redis between the two steps of one run.
        stack = [
            step("Data Caching (Redis)", operation="set", key=key, value=1),
            step("Sleep", duration="1s"),
            step("Data Caching (Redis)", operation="get", key=key),
        ]
        raw = aioredis.Redis.from_url(url)
        running = asyncio.create_task(run(stack, resources=Resources(cache=cache)))
        try:
            # The first step's write is visible: the run is now inside its Sleep step.
            while await raw.get(key) != b"1":
                await asyncio.sleep(0.005)
        finally:
            await raw.aclose()
        await asyncio.to_thread(private_redis.stop)
        broken = await running
        assert broken.status == "failed"
        assert broken.error is not None
        assert broken.error["type"] == "CacheError"
        assert "cache unavailable" in broken.error["message"]
        assert broken.error["step"] == "function_stack[2]"
        assert [r.status for r in broken.trace] == ["succeeded", "succeeded", "failed"]

        # Still down: fails fast and cleanly again.
        down = await run(_stack(key), resources=Resources(cache=cache))
        assert down.status == "failed" and down.error is not None
        assert down.error["type"] == "CacheError"

        await asyncio.to_thread(private_redis.start)
        again = await run(_stack(key), resources=Resources(cache=cache))
        assert again.status == "succeeded", again.error
        assert again.value == {"total": 42, "tags": ["a"]}
    finally:
        await cache.close()
