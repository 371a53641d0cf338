"""Argument coercion (text, numbers, arrays, objects, size limits) and path helpers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from daemon.core.millis import Millis
from daemon.expr.filters.compare import (
    _expects,
    _fail,
    _is_num,
    _numeric_text,
    php_truthy,
    xano_type,
)
from daemon.expr.values import MAX_INT, MAX_LIST, MAX_STRING, render

# --- argument coercion -----------------------------------------------------------------------


def _text(name: str, value: Any) -> str:
    """Text input: text as is, null as "", numbers and booleans rendered, binary decoded."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if type(value) is bool or _is_num(value):
        return render(value)
    raise _expects(name, "text", value)


def _bytes(name: str, value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return _text(name, value).encode("utf-8", "surrogatepass")


def _binary(data: bytes) -> str | bytes:
    """A binary result: text when it is valid UTF-8 (lossless both ways), else bytes."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _num(name: str, value: Any) -> Any:
    """A number input; PHP's juggling: null is 0, booleans 0/1, numeric text its number."""
    t = type(value)
    if t is int or t is float or t is Decimal:
        return value
    if value is None:
        return 0
    if t is bool:
        return int(value)
    if t is str:
        n = _numeric_text(value)
        if n is not None:
            return n
        raise _fail(name, f"expects a number, got non-numeric text {value[:40]!r}")
    if t is Millis:  # a time read from a column (inside a list: the pipe unwraps only the top)
        return int(value)
    raise _expects(name, "a number", value)


def _int(name: str, value: Any) -> int:
    n = _num(name, value)
    if type(n) is int:
        return n
    if isinstance(n, float) and not math.isfinite(n):
        raise _fail(name, f"expects an integer, got {n}")
    return int(n)


def _checked_int(name: str, value: Any) -> Any:
    if type(value) is int and not -MAX_INT <= value <= MAX_INT:
        raise _fail(name, "result is too large (limit is 2**63)")
    return value


def _pair(a: Any, b: Any) -> tuple[Any, Any]:
    if type(a) is Decimal and type(b) is float:
        return float(a), b
    if type(b) is Decimal and type(a) is float:
        return a, float(b)
    return a, b


def _list(name: str, value: Any) -> list[Any] | tuple[Any, ...]:
    """An array input; null reads as an empty array."""
    t = type(value)
    if t is list or t is tuple:
        return value
    if value is None:
        return []
    raise _expects(name, "an array", value)


def _object(name: str, value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if value is None:
        return {}
    raise _expects(name, "an object", value)


def _sized_text(name: str, length: int) -> None:
    if length > MAX_STRING:
        raise _fail(name, f"would build text longer than {MAX_STRING} characters")


def _sized_list(name: str, length: int) -> None:
    if length > MAX_LIST:
        raise _fail(name, f"would build an array longer than {MAX_LIST} items")


def _bool_arg(value: Any) -> bool:
    if type(value) is str:
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return php_truthy(value)


def _text_key(v: Any) -> str:
    return v if type(v) is str else render(v)


# --- paths -----------------------------------------------------------------------------------


@lru_cache(maxsize=2048)
def _split_path(path: str) -> tuple[str, ...]:
    return tuple(path.split(".")) if path else ()


def _path(name: str, path: Any) -> tuple[str | int, ...]:
    """A dotted path ("a.b.0") or an index as segments."""
    t = type(path)
    if t is str:
        return _split_path(path)
    if t is int:
        return (path,)
    if path is None:
        return ()
    if t is float and path.is_integer():
        return (int(path),)
    raise _expects(name, "a path (text or integer)", path)


def _index(seg: str | int, size: int) -> int | None:
    if isinstance(seg, int):
        i = seg
    elif seg.isdigit() or (seg[:1] == "-" and seg[1:].isdigit()):
        i = int(seg)
    else:
        return None
    if i < 0:
        i += size
    return i if 0 <= i < size else None


_NOT_FOUND: Final = object()


def _get_path(value: Any, segs: tuple[str | int, ...]) -> Any:
    """The value at `segs`, or _NOT_FOUND."""
    for seg in segs:
        t = type(value)
        if t is dict or (t is not list and isinstance(value, Mapping)):
            found = value.get(seg, _NOT_FOUND)
            if found is _NOT_FOUND and type(seg) is int:
                found = value.get(str(seg), _NOT_FOUND)
            if found is _NOT_FOUND:
                return _NOT_FOUND
            value = found
        elif t is list or t is tuple:
            i = _index(seg, len(value))
            if i is None:
                return _NOT_FOUND
            value = value[i]
        else:
            return _NOT_FOUND
    return value


def _at(value: Any, segs: tuple[str | int, ...]) -> Any:
    """The value at `segs`, null when missing (the `path` argument of array filters)."""
    if not segs:
        return value
    found = _get_path(value, segs)
    return None if found is _NOT_FOUND else found


def _set_path(name: str, value: Any, segs: Sequence[str | int], new: Any, remove: bool) -> Any:
    """A copy of `value` with `new` at `segs` (or that key removed); copies only the path."""
    if not segs:
        return value if remove else new
    seg, rest = segs[0], segs[1:]
    t = type(value)
    if t is list or t is tuple:
        i = _index(seg, len(value) + (0 if remove else 1))
        if i is None:
            if remove:
                return value
            raise _fail(name, f'cannot use "{seg}" as an index into an array of {len(value)}')
        out = list(value)
        if i == len(value):
            if rest:
                raise _fail(name, f"index {seg} is past the end of the array")
            out.append(new)
            return out
        if remove and not rest:
            del out[i]
            return out
        out[i] = _set_path(name, value[i], rest, new, remove)
        return out
    if value is None or isinstance(value, Mapping):
        key = str(seg)
        obj = dict(value) if value is not None else {}
        if remove and not rest:
            obj.pop(key, None)
            return obj
        if remove and key not in obj:
            return obj
        obj[key] = _set_path(name, obj.get(key), rest, new, remove)
        return obj
    if remove:
        return value
    raise _fail(name, f'cannot set "{seg}" inside {xano_type(value)}')


def _auto_map(segs: tuple[str | int, ...], value: Any) -> bool:
    """`|set:"x":1` on an array of objects sets "x" on each element (§3.5)."""
    if type(value) is not list or not segs:
        return False
    first = segs[0]
    return type(first) is str and not (first.isdigit() or first[:1] == "-")
