"""Cache backends (memory and a real Redis) and the Data Caching step."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from daemon.core.errors import CacheError
from daemon.resources.bundle import Resources
from daemon.resources.cache import Cache, MemoryCache, create_cache
from daemon.resources.rediscache import RedisCache
from tests.steps.helpers import compile_issues, run, step

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def raw_redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"cronstack-test:{uuid.uuid4().hex}:"


@pytest.fixture(params=["memory", "redis"])
async def cache(
    request: pytest.FixtureRequest, prefix: str, raw_redis: aioredis.Redis
) -> AsyncIterator[Cache]:
    backend: Cache
    if request.param == "memory":
        backend = MemoryCache(100, prefix)
    else:
        backend = RedisCache(REDIS_URL, prefix)
    yield backend
    await backend.close()
    keys = [k async for k in raw_redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await raw_redis.delete(*keys)


async def test_get_set_delete_exists(cache: Cache) -> None:
    """Values round-trip as JSON; missing keys read as null; delete counts what it removed."""
    assert await cache.get("k") is None
    assert await cache.exists("k") is False
    value = {"id": 1, "tags": ["a"], "price": 1.5, "ok": True, "none": None}
    await cache.set("k", value)
    assert await cache.get("k") == value
    assert await cache.exists("k") is True
    assert await cache.delete("k") == 1
    assert await cache.delete("k") == 0
    assert await cache.get("k") is None


async def test_increment(cache: Cache) -> None:
    """increment starts from 0, adds ints and floats, and refuses non-numbers."""
    assert await cache.increment("n") == 1
    assert await cache.increment("n", 5) == 6
    assert await cache.get("n") == 6
    assert await cache.increment("f", 1.5) == 1.5
    await cache.set("s", "text")
    with pytest.raises(CacheError, match="not a number"):
        await cache.increment("s")


async def test_expire(cache: Cache) -> None:
    """expire is false for a missing key and true (setting a TTL) for an existing one."""
    assert await cache.expire("missing", 10) is False
    await cache.set("k", 1)
    assert await cache.expire("k", 10) is True


async def test_redis_ttl_and_raw_format(prefix: str, raw_redis: aioredis.Redis) -> None:
    """In Redis the key is the prefix + key as written, the value JSON, the TTL ≤ configured."""
    cache = RedisCache(REDIS_URL, prefix)
    try:
        await cache.set("product_7", {"id": 7}, ttl=3600)
        assert await raw_redis.get(f"{prefix}product_7") == b'{"id":7}'
        assert 3590 <= await raw_redis.ttl(f"{prefix}product_7") <= 3600
        await cache.increment("hits", ttl=60)
        await cache.increment("hits", ttl=600)  # keeps the window opened by the first call
        assert 0 < await raw_redis.ttl(f"{prefix}hits") <= 60
        assert await cache.expire("product_7", 0.5)
        assert 0 < await raw_redis.pttl(f"{prefix}product_7") <= 500
        await raw_redis.set(f"{prefix}plain", b"not json")
        assert await cache.get("plain") == "not json"
    finally:
        await cache.close()
        keys = [k async for k in raw_redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await raw_redis.delete(*keys)


async def test_memory_ttl_with_injected_clock() -> None:
    """MemoryCache expires entries on its clock; increment keeps the existing expiry."""
    now = [1000.0]
    cache = MemoryCache(10, clock=lambda: now[0])
    await cache.set("a", 1, ttl=10)
    await cache.increment("c", ttl=5)
    now[0] += 4
    assert await cache.increment("c", ttl=100) == 2
    assert cache.ttl("a") == pytest.approx(6)
    now[0] += 1.5
    assert await cache.get("c") is None
    assert await cache.get("a") == 1
    now[0] += 5
    assert await cache.exists("a") is False


async def test_memory_bound_evicts_least_recently_used() -> None:
    """Past max_entries the least recently used key goes first."""
    cache = MemoryCache(2)
    await cache.set("a", 1)
    await cache.set("b", 2)
    await cache.get("a")
    await cache.set("c", 3)
    assert await cache.get("b") is None
    assert await cache.get("a") == 1
    assert await cache.get("c") == 3


async def test_memory_values_are_copies() -> None:
    """Mutating a value read from the memory cache does not change what is stored."""
    cache = MemoryCache()
    await cache.set("k", {"list": [1]})
    got = await cache.get("k")
    got["list"].append(2)
    assert await cache.get("k") == {"list": [1]}


async def test_redis_down_is_cache_error() -> None:
    """A Redis that cannot be reached fails with CacheError naming where it was."""
    cache = RedisCache("redis://:hunter2@127.0.0.1:9/0", "p:")
    try:
        with pytest.raises(CacheError, match=r"cache unavailable: Redis at 127\.0\.0\.1:9/0") as ei:
            await cache.get("k")
        assert "hunter2" not in str(ei.value)
        with pytest.raises(CacheError):
            await cache.set("k", 1)
    finally:
        await cache.close()


async def test_unstorable_value_is_cache_error() -> None:
    """A value that is not JSON-serializable is a CacheError."""
    with pytest.raises(CacheError, match="cannot store"):
        await MemoryCache().set("k", object())


def test_create_cache() -> None:
    """create_cache picks the backend from the URL scheme and rejects others."""
    assert isinstance(create_cache("memory://", prefix="x"), MemoryCache)
    assert isinstance(create_cache(REDIS_URL), RedisCache)
    with pytest.raises(ValueError, match="unsupported cache url"):
        create_cache("memcached://localhost")


async def test_step_operations(cache: Cache) -> None:
    """The step's results per operation, including the seed's set with a numeric ttl."""
    result = await run(
        [
            step("Create Variable", name="product", value={"id": 7, "name": "x"}),
            step(
                "Data Caching (Redis)",
                operation="set",
                key="product_{{product.id}}",
                value="{{product}}",
                ttl=3600,
                return_variable="set",
            ),
            step("data_caching", operation="get", key="product_7", return_variable="got"),
            step("data_caching", operation="exists", key="product_7", return_variable="ex"),
            step("data_caching", operation="increment", key="n", value=2, return_variable="i1"),
            step("data_caching", operation="increment", key="n", return_variable="i2"),
            step("data_caching", operation="expire", key="n", ttl="1m", return_variable="exp"),
            step("data_caching", operation="delete", key="product_7", return_variable="del"),
            step("data_caching", operation="get", key="product_7", return_variable="gone"),
            step(
                "Return",
                value=[
                    "{{set}}",
                    "{{got}}",
                    "{{ex}}",
                    "{{i1}}",
                    "{{i2}}",
                    "{{exp}}",
                    "{{del}}",
                    "{{gone}}",
                ],
            ),
        ],
        resources=Resources(cache=cache),
    )
    assert result.status == "succeeded", result.error
    assert result.value == [True, {"id": 7, "name": "x"}, True, 2, 3, True, 1, None]


async def test_step_cache_error_type() -> None:
    """A cache failure fails the step with error type CacheError."""
    cache = RedisCache("redis://127.0.0.1:9/0")
    try:
        result = await run(
            [step("data_caching", operation="get", key="k")], resources=Resources(cache=cache)
        )
    finally:
        await cache.close()
    assert result.error is not None
    assert result.error["type"] == "CacheError"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"operation": "fetch", "key": "k"}, "operation"),
        ({"operation": "expire", "key": "k"}, "ttl"),
        ({"operation": "set", "key": "k", "value": 1, "ttl": "soon"}, "ttl"),
        ({"operation": "set", "key": "k", "value": 1, "ttl": 0}, "ttl"),
    ],
)
def test_load_time_errors(fields: dict[str, Any], field: str) -> None:
    """Bad operations and ttls are load-time errors on their path."""
    issues = compile_issues([step("Data Caching (Redis)", **fields)])
    assert [i.path for i in issues] == [f"function_stack[0].{field}"]
