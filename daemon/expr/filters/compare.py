"""Type names and PHP's truthiness, emptiness, equality and ordering, shared by all filters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from daemon.core.errors import ExpressionError
from daemon.core.millis import Millis
from daemon.expr.values import render

# --- types, equality, emptiness --------------------------------------------------------------


def xano_type(value: Any) -> str:
    """Xano's name for a value's type, for error messages."""
    if value is None:
        return "null"
    t = type(value)
    if t is bool:
        return "bool"
    if t is int:
        return "int"
    if t is float or t is Decimal:
        return "decimal"
    if t is str:
        return "text"
    if t is list or t is tuple:
        return "array"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, bytes | bytearray):
        return "binary"
    return t.__name__


def _fail(name: str, message: str) -> ExpressionError:
    return ExpressionError(f'filter "{name}" {message}')


def _expects(name: str, what: str, value: Any) -> ExpressionError:
    return _fail(name, f"expects {what}, got {xano_type(value)}")


def _is_num(v: Any) -> bool:
    t = type(v)
    return t is int or t is float or t is Decimal or t is Millis  # Millis: a time from a column


# PHP 8 numeric strings: optional surrounding whitespace, sign, digits with an optional
# fraction, optional exponent ("1e3", " 12 ", ".5"). Hex and "1_000" are not numeric.
_NUMERIC_RE: Final = re.compile(
    r"[ \t\n\r\v\f]*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[ \t\n\r\v\f]*"
)
_LEADING_NUMBER_RE: Final = re.compile(
    r"[ \t\n\r\v\f]*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
)


def _numeric_text(text: str) -> int | float | None:
    """The number a PHP numeric string stands for, or None."""
    if len(text) > 400 or _NUMERIC_RE.fullmatch(text) is None:
        return None
    return _text_number(text.strip())


def _text_number(text: str) -> int | float:
    if "." in text or "e" in text or "E" in text:
        return float(text)
    return int(text)


def php_truthy(value: Any) -> bool:
    """PHP's truthiness: everything but the empty values of `is_empty` is true (NaN too)."""
    return not is_empty(value)


def is_empty(value: Any) -> bool:
    """Xano's "empty" (§3.8): null, false, 0, 0.0, "", "0", [] and {}; nothing else.

    As PHP `empty()`: "0.0", " ", "false" and NaN are not empty; binary b"" and b"0" are.
    """
    if value is None or value is False:
        return True
    t = type(value)
    if t is str or t is bytes:
        return value == "" or value == "0" or value == b"" or value == b"0"
    if t is int or t is float or t is Decimal:
        return bool(value == 0)
    if t is list or t is dict or t is tuple or isinstance(value, Mapping):
        return len(value) == 0
    return False


def strict_equals(a: Any, b: Any) -> bool:
    """`===`: same type and value (1 !== 1.0, "1" !== 1); arrays element by element."""
    ta, tb = type(a), type(b)
    if ta is Decimal or tb is Decimal:  # NUMERIC columns: compare with ints/floats by kind
        if (ta is Decimal and tb is float) or (ta is float and tb is Decimal):
            return float(a) == float(b)
        ints = (ta is int or tb is int) and not (ta is bool or tb is bool)
        return (ta is tb or ints) and bool(a == b)
    if ta is not tb:
        if ta in (list, tuple) and tb in (list, tuple):
            pass
        elif isinstance(a, Mapping) and isinstance(b, Mapping):
            pass
        else:
            return False
    if ta is list or ta is tuple:
        return len(a) == len(b) and all(strict_equals(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping):
        return list(a.keys()) == list(b.keys()) and all(strict_equals(a[k], b[k]) for k in a)
    return bool(a == b)


def loose_equals(a: Any, b: Any) -> bool:
    """`==` with PHP 8 loose comparison (§3.8, §6.25). The coercions, in order:

    * null or bool on either side: both sides as booleans (null == false, null == 0,
      null == [], true == "a", false == "0") - except null against text, which compares
      "" with the text (null == "" is true, null == "0" is false);
    * number against number: numerically (1 == 1.0);
    * number against text: numerically when the text is numeric (100 == "100",
      100 == "1e2", 5 == " 5"), otherwise the number's text against the text (0 != "a");
    * text against text: numerically when both are numeric ("10" == "1e1", "1" == "01"),
      otherwise exactly (case matters);
    * arrays/objects: the same keys with loosely equal values (order ignored for objects);
      a list equals an object whose keys are "0", "1", ...; never equal to a scalar.
    """
    ta, tb = type(a), type(b)
    if ta is tb and (ta is int or ta is bool):
        return bool(a == b)
    return php_compare(a, b, equality=True) == 0


def _as_array(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return {str(i): v for i, v in enumerate(value)}


def _num_or_none(value: Any) -> Any:
    if _is_num(value):
        return value
    if type(value) is str:
        return _numeric_text(value)
    return None


def _cmp(a: Any, b: Any) -> int:
    if type(a) is Decimal and type(b) is float:
        a = float(a)
    elif type(b) is Decimal and type(a) is float:
        b = float(b)
    if a != a or b != b:  # NaN is unordered and unequal to everything
        return 1
    return -1 if a < b else (1 if a > b else 0)


def php_compare(a: Any, b: Any, *, equality: bool = False) -> int:
    """PHP 8's `<=>` on JSON values: -1, 0 or 1 (see `loose_equals` for the coercions).

    Arrays compare by size first, then key by key; an array is greater than any scalar.
    With `equality`, arrays with different keys are unequal (1) instead of ordered.
    """
    ta, tb = type(a), type(b)
    if a is None and tb is str:
        return _cmp("", b)
    if b is None and ta is str:
        return _cmp(a, "")
    if a is None or b is None or ta is bool or tb is bool:
        return _cmp(php_truthy(a), php_truthy(b))
    if ta is bytes:
        a, ta = a.decode("utf-8", "replace"), str
    if tb is bytes:
        b, tb = b.decode("utf-8", "replace"), str
    a_num, b_num = _is_num(a), _is_num(b)
    if a_num and b_num:
        return _cmp(a, b)
    if ta is str and tb is str:
        na, nb = _numeric_text(a), _numeric_text(b)
        if na is not None and nb is not None:
            return _cmp(na, nb)
        return _cmp(a, b)
    if a_num and tb is str:
        nb = _numeric_text(b)
        return _cmp(a, nb) if nb is not None else _cmp(render(a), b)
    if b_num and ta is str:
        na = _numeric_text(a)
        return _cmp(na, b) if na is not None else _cmp(a, render(b))
    a_arr = ta is list or ta is tuple or isinstance(a, Mapping)
    b_arr = tb is list or tb is tuple or isinstance(b, Mapping)
    if a_arr and b_arr:
        if len(a) != len(b):
            return -1 if len(a) < len(b) else 1
        da, db = _as_array(a), _as_array(b)
        for key, va in da.items():
            if key not in db:
                return 1
            c = php_compare(va, db[key], equality=equality)
            if c != 0:
                return c
        return 0
    if a_arr:
        return 1
    if b_arr:
        return -1
    try:
        return _cmp(a, b)
    except TypeError:
        return 1
