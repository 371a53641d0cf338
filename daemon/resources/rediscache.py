"""The Redis cache backend (redis.asyncio), split from `cache` so redis-py loads only when used."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from daemon.core.errors import CacheError
from daemon.resources.cache import Cache, Number, _check_by, _describe, _dumps, _loads, _not_a_list


class RedisCache(Cache):
    """Redis through one `BlockingConnectionPool`: bursts wait for a connection instead of failing,
    and a connection lost while Redis restarts is replaced on the next command."""

    def __init__(
        self,
        url: str,
        prefix: str = "",
        max_connections: int = 20,
        *,
        connect_timeout: float = 5.0,
        pool_timeout: float = 10.0,
    ) -> None:
        self.prefix = prefix
        self.where = _describe(url)
        self._pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=pool_timeout,
            socket_connect_timeout=connect_timeout,
            health_check_interval=30,
            # One immediate retry re-dials a pooled connection that went stale while Redis
            # restarted; more would only stall a step while Redis is really down (the task's
            # own retry policy decides what happens then).
            retry=Retry(NoBackoff(), 1),
        )
        self._redis = aioredis.Redis(connection_pool=self._pool)

    def _fail(self, op: str, key: str, exc: Exception) -> CacheError:
        if isinstance(exc, redis_errors.ResponseError):
            return CacheError(f'cache {op} "{key}" failed: {exc}')
        return CacheError(f"cache unavailable: Redis at {self.where}: {exc}")

    async def get(self, key: str) -> Any:
        try:
            raw = await self._redis.get(self.prefix + key)
        except redis_errors.RedisError as exc:
            raise self._fail("get", key, exc) from None
        return _loads(raw)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        raw = _dumps(value)
        try:
            await self._redis.set(self.prefix + key, raw, px=_ms(ttl))
        except redis_errors.RedisError as exc:
            raise self._fail("set", key, exc) from None

    async def delete(self, key: str) -> int:
        try:
            return int(await self._redis.delete(self.prefix + key))
        except redis_errors.RedisError as exc:
            raise self._fail("delete", key, exc) from None

    async def increment(self, key: str, by: Number = 1, ttl: float | None = None) -> Number:
        _check_by(by)
        full = self.prefix + key
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                if isinstance(by, int):
                    pipe.incrby(full, by)
                else:
                    pipe.incrbyfloat(full, by)
                if ttl is not None:
                    pipe.pexpire(full, _ms(ttl) or 1, nx=True)
                results = await pipe.execute()
        except redis_errors.ResponseError as exc:
            if "not an integer" in str(exc) or "not a valid float" in str(exc):
                raise CacheError(
                    f'cannot increment "{key}": the stored value is not a number'
                ) from None
            raise self._fail("increment", key, exc) from None
        except redis_errors.RedisError as exc:
            raise self._fail("increment", key, exc) from None
        # INCRBY answers an int and INCRBYFLOAT a float (redis-py's response callbacks).
        return results[0]

    async def exists(self, key: str) -> bool:
        try:
            return bool(await self._redis.exists(self.prefix + key))
        except redis_errors.RedisError as exc:
            raise self._fail("exists", key, exc) from None

    async def expire(self, key: str, ttl: float) -> bool:
        try:
            return bool(await self._redis.pexpire(self.prefix + key, _ms(ttl) or 1))
        except redis_errors.RedisError as exc:
            raise self._fail("expire", key, exc) from None

    async def push(self, key: str, value: Any, *, front: bool = False) -> int:
        raw = _dumps(value)
        try:
            full = self.prefix + key
            added = self._redis.lpush(full, raw) if front else self._redis.rpush(full, raw)
            return int(await added)
        except redis_errors.RedisError as exc:
            raise self._list_fail("push", key, exc) from None

    async def pop(self, key: str, *, front: bool = False) -> Any:
        try:
            full = self.prefix + key
            raw = await (self._redis.lpop(full) if front else self._redis.rpop(full))
        except redis_errors.RedisError as exc:
            raise self._list_fail("pop", key, exc) from None
        return _loads(raw)  # type: ignore[arg-type]

    async def range(self, key: str, start: int, stop: int) -> list[Any]:
        try:
            raws = await self._redis.lrange(self.prefix + key, start, stop)
        except redis_errors.RedisError as exc:
            raise self._list_fail("range", key, exc) from None
        return [_loads(r) for r in raws]

    async def length(self, key: str) -> int:
        try:
            return int(await self._redis.llen(self.prefix + key))
        except redis_errors.RedisError as exc:
            raise self._list_fail("count", key, exc) from None

    async def remove(self, key: str, value: Any, count: int = 0) -> int:
        try:
            return int(await self._redis.lrem(self.prefix + key, count, _dumps(value).decode()))
        except redis_errors.RedisError as exc:
            raise self._list_fail("remove", key, exc) from None

    async def keys(self, pattern: str) -> list[str]:
        plen = len(self.prefix)
        try:
            found = [
                (k.decode() if isinstance(k, bytes) else k)[plen:]
                async for k in self._redis.scan_iter(match=self.prefix + pattern, count=500)
            ]
        except redis_errors.RedisError as exc:
            raise self._fail("keys", pattern, exc) from None
        return sorted(found)

    def _list_fail(self, op: str, key: str, exc: Exception) -> CacheError:
        if isinstance(exc, redis_errors.ResponseError) and "WRONGTYPE" in str(exc):
            return _not_a_list(key)
        return self._fail(op, key, exc)

    async def close(self) -> None:
        await self._redis.aclose()
        await self._pool.disconnect()


def _ms(ttl: float | None) -> int | None:
    # Milliseconds so "500ms" works; at least 1 ms, since Redis rejects an expiry of 0.
    return None if ttl is None else max(1, round(ttl * 1000))
