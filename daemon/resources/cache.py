"""Cache backends for the Data Caching step: the interface and in-process memory; Redis is in
`rediscache` (values stored as JSON in both), imported only when `[cache] url` names Redis."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

from daemon.core.errors import CacheError

Number = int | float


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise CacheError(f"cannot store value in the cache: {exc}") from None


def _loads(raw: bytes | str | None) -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Written by another app as plain text: hand it back as the string it is.
        return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


def _check_by(by: Any) -> None:
    if isinstance(by, bool) or not isinstance(by, int | float):
        raise CacheError(f"increment amount must be a number, got {by!r:.80}")


class Cache(ABC):
    """What the Data Caching step needs; `ttl` is in seconds, None for no expiry."""

    @abstractmethod
    async def get(self, key: str) -> Any: ...

    @abstractmethod
    async def set(self, key: str, value: Any, ttl: float | None = None) -> None: ...

    @abstractmethod
    async def delete(self, key: str) -> int: ...

    @abstractmethod
    async def increment(self, key: str, by: Number = 1, ttl: float | None = None) -> Number:
        """Add `by` (a missing key counts as 0); `ttl` applies only if the key has no expiry yet,
        so a counter's window starts at its first increment."""

    @abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abstractmethod
    async def expire(self, key: str, ttl: float) -> bool:
        """Set the key's time to live; False if the key does not exist."""

    # Lists (XanoScript's redis.push/pop/range…): items stored as JSON, like every value.

    @abstractmethod
    async def push(self, key: str, value: Any, *, front: bool = False) -> int:
        """Append (or prepend) to the list at `key` (created if missing); the new length."""

    @abstractmethod
    async def pop(self, key: str, *, front: bool = False) -> Any:
        """Remove and return the list's last (or first) item; None when empty or missing."""

    @abstractmethod
    async def range(self, key: str, start: int, stop: int) -> list[Any]:
        """Items `start` to `stop` included (negative counts from the end), as Redis LRANGE."""

    @abstractmethod
    async def length(self, key: str) -> int: ...

    @abstractmethod
    async def remove(self, key: str, value: Any, count: int = 0) -> int:
        """Remove items equal to `value` (all when count is 0, else the first `count`)."""

    @abstractmethod
    async def keys(self, pattern: str) -> list[str]:
        """Keys matching a glob (`user_*`), under the prefix, returned without it."""

    @abstractmethod
    async def close(self) -> None: ...


def _not_a_list(key: str) -> CacheError:
    return CacheError(f'cache "{key}" holds a value that is not a list')


class MemoryCache(Cache):
    """An in-process TTL map bounded to `max_entries` (least recently used evicted first).

    Values are kept JSON-encoded, like in Redis, so a run mutating what it read cannot change
    what the next run gets, and both backends accept exactly the same values.
    """

    def __init__(
        self,
        max_entries: int = 10000,
        prefix: str = "",
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.prefix = prefix
        self._clock = clock
        # key -> (json bytes, deadline on `clock` or None)
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        entry = self._data.get(self.prefix + key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= self._clock():
            del self._data[self.prefix + key]
            return None
        self._data.move_to_end(self.prefix + key)
        return entry

    def _store(self, key: str, raw: bytes, deadline: float | None) -> None:
        full = self.prefix + key
        self._data[full] = (raw, deadline)
        self._data.move_to_end(full)
        if len(self._data) > self.max_entries:
            self._evict()

    def _evict(self) -> None:
        now = self._clock()
        expired = [k for k, (_, d) in self._data.items() if d is not None and d <= now]
        for k in expired:
            del self._data[k]
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def _deadline(self, ttl: float | None) -> float | None:
        return None if ttl is None else self._clock() + ttl

    async def get(self, key: str) -> Any:
        entry = self._live(key)
        return None if entry is None else _loads(entry[0])

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._store(key, _dumps(value), self._deadline(ttl))

    async def delete(self, key: str) -> int:
        if self._live(key) is None:
            return 0
        del self._data[self.prefix + key]
        return 1

    async def increment(self, key: str, by: Number = 1, ttl: float | None = None) -> Number:
        _check_by(by)
        entry = self._live(key)
        current: Any = 0 if entry is None else _loads(entry[0])
        if isinstance(current, bool) or not isinstance(current, int | float):
            raise CacheError(f'cannot increment "{key}": the stored value is not a number')
        new: Number = current + by
        deadline = entry[1] if entry is not None else None
        if deadline is None and ttl is not None:
            deadline = self._deadline(ttl)
        self._store(key, _dumps(new), deadline)
        return new

    async def exists(self, key: str) -> bool:
        return self._live(key) is not None

    async def expire(self, key: str, ttl: float) -> bool:
        entry = self._live(key)
        if entry is None:
            return False
        self._store(key, entry[0], self._deadline(ttl))
        return True

    def _list(self, key: str) -> tuple[list[Any], float | None]:
        entry = self._live(key)
        if entry is None:
            return [], None
        value = orjson.loads(entry[0])
        if not isinstance(value, list):
            raise _not_a_list(key)
        return value, entry[1]

    async def push(self, key: str, value: Any, *, front: bool = False) -> int:
        items, deadline = self._list(key)
        _dumps(value)  # refuse what Redis could not store either
        items.insert(0, value) if front else items.append(value)
        self._store(key, _dumps(items), deadline)
        return len(items)

    async def pop(self, key: str, *, front: bool = False) -> Any:
        items, deadline = self._list(key)
        if not items:
            return None
        value = items.pop(0 if front else -1)
        if items:
            self._store(key, _dumps(items), deadline)
        else:  # Redis drops an emptied list
            del self._data[self.prefix + key]
        return value

    async def range(self, key: str, start: int, stop: int) -> list[Any]:
        items, _ = self._list(key)
        n = len(items)
        lo = max(start + n if start < 0 else start, 0)
        hi = stop + n if stop < 0 else stop
        return items[lo : hi + 1]

    async def length(self, key: str) -> int:
        return len(self._list(key)[0])

    async def remove(self, key: str, value: Any, count: int = 0) -> int:
        items, deadline = self._list(key)
        target = _dumps(value)
        kept: list[Any] = []
        removed = 0
        for item in items:
            if (count == 0 or removed < count) and _dumps(item) == target:
                removed += 1
            else:
                kept.append(item)
        if removed:
            if kept:
                self._store(key, _dumps(kept), deadline)
            else:
                del self._data[self.prefix + key]
        return removed

    async def keys(self, pattern: str) -> list[str]:
        from fnmatch import fnmatchcase

        now = self._clock()
        plen = len(self.prefix)
        return sorted(
            k[plen:]
            for k, (_, d) in self._data.items()
            if k.startswith(self.prefix)
            and (d is None or d > now)
            and fnmatchcase(k[plen:], pattern)
        )

    def ttl(self, key: str) -> float | None:
        """Seconds left for a key (None: no expiry or missing); for tests and introspection."""
        entry = self._live(key)
        if entry is None or entry[1] is None:
            return None
        return entry[1] - self._clock()

    async def close(self) -> None:
        self._data.clear()


def _describe(url: str) -> str:
    """host:port/db of a Redis URL, never its password."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"unix:{parts.path}"
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"
    except ValueError:
        return "<invalid url>"


def create_cache(
    url: str, *, prefix: str = "", max_entries: int = 10000, max_connections: int = 20
) -> Cache:
    """Open the cache named by `[cache] url`: `memory://` or `redis://` / `rediss://` / `unix://`."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        return MemoryCache(max_entries, prefix)
    if scheme in ("redis", "rediss", "unix"):
        # redis-py is imported only by a daemon that uses it (~0.1 s and a few MB at start).
        from daemon.resources.rediscache import RedisCache

        return RedisCache(url, prefix, max_connections)
    raise ValueError(
        f'unsupported cache url "{_describe(url) if scheme else url}": '
        'expected "memory://" or "redis://host:port/db"'
    )
