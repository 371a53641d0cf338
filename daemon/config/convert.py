"""Raw values to typed msgspec specs, collecting every problem as an Issue with its path."""

from __future__ import annotations

import functools
import math
import types
import typing
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from daemon.core.durations import MAX_DURATION, format_duration, parse_duration
from daemon.core.errors import Issue, issue_from_validation, join_path
from daemon.core.jsonc import MAX_NESTING as JSON_MAX_NESTING
from daemon.core.text import type_name

S = TypeVar("S", bound=msgspec.Struct)


def _struct_in(tp: Any) -> type[msgspec.Struct] | None:
    """The Struct class a field type accepts (`X`, `X | None`, `str | X | None`), if any."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            found = _struct_in(arg)
            if found is not None:
                return found
    return None


def _literal_choices(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            choices = _literal_choices(arg)
            if choices is not None:
                return choices
    return None


def _dict_of_struct(tp: Any) -> type[msgspec.Struct] | None:
    if typing.get_origin(tp) is dict:
        args = typing.get_args(tp)
        if len(args) == 2:
            return _struct_in(args[1])
    return None


@functools.cache
def _shape(
    tp: Any,
) -> tuple[type[msgspec.Struct] | None, type[msgspec.Struct] | None, tuple[Any, ...] | None]:
    """(the struct it accepts, the struct a dict of it holds, its literal choices) of a field
    type, worked out once per type: typing's introspection per field of every task was a
    quarter of loading 100,000 tasks."""
    return _struct_in(tp), _dict_of_struct(tp), _literal_choices(tp)


def convert_field(
    value: Any,
    tp: Any,
    file: str,
    path: str,
    issues: list[Issue],
    *,
    strict: bool = True,
    lenient: bool = False,
) -> tuple[bool, Any]:
    """Convert one field's value to its declared type; (ok, converted)."""
    struct, inner, choices = _shape(tp)
    if struct is not None and isinstance(value, dict):
        converted, problems = convert_struct(
            value, struct, file, path, strict=strict, lenient=lenient
        )
        issues.extend(problems)
        return converted is not None, converted
    if inner is not None and isinstance(value, dict):
        result: dict[str, Any] = {}
        ok = True
        for key, item in value.items():
            item_path = join_path(path, str(key))
            if not isinstance(item, dict):
                issues.append(Issue(file, item_path, f"expected a table, got {type_name(item)}"))
                ok = False
                continue
            converted, problems = convert_struct(
                item, inner, file, item_path, strict=strict, lenient=lenient
            )
            issues.extend(problems)
            if converted is None:
                ok = False
            else:
                result[str(key)] = converted
        return ok, result
    try:
        return True, msgspec.convert(value, tp, strict=strict)
    except msgspec.ValidationError as exc:
        if choices is not None and "Invalid enum value" in str(exc):
            allowed = ", ".join(f'"{c}"' for c in choices)
            shown = f'"{value}"' if isinstance(value, str) else repr(value)
            issues.append(Issue(file, path, f"must be one of {allowed}, got {shown}"))
        else:
            issues.append(issue_from_validation(exc, file, path))
        return False, None


@functools.cache
def _fields_by_name(cls: type[msgspec.Struct]) -> dict[str, msgspec.structs.FieldInfo]:
    """A struct's fields by their names in files; introspected once per class (msgspec resolves
    the annotations on every call: a third of loading 10,000 tasks)."""
    return {f.encode_name: f for f in msgspec.structs.fields(cls)}


def convert_struct(
    value: Any, cls: type[S], file: str, path: str, *, strict: bool = True, lenient: bool = False
) -> tuple[S | None, list[Issue]]:
    """Build `cls` from a dict field by field, so every unknown key and bad value is reported.

    With `lenient`, a struct is still built from the good fields (bad ones take their defaults)
    when the required ones are usable, so the caller can go on validating and report more.
    """
    issues: list[Issue] = []
    if not isinstance(value, dict):
        kind = "an object" if file.endswith(".json") else "a table"
        return None, [Issue(file, path, f"expected {kind}, got {type_name(value)}")]
    if cls.__struct_config__.forbid_unknown_fields:
        # The common case, a valid document, in one call at C speed; only a document msgspec
        # refuses is walked field by field, to report every problem at its own path (the walk
        # took two thirds of loading 100,000 valid tasks).
        try:
            return msgspec.convert(value, cls, strict=strict), issues
        except msgspec.ValidationError:
            pass
    fields = _fields_by_name(cls)
    kwargs: dict[str, Any] = {}
    ok = True
    for key, item in value.items():
        field_path = join_path(path, str(key))
        info = fields.get(key)
        if info is None:
            issues.append(Issue(file, field_path, f'unknown key "{key}"'))
            ok = False
            continue
        good, converted = convert_field(
            item, info.type, file, field_path, issues, strict=strict, lenient=lenient
        )
        if good:
            kwargs[info.name] = converted
        else:
            ok = False
    complete = True
    for info in fields.values():
        if info.required and info.name not in kwargs:
            complete = False
            if info.encode_name not in value:
                key = info.encode_name
                issues.append(Issue(file, join_path(path, key), f'missing required key "{key}"'))
    if not complete or not (ok or lenient):
        return None, issues
    return cls(**kwargs), issues


# How deep a TOML config or task document may nest: as deep as a JSON one (jsonc.MAX_NESTING).
MAX_NESTING = JSON_MAX_NESTING


# Integers in a document fit a 64-bit column, a timer and every library on the way.
MAX_INTEGER = 2**63 - 1


def nesting_problem(value: Any, limit: int = MAX_NESTING) -> tuple[str, str] | None:
    """(path, message) where `value` nests deeper than `limit` or holds a number no setting or
    column can take (an integer beyond 64 bits, an infinite or NaN float), or None. Iterative,
    so any depth is safe to ask about; the first problem found is reported."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = ((join_path(path, str(k)), v) for k, v in item.items())
        elif isinstance(item, list):
            children = ((join_path(path, i), v) for i, v in enumerate(item))
        else:
            if isinstance(item, int) and not -MAX_INTEGER <= item <= MAX_INTEGER:
                return path, "number too large (integers must fit in 64 bits)"
            if isinstance(item, float) and not math.isfinite(item):
                return path, f"numbers must be finite, got {item}"
            continue
        if depth >= limit:
            return path, f"nested deeper than {limit} levels (objects and lists)"
        stack.extend((v, p, depth + 1) for p, v in children)
    return None


def check_duration(
    value: Any,
    file: str,
    path: str,
    issues: list[Issue],
    *,
    maximum: float = MAX_DURATION,
    minimum: float = 0.0,
) -> float | None:
    """Parse an optional duration, appending an Issue if it is malformed or out of bounds
    (README "Configuration reference": at most 366d unless the setting says otherwise)."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value, maximum)
    except ValueError as exc:
        issues.append(Issue(file, path, str(exc)))
        return None
    if seconds < minimum:
        issues.append(Issue(file, path, f"must be at least {format_duration(minimum)}"))
        return None
    return seconds


def load_zone(name: str) -> ZoneInfo:
    """ZoneInfo for an IANA name; ValueError('unknown timezone "X"') otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError/OSError: keys like "../etc/passwd" or a directory name such as "America".
        raise ValueError(f'unknown timezone "{name}"') from None


def check_timezone(name: str | None, file: str, path: str, issues: list[Issue]) -> ZoneInfo | None:
    """Validate an optional IANA timezone name, appending an Issue if unknown."""
    if name is None:
        return None
    try:
        return load_zone(name)
    except ValueError as exc:
        issues.append(Issue(file, path, str(exc)))
        return None
