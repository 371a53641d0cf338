"""Data Caching (Redis): get/set/delete/increment/exists/expire on the configured cache."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daemon.core.errors import StepError
from daemon.core.text import type_name
from daemon.expr.parser import is_template
from steps._values import seconds, to_text
from steps.base import Evaluator, Step, StepCompiler, StepContext, StepSpec

if TYPE_CHECKING:
    from daemon.resources.cache import Cache

OPERATIONS = (
    "get",
    "set",
    "delete",
    "increment",
    "decrement",
    "exists",
    "expire",
    # lists and keys (XanoScript's redis.*)
    "push",
    "unshift",
    "pop",
    "shift",
    "range",
    "count",
    "remove",
    "keys",
    "ratelimit",
)
_WITH_TTL = ("set", "increment", "decrement", "expire", "ratelimit")


def _ttl(value: Any, what: str) -> float:
    ttl = seconds(value, what)
    if ttl <= 0:
        raise ValueError(f"{what}: must be greater than zero")
    return ttl


class DataCaching(Step):
    """One cache operation. Results: get -> value or null; set -> true; delete -> number deleted;
    increment / decrement -> new value (`value` is the amount, default 1; `ttl` starts the
    window on first increment); exists -> bool; expire -> bool (false when the key does not
    exist). Lists: push / unshift `value` -> new length; pop / shift -> the item or null;
    range `start`..`stop` (inclusive) -> items; count -> length; remove `value` (`count`
    times, 0 = all) -> number removed. keys: `key` is a glob -> matching keys. ratelimit: counts
    calls per `ttl` window; beyond `max` the step fails with `error` (a fixed window)."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        operation: str
        key: Any
        value: Any = None
        ttl: Any = None
        start: Any = 0
        stop: Any = -1
        count: Any = 0
        max: Any = None
        error: Any = "Too many requests."

    function = "data_caching"
    display_name = "Data Caching (Redis)"
    aliases = ("Data Caching",)

    __slots__ = ("_extra", "_key", "_op", "_ttl", "_ttl_expr", "_value")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        op = spec.operation.strip().lower()
        if op not in OPERATIONS:
            c.error(
                "operation",
                f'unknown cache operation "{spec.operation}"; '
                f"expected one of {', '.join(OPERATIONS)}",
            )
        self._op = op
        self._key = c.template(spec.key, "key")
        self._value: Evaluator | None = None
        if op in ("set", "push", "unshift", "remove"):
            self._value = c.template(spec.value, "value")
        elif op in ("increment", "decrement") and spec.value is not None:
            self._value = c.template(spec.value, "value")
        elif spec.value is not None and op in OPERATIONS:
            c.warning("value", f'"value" is ignored by the {op} operation')
        # start/stop (range), count (remove), max/error (ratelimit)
        self._extra = {k: c.template(getattr(spec, k), k) for k in _EXTRA.get(op, ())}
        if op == "ratelimit" and spec.max is None:
            c.error("max", 'the ratelimit operation needs "max"')
        self._ttl: float | None = None
        self._ttl_expr: Evaluator | None = None
        if spec.ttl is None:
            if op in ("expire", "ratelimit"):
                c.error("ttl", f'the {op} operation needs "ttl"')
        elif op not in _WITH_TTL:
            c.warning("ttl", f'"ttl" is ignored by the {op} operation')
        elif is_template(spec.ttl):
            self._ttl_expr = c.template(spec.ttl, "ttl")
        else:
            try:
                self._ttl = _ttl(spec.ttl, "ttl")
            except ValueError as exc:
                c.error("ttl", str(exc))
        super().__init__(spec, c)

    async def run(self, ctx: StepContext) -> Any:
        key = self._key(ctx)
        if not isinstance(key, str):
            if isinstance(key, bool) or not isinstance(key, int | float):
                raise StepError(f"cache key must be a string, got {type_name(key)}")
            key = str(key)
        if not key:
            raise StepError("cache key must not be empty")
        cache = ctx.cache
        op = self._op
        if op == "get":
            return await cache.get(key)
        if op == "exists":
            return await cache.exists(key)
        if op == "delete":
            return await cache.delete(key)
        if op in _LISTS:
            return await self._list(ctx, cache, op, key)
        ttl = self._ttl
        if self._ttl_expr is not None:
            raw = self._ttl_expr(ctx)
            if raw is not None:
                try:
                    ttl = _ttl(raw, "cache ttl")
                except ValueError as exc:
                    raise StepError(str(exc)) from None
        if op == "set":
            assert self._value is not None
            await cache.set(key, self._value(ctx), ttl)
            return True
        if op in ("increment", "decrement"):
            by = 1 if self._value is None else self._value(ctx)
            if isinstance(by, bool) or not isinstance(by, int | float):
                raise StepError(f"cache {op} amount must be a number, got {type_name(by)}")
            return await cache.increment(key, by if op == "increment" else -by, ttl)
        if op == "ratelimit":
            assert ttl is not None  # required at load time
            limit = _integer(self._extra["max"](ctx), "ratelimit max")
            calls = await cache.increment(key, 1, ttl)
            if calls > limit:
                err = StepError(to_text(self._extra["error"](ctx)))
                err.extra.update(code="ERROR_CODE_TOO_MANY_REQUESTS", name="toomanyrequests")
                raise err
            return calls
        # expire
        if ttl is None:
            raise StepError("cache expire needs a ttl")
        return await cache.expire(key, ttl)

    async def _list(self, ctx: StepContext, cache: Cache, op: str, key: str) -> Any:
        if op in ("push", "unshift"):
            assert self._value is not None
            return await cache.push(key, self._value(ctx), front=op == "unshift")
        if op in ("pop", "shift"):
            return await cache.pop(key, front=op == "shift")
        if op == "range":
            start = _integer(self._extra["start"](ctx), "range start")
            stop = _integer(self._extra["stop"](ctx), "range stop")
            return await cache.range(key, start, stop)
        if op == "count":
            return await cache.length(key)
        if op == "remove":
            assert self._value is not None
            count = _integer(self._extra["count"](ctx), "remove count")
            return await cache.remove(key, self._value(ctx), count)
        return await cache.keys(key)  # keys: `key` is the pattern


_LISTS = frozenset({"push", "unshift", "pop", "shift", "range", "count", "remove", "keys"})
_EXTRA = {"range": ("start", "stop"), "remove": ("count",), "ratelimit": ("max", "error")}


def _integer(value: Any, what: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise StepError(f"cache {what} must be a whole number, got {value!r:.80}")
    return value


CACHE_STEPS: tuple[type[Step], ...] = (DataCaching,)
