"""Data Caching (Redis): get/set/delete/increment/exists/expire on the configured cache."""

from __future__ import annotations

from typing import Any

from daemon.core.errors import StepError
from daemon.core.text import type_name
from daemon.expr.parser import is_template
from steps._values import seconds
from steps.base import Evaluator, Step, StepCompiler, StepContext, StepSpec

OPERATIONS = ("get", "set", "delete", "increment", "exists", "expire")


def _ttl(value: Any, what: str) -> float:
    ttl = seconds(value, what)
    if ttl <= 0:
        raise ValueError(f"{what}: must be greater than zero")
    return ttl


class DataCaching(Step):
    """One cache operation. Results: get -> value or null; set -> true; delete -> number deleted;
    increment -> new value (`value` is the amount, default 1; `ttl` starts the window on first
    increment); exists -> bool; expire -> bool (false when the key does not exist)."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        operation: str
        key: Any
        value: Any = None
        ttl: Any = None

    function = "data_caching"
    display_name = "Data Caching (Redis)"
    aliases = ("Data Caching",)

    __slots__ = ("_key", "_op", "_ttl", "_ttl_expr", "_value")

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
        if op == "set":
            self._value = c.template(spec.value, "value")
        elif op == "increment" and spec.value is not None:
            self._value = c.template(spec.value, "value")
        elif spec.value is not None and op in OPERATIONS:
            c.warning("value", f'"value" is ignored by the {op} operation')
        self._ttl: float | None = None
        self._ttl_expr: Evaluator | None = None
        if spec.ttl is None:
            if op == "expire":
                c.error("ttl", 'the expire operation needs "ttl"')
        elif op not in ("set", "increment", "expire"):
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
        if op == "increment":
            by = 1 if self._value is None else self._value(ctx)
            if isinstance(by, bool) or not isinstance(by, int | float):
                raise StepError(f"cache increment amount must be a number, got {type_name(by)}")
            return await cache.increment(key, by, ttl)
        # expire
        if ttl is None:
            raise StepError("cache expire needs a ttl")
        return await cache.expire(key, ttl)


CACHE_STEPS: tuple[type[Step], ...] = (DataCaching,)
