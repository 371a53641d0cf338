"""XanoScript's value semantics at run time: PHP-like arithmetic, equality and ordering, text
joins, ranges, membership, path reads, and the caught error as XanoScript reads it.

The compiled expressions of `daemon.xano.expressions` call these; each answers the common
case (two numbers, two texts) in plain Python first and leaves PHP's juggling to the filters
of `daemon.expr.filters`, whose rules they share (XANOSCRIPT.md §3.2, §3.8, §6.24-§6.26).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

from daemon.core.errors import ExpressionError
from daemon.core.millis import Millis
from daemon.expr.filters import FILTERS, loose_equals, php_compare, xano_type
from daemon.expr.values import MAX_INT, MAX_LIST, MISSING, sized_str

_ADD, SUB, MUL, DIV, MOD = (
    FILTERS[n].fn for n in ("add", "subtract", "multiply", "divide", "modulus")
)
_TO_TEXT = FILTERS["to_text"].fn
BITWISE = {
    "and": FILTERS["bitwise_and"].fn,
    "or": FILTERS["bitwise_or"].fn,
    "xor": FILTERS["bitwise_xor"].fn,
}

_ERROR_CODES: Final = {"DatabaseError": "ERROR_FATAL", "HttpError": "ERROR_FATAL"}


def xano_error(error: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The caught error as XanoScript reads it (§4.9): `{code, name, message, result}`; the
    engine's own keys (type, step…) stay beside them."""
    if error is None:
        return None
    out = dict(error)
    kind = out.get("type") or "StepError"
    out.setdefault("code", _ERROR_CODES.get(kind, "ERROR_FATAL"))
    out.setdefault("name", kind)
    out.setdefault("result", None)
    out.setdefault("message", "")
    return out


def _num(value: Any) -> Any:
    # A time read from a column (Millis, an int subclass) is its plain number here: the PHP
    # juggling of the filters dispatches on exact types.
    return int(value) if type(value) is Millis else value


def text(value: Any) -> str:
    return value if type(value) is str else _TO_TEXT(_num(value))


def add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        r = a + b
        if type(r) is float or -MAX_INT <= r <= MAX_INT:
            return r
    if ta is Millis or tb is Millis:
        return add(_num(a), _num(b))
    if ta is str or tb is str:
        return concat(a, b)
    return _ADD(a, b)


def numeric(slow: Callable[[Any, Any], Any], fast: Callable[[Any, Any], Any]) -> Any:
    """An arithmetic operator: plain Python on two ints or floats (the common case), PHP's
    juggling through the filter otherwise."""

    def op(a: Any, b: Any) -> Any:
        ta, tb = type(a), type(b)
        if (ta is int or ta is float) and (tb is int or tb is float):
            r = fast(a, b)
            if type(r) is float or -MAX_INT <= r <= MAX_INT:
                return r
        if ta is Millis or tb is Millis:
            return op(_num(a), _num(b))
        return slow(a, b)

    return op


_NUMERIC_START: Final = frozenset("0123456789+-. \t\n\r\v\f")


def loose_eq(a: Any, b: Any) -> bool:
    """PHP's `==` (daemon.expr.filters.loose_equals) with the common cases answered first:
    two numbers, and two texts of which one cannot be numeric (then only identical is equal)."""
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return bool(a == b)
    if ta is Millis or tb is Millis:
        return loose_eq(_num(a), _num(b))
    if ta is str and tb is str:
        if a == b:
            return True
        if not a or not b or a[0] not in _NUMERIC_START or b[0] not in _NUMERIC_START:
            return False
    return loose_equals(a, b)


def ordered(test: Callable[[int], bool], fast: Callable[[Any, Any], bool]) -> Any:
    def compare(a: Any, b: Any) -> bool:
        ta, tb = type(a), type(b)
        if (ta is int or ta is float) and (tb is int or tb is float):
            return fast(a, b)
        return test(php_compare(_num(a), _num(b)))

    return compare


def concat(a: Any, b: Any) -> str:
    sa, sb = text(a), text(b)
    sized_str(len(sa) + len(sb), 1)
    return sa + sb


def value_range(a: Any, b: Any) -> list[int]:
    lo, hi = int(_ADD(a, 0)), int(_ADD(b, 0))
    step = 1 if hi >= lo else -1
    if abs(hi - lo) + 1 > MAX_LIST:
        raise ExpressionError(f"range {lo}..{hi} is longer than {MAX_LIST} items")
    return list(range(lo, hi + step, step))


def member(a: Any, items: Any) -> bool:
    if items is None:
        return False
    if isinstance(items, Mapping):
        items = list(items.values())
    if not isinstance(items, list | tuple):
        raise ExpressionError(f'"in" needs an array on its right, got {xano_type(items)}')
    return any(loose_eq(a, item) for item in items)


def get_field(value: Any, name: str, where: str) -> Any:
    """`value.name` (XANOSCRIPT.md §3.1, §3.5, §6.26)."""
    t = type(value)
    if t is dict:
        return value.get(name)
    if t is list or t is tuple:
        out: list[Any] = []
        for item in value:
            found = get_field(item, name, where) if item is not None else None
            if type(found) is list:
                out.extend(found)
            else:
                out.append(found)
        return out
    if value is None:
        raise ExpressionError(f'cannot read "{name}" of null ({where} is null)')
    if isinstance(value, Mapping):
        try:
            return value.get(name)
        except KeyError:  # pragma: no cover - Mapping.get catches it
            return None
    raise ExpressionError(f'cannot read "{name}" of {xano_type(value)} ({where})')


def get_index(value: Any, key: Any, where: str) -> Any:
    """`value[key]` / `value.0`: list index (negative from the end) or object key."""
    t = type(value)
    if t is list or t is tuple or t is str:
        if type(key) is float and key.is_integer():
            key = int(key)
        if type(key) is str and key.lstrip("-").isdigit():
            key = int(key)
        if type(key) is not int:
            if t is str:
                raise ExpressionError(f"text index must be a number, got {xano_type(key)}")
            return get_field(value, str(key), where)
        try:
            return value[key]
        except IndexError:
            return None
    if value is None:
        raise ExpressionError(f"cannot index null ({where} is null)")
    if isinstance(value, Mapping):
        found = value.get(key if type(key) is str else str(key), MISSING)
        return None if found is MISSING else found
    raise ExpressionError(f"cannot index {xano_type(value)} ({where})")


SUBTRACT = numeric(SUB, operator.sub)
MULTIPLY = numeric(MUL, operator.mul)
