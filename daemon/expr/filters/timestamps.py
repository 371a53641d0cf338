"""Timestamp filters: epoch units, format/parse/transform, parts, add and subtract."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import tzinfo
from decimal import Decimal
from typing import Any, Final

from daemon.core.errors import ExpressionError
from daemon.expr import phpdate
from daemon.expr.filters.args import _int, _num, _text
from daemon.expr.filters.base import FilterContext
from daemon.expr.filters.compare import _expects, _fail, xano_type

# --- timestamps ------------------------------------------------------------------------------


def _zone(ctx: FilterContext, name: str, tz: Any) -> tzinfo:
    if tz is None or tz == "":
        return ctx.tz
    if type(tz) is not str:
        raise _fail(name, f"expects a timezone name, got {xano_type(tz)}")
    try:
        return phpdate.zone(tz)
    except ExpressionError:
        raise _fail(name, f'got an unknown timezone "{tz[:60]}"') from None


def _timestamp(ctx: FilterContext, name: str, value: Any, tz: tzinfo) -> int:
    """An instant in epoch ms: numbers as they are, digit-only text as a number, any other
    text through strtotime ("now", "next friday", "2026-01-15 10:00:00")."""
    t = type(value)
    if t is int:
        return value
    if t is float or t is Decimal:
        if not math.isfinite(value):
            raise _fail(name, f"expects a timestamp, got {value}")
        return math.floor(value)
    if t is str:
        stripped = value.strip()
        if stripped.lstrip("-").isdigit() and len(stripped) < 20:
            return int(stripped)
        try:
            return phpdate.strtotime(stripped, ctx.now_ms(), tz)
        except ExpressionError as exc:
            raise _fail(name, str(exc)) from None
    raise _expects(name, "a timestamp (epoch ms or date text)", value)


def _epoch_unit(name: str, divisor: int) -> Callable[..., int]:
    def impl(ctx: FilterContext, value: Any, tz: Any = None) -> int:
        return _timestamp(ctx, name, value, _zone(ctx, name, tz)) // divisor

    return impl


def f_format_timestamp(ctx: FilterContext, value: Any, fmt: Any, tz: Any = None) -> str:
    zone = _zone(ctx, "format_timestamp", tz)
    ms = _timestamp(ctx, "format_timestamp", value, zone)
    text = _text("format_timestamp", fmt)
    if len(text) > 1000:
        raise _fail("format_timestamp", "format is longer than 1000 characters")
    try:
        return phpdate.format_ms(ms, text, zone)
    except ExpressionError as exc:
        raise _fail("format_timestamp", str(exc)) from None


def f_parse_timestamp(ctx: FilterContext, value: Any, fmt: Any, tz: Any = None) -> int:
    zone = _zone(ctx, "parse_timestamp", tz)
    try:
        return phpdate.parse_format(
            _text("parse_timestamp", value), _text("parse_timestamp", fmt), zone, ctx.now_ms()
        )
    except ExpressionError as exc:
        raise _fail("parse_timestamp", str(exc)) from None


def f_transform_timestamp(ctx: FilterContext, value: Any, relative: Any, tz: Any = None) -> int:
    zone = _zone(ctx, "transform_timestamp", tz)
    ms = _timestamp(ctx, "transform_timestamp", value, zone)
    try:
        return phpdate.strtotime(_text("transform_timestamp", relative), ms, zone)
    except ExpressionError as exc:
        raise _fail("transform_timestamp", str(exc)) from None


def f_add_secs_to_timestamp(ctx: FilterContext, value: Any, seconds: Any) -> int:
    ms = _timestamp(ctx, "add_secs_to_timestamp", value, ctx.tz)
    return ms + math.floor(_num("add_secs_to_timestamp", seconds) * 1000)


def f_add_ms_to_timestamp(ctx: FilterContext, value: Any, ms: Any) -> int:
    return _timestamp(ctx, "add_ms_to_timestamp", value, ctx.tz) + _int("add_ms_to_timestamp", ms)


def _part(name: str, pick: Callable[[Any], int]) -> Callable[..., int]:
    def impl(ctx: FilterContext, value: Any, tz: Any = None) -> int:
        zone = _zone(ctx, name, tz)
        return pick(phpdate.to_local(_timestamp(ctx, name, value, zone), zone))

    return impl


_UNIT_MS: Final = {"seconds": 1000, "minutes": 60_000, "hours": 3_600_000}


def _shifter(name: str, unit: str, sign: int) -> Callable[..., int]:
    def impl(ctx: FilterContext, value: Any, amount: Any = 1, tz: Any = None) -> int:
        zone = _zone(ctx, name, tz)
        ms = _timestamp(ctx, name, value, zone)
        n = sign * _int(name, amount if amount is not None else 1)
        if unit in _UNIT_MS:
            return ms + n * _UNIT_MS[unit]
        try:
            if unit == "days":
                return phpdate.shift(ms, zone, days=n)
            if unit == "months":
                return phpdate.shift(ms, zone, months=n)
            return phpdate.shift(ms, zone, years=n)
        except ExpressionError as exc:
            raise _fail(name, str(exc)) from None

    return impl
