"""Array filters: access, building, set operations, sorting, higher-order and aggregates."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

import orjson

from daemon.expr.filters.args import (
    _NOT_FOUND,
    _at,
    _bool_arg,
    _checked_int,
    _get_path,
    _int,
    _list,
    _num,
    _object,
    _path,
    _set_path,
    _sized_list,
    _sized_text,
    _text,
    _text_key,
)
from daemon.expr.filters.base import ElementFn
from daemon.expr.filters.compare import (
    _LEADING_NUMBER_RE,
    _expects,
    _fail,
    _is_num,
    loose_equals,
    php_compare,
    php_truthy,
    strict_equals,
    xano_type,
)
from daemon.expr.filters.convert import _json_default
from daemon.expr.filters.numeric import _divide
from daemon.expr.values import MAX_INT, MAX_LIST, render

# --- arrays ----------------------------------------------------------------------------------


def f_first(value: Any) -> Any:
    if isinstance(value, Mapping):
        return next(iter(value.values()), None)
    items = _list("first", value)
    return items[0] if items else None


def f_last(value: Any) -> Any:
    if isinstance(value, Mapping):
        return next(reversed(list(value.values())), None) if value else None
    items = _list("last", value)
    return items[-1] if items else None


def f_count(value: Any) -> int:
    t = type(value)
    if t is list or t is tuple or isinstance(value, Mapping):
        return len(value)
    if value is None:
        return 0
    raise _expects("count", "an array or object", value)


def f_get(value: Any, path: Any, default: Any = None) -> Any:
    found = _get_path(value, _path("get", path))
    return default if found is _NOT_FOUND else found


def f_has(value: Any, path: Any) -> bool:
    return _get_path(value, _path("has", path)) is not _NOT_FOUND


def f_slice(value: Any, offset: Any = 0, length: Any = None) -> list[Any]:
    """PHP array_slice: negative offset counts from the end; negative length stops that many
    before the end; no length means to the end."""
    items = _list("slice", value)
    size = len(items)
    start = _int("slice", offset) if offset is not None else 0
    if start < 0:
        start = max(size + start, 0)
    if length is None:
        return list(items[start:])
    count = _int("slice", length)
    end = size + count if count < 0 else start + count
    return list(items[start:end])


def f_join(value: Any, sep: Any = ",") -> str:
    items = _list("join", value)
    separator = _text("join", sep)
    parts = [v if type(v) is str else render(v) for v in items]
    _sized_text("join", sum(map(len, parts)) + len(separator) * max(len(parts) - 1, 0))
    return separator.join(parts)


def f_push(value: Any, item: Any) -> list[Any]:
    items = _list("push", value)
    _sized_list("push", len(items) + 1)
    return [*items, item]


def f_unshift(value: Any, item: Any) -> list[Any]:
    items = _list("unshift", value)
    _sized_list("unshift", len(items) + 1)
    return [item, *items]


def f_pop(value: Any) -> Any:
    """The removed (last) element, not the array; the input is left as it is."""
    items = _list("pop", value)
    return items[-1] if items else None


def f_shift(value: Any) -> Any:
    items = _list("shift", value)
    return items[0] if items else None


def _adder(name: str, front: bool) -> Callable[..., Any]:
    def impl(value: Any, item: Any, path: Any = None) -> Any:
        segs = _path(name, path)
        if not segs:
            return f_unshift(value, item) if front else f_push(value, item)
        inner = _at(value, segs)
        return _set_path(name, value, segs, impl(inner, item), remove=False)

    return impl


def f_merge(value: Any, other: Any) -> Any:
    """PHP array_merge: arrays concatenate; objects merge, later keys win. A scalar `other`
    is appended, as the `array.merge` statement does."""
    if isinstance(value, Mapping):
        return {**value, **_object("merge", other)}
    items = _list("merge", value)
    if isinstance(other, Mapping):
        if not items:
            return dict(other)
        raise _fail("merge", "cannot merge an object into an array")
    extra = other if type(other) in (list, tuple) else [other]
    _sized_list("merge", len(items) + len(extra))
    return [*items, *extra]


def f_merge_recursive(value: Any, other: Any) -> Any:
    """PHP array_merge_recursive: lists concatenate; a key present in both becomes the merge
    of both values (two scalars become a list of both)."""
    return _merge_rec(value, other, 0)


def _merge_rec(a: Any, b: Any, depth: int) -> Any:
    if depth > 64:
        raise _fail("merge_recursive", "nesting is deeper than 64 levels")
    a_list, b_list = type(a) in (list, tuple), type(b) in (list, tuple)
    if a_list and b_list:
        _sized_list("merge_recursive", len(a) + len(b))
        return [*a, *b]
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge_rec(out[k], v, depth + 1) if k in out else v
        return out
    left = list(a) if a_list else list(a.values()) if isinstance(a, Mapping) else [a]
    right = list(b) if b_list else list(b.values()) if isinstance(b, Mapping) else [b]
    return [*left, *right]


def _key(value: Any) -> Any:
    """A hashable stand-in comparing like PHP's (string) cast: 1, "1", 1.0 and true agree."""
    t = type(value)
    if t is str:
        return value
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if t is int:
        return str(value)
    if t is float or t is Decimal:
        return str(int(value)) if value == int(value) else render(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return (
        "\0json:" + orjson.dumps(value, default=_json_default, option=orjson.OPT_SORT_KEYS).decode()
    )


def _set_op(name: str, keep_when_present: bool, assoc: bool) -> Callable[..., Any]:
    def impl(value: Any, other: Any) -> Any:
        if isinstance(value, Mapping):
            this: Mapping[Any, Any] = value
        else:
            this = dict(enumerate(_list(name, value)))
        if isinstance(other, Mapping):
            that: Mapping[Any, Any] = {str(k): v for k, v in other.items()}
        else:
            that = {str(i): v for i, v in enumerate(_list(name, other))}
        if assoc:
            kept = {
                k: v
                for k, v in this.items()
                if (str(k) in that and _key(that[str(k)]) == _key(v)) == keep_when_present
            }
        else:
            present = {_key(v) for v in that.values()}
            kept = {k: v for k, v in this.items() if (_key(v) in present) == keep_when_present}
        return kept if isinstance(value, Mapping) else list(kept.values())

    return impl


def f_unique(value: Any, path: Any = None) -> list[Any]:
    items = _list("unique", value)
    segs = _path("unique", path)
    seen: set[Any] = set()
    out = []
    for item in items:
        k = _key(_at(item, segs))
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


def f_reverse(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(reversed(list(value.items())))
    return list(reversed(_list("reverse", value)))


def f_shuffle(value: Any) -> list[Any]:
    out = list(_list("shuffle", value))
    random.shuffle(out)
    return out


def f_flatten(value: Any) -> list[Any]:
    """Nested arrays into one level (objects stay elements); iterative, so depth is free."""
    out: list[Any] = []
    stack = [iter(_list("flatten", value))]
    while stack:
        for item in stack[-1]:
            if type(item) is list or type(item) is tuple:
                stack.append(iter(item))
                break
            out.append(item)
            if len(out) > MAX_LIST:
                _sized_list("flatten", len(out))
        else:
            stack.pop()
    return out


def f_safe_array(value: Any) -> list[Any]:
    if type(value) is list:
        return value
    if type(value) is tuple:
        return list(value)
    return [] if value is None else [value]


_NATURAL_RE: Final = re.compile(r"(\d+)")


def _natural(text: str) -> list[Any]:
    # Alternating text and integers, so keys compare text with text and ints with ints.
    parts: list[Any] = _NATURAL_RE.split(text)
    for i in range(1, len(parts), 2):
        parts[i] = int(parts[i])
    return parts


def _number_key(v: Any) -> float:
    if _is_num(v):
        return float(v)
    if type(v) is bool:
        return float(v)
    if type(v) is str:
        m = _LEADING_NUMBER_RE.match(v)
        return float(m.group()) if m else 0.0
    return 0.0


_SORT_KEYS: Final[dict[str, Callable[[Any], Any]]] = {
    "number": _number_key,
    "text": _text_key,
    "itext": lambda v: _text_key(v).casefold(),
    "natural": lambda v: _natural(_text_key(v)),
    "inatural": lambda v: _natural(_text_key(v).casefold()),
}


def f_sort(value: Any, path: Any = None, kind: Any = "itext", asc: Any = True) -> list[Any]:
    """Stable sort by the element (or the value at `path`): type is number, text, natural,
    itext (default, case-insensitive) or inatural; `asc` false sorts descending."""
    items = _list("sort", value)
    name = _text("sort", kind if kind is not None else "itext") or "itext"
    key_fn = _SORT_KEYS.get(name)
    if key_fn is None:
        raise _fail("sort", f'type must be one of {", ".join(_SORT_KEYS)}, got "{name[:20]}"')
    segs = _path("sort", path)
    if segs:
        return sorted(items, key=lambda item: key_fn(_at(item, segs)), reverse=not _bool_arg(asc))
    return sorted(items, key=key_fn, reverse=not _bool_arg(asc))


def f_index_by(value: Any, path: Any) -> dict[str, list[Any]]:
    segs = _path("index_by", path)
    out: dict[str, list[Any]] = {}
    for item in _list("index_by", value):
        k = _at(item, segs)
        out.setdefault(k if type(k) is str else render(k), []).append(item)
    return out


def f_remove(value: Any, item: Any, path: Any = None, strict: Any = False) -> list[Any]:
    items = _list("remove", value)
    segs = _path("remove", path)
    same = strict_equals if _bool_arg(strict) else loose_equals
    return [x for x in items if not same(_at(x, segs), item)]


def f_range(value: Any, start: Any, stop: Any) -> list[int]:
    """Integers from start to stop inclusive, counting down when start > stop (as PHP)."""
    a, b = _int("range", start), _int("range", stop)
    _sized_list("range", abs(b - a) + 1)
    return list(range(a, b + 1)) if a <= b else list(range(a, b - 1, -1))


def _copies(value: Any, count: int) -> list[Any]:
    if type(value) is list or type(value) is dict:
        return [_deep_copy(value) for _ in range(count)]
    return [value] * count


def _deep_copy(value: Any) -> Any:
    if type(value) is dict:
        return {k: _deep_copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_deep_copy(v) for v in value]
    return value


def f_fill(value: Any, start: Any, count: Any) -> Any:
    """PHP array_fill: `count` copies of the value; a non-zero start gives an object keyed
    start, start+1, ... (PHP keeps those keys)."""
    first, n = _int("fill", start), _int("fill", count)
    if n < 0:
        raise _fail("fill", f"count must not be negative, got {n}")
    _sized_list("fill", n)
    items = _copies(value, n)
    if first == 0:
        return items
    return {str(first + i): v for i, v in enumerate(items)}


def f_fill_keys(value: Any, keys: Any) -> dict[str, Any]:
    names = _list("fill_keys", keys)
    copies = _copies(value, len(names))
    return {_text_key(k): v for k, v in zip(names, copies, strict=True)}


def _filter_empty(name: str, drop: Callable[[Any], bool]) -> Callable[..., Any]:
    def impl(value: Any, path: Any = None) -> list[Any]:
        segs = _path(name, path)
        return [x for x in _list(name, value) if not drop(_at(x, segs))]

    return impl


def f_in(value: Any, item: Any) -> bool:
    if isinstance(value, Mapping):
        return any(loose_equals(v, item) for v in value.values())
    return any(loose_equals(v, item) for v in _list("in", value))


def f_map(value: Any, each: ElementFn) -> list[Any]:
    items = _list("map", value)
    return [each(item, i, items, None) for i, item in enumerate(items)]


def f_filter(value: Any, each: ElementFn) -> list[Any]:
    items = _list("filter", value)
    return [item for i, item in enumerate(items) if php_truthy(each(item, i, items, None))]


def f_find(value: Any, each: ElementFn) -> Any:
    items = _list("find", value)
    for i, item in enumerate(items):
        if php_truthy(each(item, i, items, None)):
            return item
    return None


def f_find_index(value: Any, each: ElementFn) -> int:
    items = _list("findIndex", value)
    for i, item in enumerate(items):
        if php_truthy(each(item, i, items, None)):
            return i
    return -1


def f_some(value: Any, each: ElementFn) -> bool:
    items = _list("some", value)
    return any(php_truthy(each(item, i, items, None)) for i, item in enumerate(items))


def f_every(value: Any, each: ElementFn) -> bool:
    items = _list("every", value)
    return all(php_truthy(each(item, i, items, None)) for i, item in enumerate(items))


def f_reduce(value: Any, each: ElementFn, initial: Any = 0) -> Any:
    """Fold left: the expression comes first, the initial value last (`reduce:$$+$result:0`)."""
    items = _list("reduce", value)
    result = initial
    for i, item in enumerate(items):
        result = each(item, i, items, result)
    return result


def f_transform(value: Any, each: ElementFn) -> Any:
    return each(value, None, None, None)


def _numbers(name: str, value: Any) -> list[Any]:
    items = value.values() if isinstance(value, Mapping) else _list(name, value)
    nums = [_num(name, v) for v in items]
    if any(type(n) is float for n in nums) and any(type(n) is Decimal for n in nums):
        nums = [float(n) for n in nums]
    return nums


def f_sum(value: Any) -> Any:
    total: Any = 0
    for n in _numbers("sum", value):
        total += n
    return _checked_int("sum", total)


def f_product(value: Any) -> Any:
    total: Any = 1
    for n in _numbers("product", value):
        total *= n
        if type(total) is int and not -MAX_INT <= total <= MAX_INT:
            raise _fail("product", "result is too large (limit is 2**63)")
    return total


def f_avg(value: Any) -> Any:
    nums = _numbers("avg", value)
    if not nums:
        return None
    total = f_sum(nums)
    return _divide("avg", total, len(nums))


def f_array_min(value: Any) -> Any:
    return _extreme("array_min", value, -1)


def f_array_max(value: Any) -> Any:
    return _extreme("array_max", value, 1)


def _extreme(name: str, value: Any, sign: int) -> Any:
    items = list(value.values()) if isinstance(value, Mapping) else list(_list(name, value))
    if not items:
        return None
    best = items[0]
    for item in items[1:]:
        if php_compare(item, best) == sign:
            best = item
    return best


def f_num_min(value: Any, other: Any) -> Any:
    return other if php_compare(other, value) < 0 else value


def f_num_max(value: Any, other: Any) -> Any:
    return other if php_compare(other, value) > 0 else value


def f_min(value: Any, other: Any = _NOT_FOUND) -> Any:
    """`min` is array_min on an array without an argument, else the smaller of two values."""
    if other is _NOT_FOUND:
        return f_array_min(value)
    return f_num_min(value, other)


def f_max(value: Any, other: Any = _NOT_FOUND) -> Any:
    if other is _NOT_FOUND:
        return f_array_max(value)
    return f_num_max(value, other)


def _picker(name: str, keep: bool) -> Callable[..., Any]:
    def impl(value: Any, keys: Any) -> dict[str, Any]:
        obj = _object(name, value)
        if type(keys) is str:
            wanted = {k.strip() for k in keys.split(",")}
        else:
            wanted = {_text_key(k) for k in _list(name, keys)}
        return {k: v for k, v in obj.items() if (k in wanted) == keep}

    return impl


def f_keys(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.keys())
    return list(range(len(_list("keys", value))))


def f_values(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    return list(_list("values", value))


def f_entries(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, Mapping):
        return [{"key": k, "value": v} for k, v in value.items()]
    return [{"key": i, "value": v} for i, v in enumerate(_list("entries", value))]


def f_create_object(value: Any, values: Any) -> dict[str, Any]:
    keys, vals = _list("create_object", value), _list("create_object", values)
    if len(keys) != len(vals):
        raise _fail(
            "create_object", f"needs as many values as keys ({len(keys)} keys, {len(vals)} values)"
        )
    return {_text_key(k): v for k, v in zip(keys, vals, strict=True)}


def f_create_object_from_entries(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in _list("create_object_from_entries", value):
        if isinstance(entry, Mapping) and "key" in entry:
            out[_text_key(entry["key"])] = entry.get("value")
        elif type(entry) in (list, tuple) and len(entry) == 2:
            out[_text_key(entry[0])] = entry[1]
        else:
            raise _fail(
                "create_object_from_entries",
                f"expects {{key, value}} entries, got {xano_type(entry)}",
            )
    return out
