"""Xano's value-side filter library (`value|filter:arg`), with PHP-like equality and emptiness.

Calling convention (what the XanoScript compiler relies on):

* `FILTERS[name]` is a `FilterDef`; every alias maps to the same object. Check the argument
  count once at compile time with `fd.check_arity(n)`, then call `fd.fn` directly:
  - normal filter:        `fd.fn(value, *args)` - args already evaluated;
  - `fd.needs_ctx`:       `fd.fn(ctx, value, *args)` - ctx is a `FilterContext` (default time
    zone, current time, `to_expr` evaluation);
  - `fd.higher_order`:    `fd.fn(value, each, *rest)` - `each` is a callable
    `each(item, index, parent, result)` that evaluates the argument expression with `$$` /
    `$this` = item, `$index`, `$parent` (the whole array) and `$result` (reduce's
    accumulator) bound; `rest` are evaluated as usual (reduce's initial value).
  `fd(value, args, ctx)` does the same with the arity check, for tests and slow paths.
* `fd.pure` is false where the result changes between calls (uuid, shuffle, anything that
  reads "now"): the compiler must not fold those into constants.
* Filters never mutate their input; results may share unchanged parts with it.
* Failures raise `ExpressionError` naming the filter: `filter "count" expects an array or
  object, got text`. Sizes stay within MAX_STRING / MAX_LIST from `values`.

Values are JSON values (None, bool, int, float, str, list, dict; Decimal from NUMERIC
columns counts as a number). Binary results (raw hashes, `encrypt`, `base64_decode` of
non-text) are `bytes` when they are not valid UTF-8 and `str` when they are, which
round-trips losslessly through the encoders; text inputs are encoded as UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import csv
import hashlib
import hmac
import io
import math
import random
import re
import secrets
import time
import unicodedata
import urllib.parse
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final, Protocol
from xml.etree import ElementTree

import orjson

from daemon.core.errors import ExpressionError
from daemon.core.millis import Millis, plain
from daemon.expr import phpdate
from daemon.expr.values import MAX_INT, MAX_LIST, MAX_STRING, render

__all__ = [
    "FILTERS",
    "UNSUPPORTED_FILTERS",
    "ElementFn",
    "FilterContext",
    "FilterDef",
    "FilterEnv",
    "is_empty",
    "loose_equals",
    "php_compare",
    "php_truthy",
    "strict_equals",
    "xano_type",
]

ElementFn = Callable[[Any, Any, Any, Any], Any]
"""A higher-order filter's argument: `each(item, index, parent, result) -> value`."""


class FilterContext(Protocol):
    """What the timestamp filters and `to_expr` need from the run."""

    @property
    def tz(self) -> tzinfo:
        """Zone used when a filter's timezone argument is omitted (Xano: UTC)."""
        ...

    def now_ms(self) -> int:
        """The current time in epoch milliseconds ("now" is read per evaluation, §6.29)."""
        ...

    def evaluate_text(self, text: str) -> Any:
        """Compile and evaluate a XanoScript expression (`to_expr`); never Python `eval`."""
        ...


@dataclass(frozen=True, slots=True)
class FilterEnv:
    """A plain `FilterContext`: fixed zone, a clock, and an optional expression evaluator."""

    tz: tzinfo = UTC
    clock: Callable[[], int] | None = None
    evaluator: Callable[[str], Any] | None = None

    def now_ms(self) -> int:
        return self.clock() if self.clock is not None else time.time_ns() // 1_000_000

    def evaluate_text(self, text: str) -> Any:
        if self.evaluator is None:
            raise ExpressionError('filter "to_expr" needs the XanoScript expression compiler')
        return self.evaluator(text)


DEFAULT_ENV: Final = FilterEnv()


@dataclass(frozen=True, slots=True)
class FilterDef:
    """One filter: its implementation, how many arguments it takes, and how to call it."""

    name: str
    fn: Callable[..., Any]
    min_args: int
    max_args: int | None
    aliases: tuple[str, ...] = ()
    higher_order: bool = False
    needs_ctx: bool = False
    pure: bool = True

    def check_arity(self, count: int) -> None:
        """Raise unless `count` arguments fit (the compiler calls this at load time)."""
        hi = self.max_args
        if self.min_args <= count and (hi is None or count <= hi):
            return
        if hi == self.min_args:
            want = f"{hi} argument{'s' if hi != 1 else ''}"
        elif hi is None:
            want = f"at least {self.min_args} arguments"
        else:
            want = f"{self.min_args} to {hi} arguments"
        raise ExpressionError(f'filter "{self.name}" takes {want}, got {count}')

    def __call__(
        self, value: Any, args: Sequence[Any] = (), ctx: FilterContext | None = None
    ) -> Any:
        self.check_arity(len(args))
        # Times read from a column (Millis) are plain numbers to every filter.
        value = plain(value)
        if args:
            args = [plain(a) for a in args]
        if self.needs_ctx:
            return self.fn(ctx if ctx is not None else DEFAULT_ENV, value, *args)
        return self.fn(value, *args)


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


# --- text ------------------------------------------------------------------------------------

_PHP_WHITESPACE: Final = " \t\n\r\0\x0b"


@lru_cache(maxsize=256)
def _trim_chars(mask: str) -> str:
    """PHP's trim character list, with "a..z" ranges expanded."""
    out: list[str] = []
    i = 0
    while i < len(mask):
        if i + 3 < len(mask) and mask[i + 1 : i + 3] == ".." and mask[i] <= mask[i + 3]:
            out.extend(chr(c) for c in range(ord(mask[i]), ord(mask[i + 3]) + 1))
            i += 4
        else:
            out.append(mask[i])
            i += 1
    return "".join(out)


def _trimmer(name: str, how: str) -> Callable[..., Any]:
    def impl(value: Any, mask: Any = None) -> str:
        text = _text(name, value)
        chars = _PHP_WHITESPACE if mask is None else _trim_chars(_text(name, mask))
        if how == "both":
            return text.strip(chars)
        return text.lstrip(chars) if how == "left" else text.rstrip(chars)

    return impl


def f_to_lower(value: Any) -> str:
    return _text("to_lower", value).lower()


def f_to_upper(value: Any) -> str:
    out = _text("to_upper", value).upper()  # "ß" grows to "SS"
    _sized_text("to_upper", len(out))
    return out


_WORD_START_RE: Final = re.compile(r"(^|[ \t\r\n\f\v])(\S)")


def f_capitalize(value: Any) -> str:
    # PHP ucwords: the first letter after whitespace goes up, the rest is left alone.
    return _WORD_START_RE.sub(lambda m: m.group(1) + m.group(2).upper(), _text("capitalize", value))


def f_strlen(value: Any) -> int:
    return len(_text("strlen", value))


def f_substr(value: Any, start: Any, length: Any = None) -> str:
    """PHP mb_substr: negative start counts from the end, negative length stops early."""
    text = _text("substr", value)
    size = len(text)
    begin = _int("substr", start)
    if begin < 0:
        begin = max(size + begin, 0)
    if begin >= size:
        return ""
    if length is None:
        return text[begin:]
    count = _int("substr", length)
    end = size + count if count < 0 else begin + count
    return text[begin:end] if end > begin else ""


def f_split(value: Any, sep: Any = ",") -> list[str]:
    text = _text("split", value)
    separator = _text("split", sep)
    if separator == "":  # PHP's explode refuses; one element per character is the useful answer
        _sized_list("split", len(text))
        return list(text)
    return text.split(separator)


def f_replace(value: Any, search: Any, replacement: Any) -> str:
    text = _text("replace", value)
    if type(search) is list:
        reps = replacement if type(replacement) is list else [replacement] * len(search)
        for i, s in enumerate(search):
            rep = _text("replace", reps[i]) if i < len(reps) else ""
            text = _replace_one(text, _text("replace", s), rep)
        return text
    return _replace_one(text, _text("replace", search), _text("replace", replacement))


def _replace_one(text: str, search: str, rep: str) -> str:
    if search == "":
        return text
    if len(rep) > len(search):
        _sized_text("replace", len(text) + text.count(search) * (len(rep) - len(search)))
    return text.replace(search, rep)


def f_concat(value: Any, other: Any, sep: Any = "") -> str:
    a, b, s = _text("concat", value), _text("concat", other), _text("concat", sep)
    _sized_text("concat", len(a) + len(b) + len(s))
    return a + s + b


# printf conversions: %[argnum$][flags][width][.precision]specifier
_SPRINTF_RE: Final = re.compile(
    r"%(?:(?P<argnum>\d+)\$)?(?P<flags>(?:[-+ 0]|'.)*)(?P<width>\d+)?(?:\.(?P<prec>\d+))?"
    r"(?P<spec>[bcdeEfFgGhHosuxX%])?"
)


def f_sprintf(value: Any, *args: Any) -> str:
    """PHP sprintf: %s %d %u %f %F %e %E %g %G %x %X %o %b %c %%, argnum$, flags - + 0 space
    'c (padding char), width and precision. Too few arguments is an error, as in PHP 8."""
    fmt = _text("sprintf", value)
    out: list[str] = []
    total = 0
    pos = 0
    next_arg = 0
    for m in _SPRINTF_RE.finditer(fmt):
        out.append(fmt[pos : m.start()])
        total += m.start() - pos
        pos = m.end()
        spec = m.group("spec")
        if spec is None:
            raise _fail("sprintf", f"has an unknown conversion at position {m.start() + 1}")
        if spec == "%":
            out.append("%")
            total += 1
            continue
        if m.group("argnum"):
            index = int(m.group("argnum")) - 1
            if index < 0:
                raise _fail("sprintf", "argument numbers start at 1")
        else:
            index = next_arg
            next_arg += 1
        if index >= len(args):
            raise _fail("sprintf", f"needs at least {index + 1} arguments, got {len(args)}")
        piece = _sprintf_one(args[index], m.group("flags"), m.group("width"), m.group("prec"), spec)
        total += len(piece)
        _sized_text("sprintf", total)
        out.append(piece)
    out.append(fmt[pos:])
    _sized_text("sprintf", total + len(fmt) - pos)
    return "".join(out)


def _php_exponent(text: str) -> str:
    # PHP prints exponents without padding: 1.5e+3, not Python's 1.5e+03.
    mantissa, _, exponent = text.partition("e")
    if not exponent:
        mantissa, _, exponent = text.partition("E")
        letter = "E"
    else:
        letter = "e"
    if not exponent:
        return text
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}{letter}{sign}{int(exponent.lstrip('+-'))}"


def _sprintf_one(arg: Any, flags: str, width_s: str | None, prec_s: str | None, spec: str) -> str:
    left = plus = False
    pad = " "
    i = 0
    while i < len(flags):
        ch = flags[i]
        if ch == "-":
            left = True
        elif ch == "+":
            plus = True
        elif ch == "0":
            pad = "0"
        elif ch == " ":
            pad = " "
        elif ch == "'":
            pad = flags[i + 1]
            i += 1
        i += 1
    width = int(width_s) if width_s else 0
    if width > 10_000:
        raise _fail("sprintf", "width is larger than 10000")
    prec = int(prec_s) if prec_s is not None else None
    if prec is not None and prec > 100 and spec not in "s":
        raise _fail("sprintf", "precision is larger than 100")
    numeric = spec not in "sc"
    if spec == "s":
        body = _text("sprintf", arg) if not isinstance(arg, list | dict) else render(arg)
        if prec is not None:
            body = body[:prec]
    elif spec == "c":
        body = chr(_int("sprintf", arg) % 0x110000)
    elif spec in "di":
        body = str(_int("sprintf", arg))
    elif spec == "u":
        n = _int("sprintf", arg)
        body = str(n + 2**64 if n < 0 else n)
    elif spec in "xXob":
        n = _int("sprintf", arg)
        if n < 0:
            n += 2**64
        body = format(n, spec)  # x X o b mean the same to format()
    else:
        x = float(_num("sprintf", arg))
        p = 6 if prec is None else prec
        if spec in "fF":
            body = f"{x:.{p}f}"
        elif spec in "eE":
            body = _php_exponent(f"{x:.{p}{spec}}")
        else:  # g G h H
            letter = "g" if spec in "gh" else "G"
            body = _php_exponent(f"{x:.{p or 1}{letter}}")
    if numeric and plus and not body.startswith("-"):
        body = "+" + body
    if len(body) >= width:
        return body
    if left:
        return body + (" " if pad == "0" and numeric else pad) * (width - len(body))
    if pad == "0" and numeric and body[:1] in "+-":
        return body[0] + "0" * (width - len(body)) + body[1:]
    return pad * (width - len(body)) + body


def _tester(name: str, fold: bool, how: str) -> Callable[..., bool]:
    def impl(value: Any, needle: Any) -> bool:
        text, sub = _text(name, value), _text(name, needle)
        if fold:
            text, sub = text.casefold(), sub.casefold()
        if how == "contains":
            return sub in text
        return text.startswith(sub) if how == "start" else text.endswith(sub)

    return impl


def _finder(name: str, fold: bool) -> Callable[..., Any]:
    def impl(value: Any, needle: Any) -> int | bool:
        text, sub = _text(name, value), _text(name, needle)
        if fold:
            text, sub = text.lower(), sub.lower()
        found = text.find(sub)
        return False if found < 0 else found

    return impl


_COMMENT_RE: Final = re.compile(r"<!--.*?(?:-->|$)|<\?.*?(?:\?>|$)", re.DOTALL)
_TAG_RE: Final = re.compile(r"</?([A-Za-z][A-Za-z0-9:-]*)?[^>]*>?")
_ALLOWED_RE: Final = re.compile(r"<?/?([A-Za-z][A-Za-z0-9:-]*)>?")


def f_strip_html(value: Any, allowed: Any = None) -> str:
    """PHP strip_tags: drop tags, comments and PHP blocks; keep tags listed in `allowed`
    ("<a><b>" or ["a", "b"])."""
    text = _COMMENT_RE.sub("", _text("strip_html", value))
    keep: set[str] = set()
    if allowed is not None:
        items = allowed if type(allowed) is list else [_text("strip_html", allowed)]
        for item in items:
            keep.update(m.lower() for m in _ALLOWED_RE.findall(_text("strip_html", item)))
    if not keep:
        return _TAG_RE.sub("", text)
    return _TAG_RE.sub(lambda m: m.group(0) if (m.group(1) or "").lower() in keep else "", text)


_UNACCENT_EXTRA: Final = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "ø": "o",
        "Ø": "O",
        "œ": "oe",
        "Œ": "OE",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "þ": "th",
        "Þ": "Th",
        "ð": "d",
        "Ð": "D",
        "\u0131": "i",  # dotless i
    }
)


def f_unaccent(value: Any) -> str:
    text = _text("unaccent", value).translate(_UNACCENT_EXTRA)
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_ADDSLASHES: Final = str.maketrans({"'": "\\'", '"': '\\"', "\\": "\\\\", "\0": "\\0"})


def f_addslashes(value: Any) -> str:
    out = _text("addslashes", value).translate(_ADDSLASHES)
    _sized_text("addslashes", len(out))
    return out


def f_escape(value: Any) -> str:
    """Escape quotes, backslashes and control characters the way a JSON string does
    (newline -> \\n, tab -> \\t, '"' -> \\"), without the surrounding quotes."""
    out = orjson.dumps(_text("escape", value)).decode()[1:-1]
    _sized_text("escape", len(out))
    return out


# --- regular expressions ---------------------------------------------------------------------
# Patterns are PHP PCRE literals with delimiters and flags ("/^a.*c$/i"). Each distinct
# pattern is translated and compiled once (LRU cache), not per call.

_BRACKETS: Final = {"(": ")", "[": "]", "{": "}", "<": ">"}
_PCRE_FLAGS: Final = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_NAMED_GROUP_RE: Final = re.compile(r"\(\?<(?![=!])|\(\?'([A-Za-z_]\w*)'|\(\?P?<([A-Za-z_]\w*)>")


@lru_cache(maxsize=512)
def _pcre(name: str, pattern: str) -> tuple[re.Pattern[str], bool]:
    """Compile a delimited PCRE pattern; the flag says "anchored" (PCRE's A modifier)."""
    if len(pattern) < 2:
        raise _fail(name, f"needs a delimited pattern like /.../, got {pattern!r}")
    opener = pattern[0]
    if opener.isalnum() or opener == "\\" or opener.isspace():
        raise _fail(name, f"pattern must start with a delimiter like /, got {pattern[:20]!r}")
    closer = _BRACKETS.get(opener, opener)
    end = pattern.rfind(closer)
    if end <= 0:
        raise _fail(name, f"pattern has no closing delimiter {closer!r}")
    body, modifiers = pattern[1:end], pattern[end + 1 :]
    flags = 0
    anchored = False
    for ch in modifiers:
        if ch in _PCRE_FLAGS:
            flags |= _PCRE_FLAGS[ch]
        elif ch == "A":
            anchored = True
        elif ch in "uDS\n\r ":
            continue  # Python patterns are Unicode already; D and S change nothing we rely on
        else:
            raise _fail(name, f'does not support the regex modifier "{ch}"')
    # PCRE's (?<name>...) is Python's (?P<name>...).
    body = _NAMED_GROUP_RE.sub(
        lambda m: "(?P<" if m.group(0) == "(?<" else f"(?P<{m.group(1) or m.group(2)}>", body
    )
    try:
        return re.compile(body, flags), anchored
    except re.error as exc:
        raise _fail(name, f"has an invalid regular expression: {exc}") from None


def _search(name: str, pattern: Any, subject: str) -> re.Match[str] | None:
    compiled, anchored = _pcre(name, _text(name, pattern))
    return compiled.match(subject) if anchored else compiled.search(subject)


def _groups(m: re.Match[str]) -> list[str]:
    # preg_match: unmatched groups are "", trailing unmatched ones are left out.
    groups = [m.group(0), *m.groups()]
    while len(groups) > 1 and groups[-1] is None:
        groups.pop()
    return [g if g is not None else "" for g in groups]


def f_regex_matches(pattern: Any, subject: Any) -> bool:
    return _search("regex_matches", pattern, _text("regex_matches", subject)) is not None


def f_regex_get_first_match(pattern: Any, subject: Any) -> list[str]:
    m = _search("regex_get_first_match", pattern, _text("regex_get_first_match", subject))
    return _groups(m) if m else []


def f_regex_get_all_matches(pattern: Any, subject: Any) -> list[list[str]]:
    """preg_match_all in pattern order: [[all full matches], [all group 1], ...]."""
    name = "regex_get_all_matches"
    compiled, anchored = _pcre(name, _text(name, pattern))
    text = _text(name, subject)
    out: list[list[str]] = [[] for _ in range(compiled.groups + 1)]
    for count, m in enumerate(_all_matches(compiled, anchored, text)):
        _sized_list(name, count + 1)
        for i in range(compiled.groups + 1):
            out[i].append(m.group(i) or "")
    return out


def _all_matches(compiled: re.Pattern[str], anchored: bool, text: str) -> Iterable[re.Match[str]]:
    if not anchored:
        yield from compiled.finditer(text)
        return
    pos = 0  # PCRE's A modifier: each match must start where the previous one ended
    while pos <= len(text):
        m = compiled.match(text, pos)
        if m is None:
            return
        yield m
        pos = m.end() if m.end() > pos else pos + 1


_PHP_REF_RE: Final = re.compile(r"\\\\|\$\{(\d{1,2})\}|\$(\d{1,2})|\\(\d{1,2})")


@lru_cache(maxsize=512)
def _replacement(rep: str) -> Callable[[re.Match[str]], str]:
    """preg_replace's $1 / ${1} / \\1 references as a match -> text function."""
    parts: list[str | int] = []
    pos = 0
    for m in _PHP_REF_RE.finditer(rep):
        parts.append(rep[pos : m.start()])
        if m.group(0) == "\\\\":
            parts.append("\\")
        else:
            parts.append(int(m.group(1) or m.group(2) or m.group(3)))
        pos = m.end()
    parts.append(rep[pos:])

    def expand(match: re.Match[str]) -> str:
        out = []
        for p in parts:
            if type(p) is int:
                out.append(match.group(p) or "" if p <= (match.re.groups or 0) else "")
            else:
                out.append(p)
        return "".join(out)

    return expand


def f_regex_replace(pattern: Any, replacement: Any, subject: Any) -> str:
    name = "regex_replace"
    compiled, anchored = _pcre(name, _text(name, pattern))
    text = _text(name, subject)
    expand = _replacement(_text(name, replacement))
    total = [len(text)]

    def sized(m: re.Match[str]) -> str:
        piece = expand(m)
        total[0] += len(piece) - (m.end() - m.start())
        _sized_text(name, total[0])
        return piece

    if anchored:
        m = compiled.match(text)
        return text if m is None else sized(m) + text[m.end() :]
    return compiled.sub(sized, text)


_PREG_QUOTE_CHARS: Final = frozenset(".\\+*?[^]$(){}=!<>|:-#")


def f_regex_quote(value: Any, delimiter: Any = None) -> str:
    text = _text("regex_quote", value)
    extra = _text("regex_quote", delimiter) if delimiter is not None else ""
    out = []
    for ch in text:
        if ch in _PREG_QUOTE_CHARS or (extra and ch in extra):
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\000")
        else:
            out.append(ch)
    return "".join(out)


# --- URLs ------------------------------------------------------------------------------------


def f_url_encode(value: Any) -> str:
    # PHP urlencode: spaces become "+", everything but [A-Za-z0-9_.-] is %XX ("~" too).
    return urllib.parse.quote_plus(_bytes("url_encode", value), safe="").replace("~", "%7E")


def f_url_encode_rfc3986(value: Any) -> str:
    return urllib.parse.quote(_bytes("url_encode_rfc3986", value), safe="-_.~")


def f_url_decode(value: Any) -> str:
    return urllib.parse.unquote_plus(_text("url_decode", value))


def f_url_decode_rfc3986(value: Any) -> str:
    return urllib.parse.unquote(_text("url_decode_rfc3986", value))


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """Raw (still encoded) key/value pairs of a query string, in order."""
    pairs = []
    for part in query.split("&"):
        if part:
            key, _, val = part.partition("=")
            pairs.append((key, val))
    return pairs


def _decoded_key(raw: str) -> str:
    return urllib.parse.unquote_plus(raw)


def _with_query(url: str, pairs: list[tuple[str, str]]) -> str:
    base, hash_, fragment = url.partition("#")
    base = base.split("?", 1)[0]
    query = "&".join(f"{k}={v}" if v or k else k for k, v in pairs)
    return base + ("?" + query if query else "") + (hash_ + fragment)


def _url_query(url: str) -> str:
    return url.partition("#")[0].partition("?")[2]


def f_url_addarg(value: Any, key: Any, arg: Any, rfc3986: Any = False) -> str:
    url = _text("url_addarg", value)
    k, v = _text("url_addarg", key), _text("url_addarg", arg)
    enc = f_url_encode_rfc3986 if _bool_arg(rfc3986) else f_url_encode
    pairs = [(rk, rv) for rk, rv in _query_pairs(_url_query(url)) if _decoded_key(rk) != k]
    pairs.append((enc(k), enc(v)))
    return _with_query(url, pairs)


def f_url_delarg(value: Any, key: Any) -> str:
    url = _text("url_delarg", value)
    k = _text("url_delarg", key)
    pairs = [(rk, rv) for rk, rv in _query_pairs(_url_query(url)) if _decoded_key(rk) != k]
    return _with_query(url, pairs)


def f_url_hasarg(value: Any, key: Any) -> bool:
    k = _text("url_hasarg", key)
    return any(
        _decoded_key(rk) == k for rk, _ in _query_pairs(_url_query(_text("url_hasarg", value)))
    )


def f_url_getarg(value: Any, key: Any, default: Any = "") -> Any:
    k = _text("url_getarg", key)
    for rk, rv in _query_pairs(_url_query(_text("url_getarg", value))):
        if _decoded_key(rk) == k:
            return urllib.parse.unquote_plus(rv)
    return default


def f_url_parse(value: Any) -> dict[str, Any]:
    """URL parts as PHP parse_url names them; every key is present, missing parts are null."""
    text = _text("url_parse", value)
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise _fail("url_parse", f"cannot parse {text[:60]!r}: {exc}") from None
    return {
        "scheme": parts.scheme or None,
        "host": parts.hostname if parts.netloc else None,
        "port": port,
        "user": parts.username,
        "pass": parts.password,
        "path": parts.path or None,
        "query": parts.query or None,
        "fragment": parts.fragment or None,
    }


_BRACKET_KEY_RE: Final = re.compile(r"\[([^\]]*)\]")


def f_querystring_parse(value: Any) -> dict[str, Any]:
    """PHP parse_str: "a=1&b[]=2&b[]=3&c[x]=4" -> {"a": "1", "b": ["2", "3"], "c": {"x": "4"}}."""
    text = _text("querystring_parse", value)
    if text.startswith("?"):
        text = text[1:]
    out: dict[str, Any] = {}
    for raw_key, raw_val in _query_pairs(text):
        key = urllib.parse.unquote_plus(raw_key)
        val = urllib.parse.unquote_plus(raw_val)
        head, bracket, _ = key.partition("[")
        if not head:
            continue
        # PHP turns "." and " " in the top-level name into "_".
        head = head.replace(".", "_").replace(" ", "_")
        subs = _BRACKET_KEY_RE.findall(key[len(head) :]) if bracket else []
        _parse_str_set(out, [head, *subs[:16]], val)
    return out


def _parse_str_set(container: Any, keys: list[str], val: str) -> None:
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if type(container) is list:
            if key == "" or not key.isdigit():
                if last:
                    container.append(val)
                    return
                container.append({})
                container = container[-1]
                continue
            key_i = int(key)
            while len(container) <= key_i and len(container) < 10_000:
                container.append(None)
            if key_i >= len(container):
                return
            if last:
                container[key_i] = val
                return
            if not isinstance(container[key_i], list | dict):
                container[key_i] = {}
            container = container[key_i]
            continue
        if key == "":
            key = str(len(container))
        if last:
            container[key] = val
            return
        nxt = container.get(key)
        if not isinstance(nxt, list | dict):
            nxt = [] if keys[depth + 1] == "" else {}
            container[key] = nxt
        container = nxt


# --- charsets --------------------------------------------------------------------------------

_ENCODINGS: Final = (
    "UTF-8",
    "ASCII",
    "ISO-8859-1",
    "ISO-8859-2",
    "ISO-8859-15",
    "Windows-1250",
    "Windows-1251",
    "Windows-1252",
    "UTF-16",
    "UTF-16BE",
    "UTF-16LE",
    "UTF-32",
    "Shift_JIS",
    "EUC-JP",
    "GB18030",
    "Big5",
    "KOI8-R",
)


def _codec(name: str, encoding: Any) -> str:
    enc = _text(name, encoding).strip()
    try:
        codecs.lookup(enc)
    except LookupError:
        raise _fail(name, f'does not know the character encoding "{enc[:40]}"') from None
    return enc


def f_list_encodings(value: Any) -> list[str]:
    return list(_ENCODINGS)


def f_detect_encoding(value: Any, encodings: Any = None) -> Any:
    data = _bytes("detect_encoding", value)
    if encodings is None:
        candidates: list[str] = ["ASCII", "UTF-8", "ISO-8859-1"]
    else:
        raw = (
            encodings if type(encodings) is list else _text("detect_encoding", encodings).split(",")
        )
        candidates = [_codec("detect_encoding", e) for e in raw if str(e).strip()]
    for enc in candidates:
        try:
            data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
        return enc
    return False


def f_to_utf8(value: Any) -> str:
    """ISO-8859-1 binary to text; text is already Unicode and comes back unchanged."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    return _text("to_utf8", value)


def f_from_utf8(value: Any) -> str | bytes:
    """Text to ISO-8859-1 binary; characters outside Latin-1 become "?" (as utf8_decode)."""
    return _binary(_text("from_utf8", value).encode("latin-1", "replace"))


def f_convert_encoding(value: Any, to: Any, source: Any = "UTF-8") -> str | bytes:
    """Decode binary input from `source` (text input is already decoded) and encode the
    result as `to`; UTF-8 results are text, others binary unless they happen to be UTF-8."""
    target = _codec("convert_encoding", to)
    if isinstance(value, bytes | bytearray):
        try:
            text = bytes(value).decode(_codec("convert_encoding", source))
        except UnicodeDecodeError as exc:
            raise _fail("convert_encoding", f"cannot decode the input: {exc.reason}") from None
    else:
        text = _text("convert_encoding", value)
    if codecs.lookup(target).name == "utf-8":
        return text
    try:
        return _binary(text.encode(target, "replace"))
    except (LookupError, TypeError):
        raise _fail("convert_encoding", f'cannot encode to "{target}"') from None


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


def _text_key(v: Any) -> str:
    return v if type(v) is str else render(v)


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


# --- objects ---------------------------------------------------------------------------------


def f_set(value: Any, path: Any, new: Any) -> Any:
    segs = _path("set", path)
    if _auto_map(segs, value):
        return [_set_path("set", item, segs, new, remove=False) for item in value]
    return _set_path("set", value, segs, new, remove=False)


def f_set_conditional(value: Any, path: Any, new: Any, condition: Any) -> Any:
    return f_set(value, path, new) if php_truthy(condition) else value


def f_set_ifnotempty(value: Any, path: Any, new: Any) -> Any:
    return value if is_empty(new) else f_set(value, path, new)


def f_set_ifnotnull(value: Any, path: Any, new: Any) -> Any:
    return value if new is None else f_set(value, path, new)


def f_unset(value: Any, path: Any) -> Any:
    segs = _path("unset", path)
    if _auto_map(segs, value):
        return [_set_path("unset", item, segs, None, remove=True) for item in value]
    return _set_path("unset", value, segs, None, remove=True)


def f_first_notnull(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def f_first_notempty(value: Any, fallback: Any) -> Any:
    return fallback if is_empty(value) else value


# --- math ------------------------------------------------------------------------------------


def _arith(name: str, op: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def impl(value: Any, other: Any) -> Any:
        a, b = _pair(_num(name, value), _num(name, other))
        try:
            return _checked_int(name, op(a, b))
        except (OverflowError, InvalidOperation) as exc:
            raise _fail(name, f"failed: {exc}") from None

    return impl


def _divide(name: str, a: Any, b: Any) -> Any:
    a, b = _pair(a, b)
    if b == 0:
        raise _fail(name, "divides by zero")
    if type(a) is int and type(b) is int:
        q, r = divmod(a, b)
        return q if r == 0 else a / b  # PHP 8: 10/2 is 5, 7/2 is 3.5
    try:
        return a / b
    except (OverflowError, InvalidOperation) as exc:
        raise _fail(name, f"failed: {exc}") from None


def f_divide(value: Any, other: Any) -> Any:
    return _divide("divide", _num("divide", value), _num("divide", other))


def f_modulus(value: Any, other: Any) -> int:
    """PHP %: both sides truncated to integers; the result takes the dividend's sign."""
    a, b = _int("modulus", value), _int("modulus", other)
    if b == 0:
        raise _fail("modulus", "divides by zero")
    return int(math.fmod(a, b)) if abs(a) < 2**53 else a - b * int(a / b)


_DEC: Final = Context(prec=400, Emax=999_999, Emin=-999_999)


def _round_half_up(x: Any, digits: int) -> Decimal:
    d = Decimal(repr(x)) if type(x) is float else Decimal(x)
    return d.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP, context=_DEC)


def f_round(value: Any, precision: Any = 0) -> Any:
    """PHP round: half away from zero on the decimal digits (2.5 -> 3, -2.5 -> -3,
    1.955 -> 1.96), not banker's rounding. Precision 0 or less gives an integer."""
    x = _num("round", value)
    digits = _int("round", precision) if precision is not None else 0
    if not -20 <= digits <= 20:
        raise _fail("round", f"precision must be from -20 to 20, got {digits}")
    if type(x) is float and not math.isfinite(x):
        return x
    if type(x) is int and digits >= 0:
        return x
    try:
        q = _round_half_up(x, digits)
    except InvalidOperation:
        return x
    if digits <= 0:
        return _checked_int("round", int(q))
    return q if type(x) is Decimal else float(q)


def _float_fn(name: str, fn: Callable[[float], float]) -> Callable[..., Any]:
    def impl(value: Any) -> Any:
        x = float(_num(name, value))
        try:
            out = fn(x)
        except (ValueError, OverflowError):
            raise _fail(name, f"is undefined for {render(x)}") from None
        return (
            int(out) if out.is_integer() and abs(out) < 2**53 and name in _INT_WHEN_WHOLE else out
        )

    return impl


# sqrt(9) is 3, not 3.0, as Xano shows; trigonometry stays decimal.
_INT_WHEN_WHOLE: Final = frozenset({"sqrt", "exp", "ln", "log10", "log", "pow"})


def f_floor(value: Any) -> Any:
    x = _num("floor", value)
    if type(x) is float and not math.isfinite(x):
        raise _fail("floor", f"is undefined for {x}")
    return _checked_int("floor", math.floor(x))


def f_ceil(value: Any) -> Any:
    x = _num("ceil", value)
    if type(x) is float and not math.isfinite(x):
        raise _fail("ceil", f"is undefined for {x}")
    return _checked_int("ceil", math.ceil(x))


def f_abs(value: Any) -> Any:
    return abs(_num("abs", value))


def f_log(value: Any, base: Any = None) -> Any:
    x = float(_num("log", value))
    try:
        out = math.log(x) if base is None else math.log(x, float(_num("log", base)))
    except (ValueError, ZeroDivisionError):
        raise _fail("log", f"is undefined for {render(x)}") from None
    return int(out) if out.is_integer() and abs(out) < 2**53 else out


def f_pow(value: Any, exponent: Any) -> Any:
    base, exp = _num("pow", value), _num("pow", exponent)
    if type(base) is int and type(exp) is int and exp >= 0:
        # Estimate the size before computing: 10**10**9 must not run.
        if base not in (0, 1, -1) and (abs(base).bit_length() - 1) * exp > 64:
            raise _fail("pow", "result is too large (limit is 2**63)")
        return _checked_int("pow", base**exp)
    try:
        out = float(base) ** float(exp)
    except (OverflowError, ZeroDivisionError):
        raise _fail("pow", "result is out of range") from None
    if isinstance(out, complex):
        raise _fail("pow", f"is undefined for {render(base)} ** {render(exp)}")
    return out


def f_number_format(
    value: Any, decimals: Any = 0, dec_point: Any = ".", thousands: Any = ","
) -> str:
    """PHP number_format: rounds half away from zero, groups thousands, never prints -0."""
    x = _num("number_format", value)
    places = max(_int("number_format", decimals) if decimals is not None else 0, 0)
    if places > 100:
        raise _fail("number_format", "decimals must be at most 100")
    if type(x) is float and not math.isfinite(x):
        return render(x)
    q = _round_half_up(x, places)
    negative = q < 0
    digits = f"{abs(q):.{places}f}"
    whole, _, frac = digits.partition(".")
    sep = _text("number_format", thousands) if thousands is not None else ""
    groups = []
    while len(whole) > 3:
        groups.append(whole[-3:])
        whole = whole[:-3]
    groups.append(whole)
    text = sep.join(reversed(groups))
    if places:
        text += (_text("number_format", dec_point) if dec_point is not None else "") + frac
    return "-" + text if negative and q != 0 else text


def _bitwise(name: str, op: Callable[[int, int], int]) -> Callable[..., int]:
    def impl(value: Any, other: Any) -> int:
        return op(_int(name, value), _int(name, other))

    return impl


def f_bitwise_not(value: Any) -> int:
    return ~_int("bitwise_not", value)


def _comparer(test: Callable[[int], bool]) -> Callable[..., bool]:
    def impl(value: Any, other: Any) -> bool:
        return test(php_compare(value, other))

    return impl


def f_equals(value: Any, other: Any) -> bool:
    return loose_equals(value, other)


def f_not_equals(value: Any, other: Any) -> bool:
    return not loose_equals(value, other)


def f_odd(value: Any) -> bool:
    return _int("odd", value) % 2 != 0


def f_even(value: Any) -> bool:
    return _int("even", value) % 2 == 0


def f_not(value: Any) -> bool:
    return not php_truthy(value)


# --- conversion ------------------------------------------------------------------------------


def _leading_number(text: str) -> int | float:
    m = _LEADING_NUMBER_RE.match(text)
    return _text_number(m.group().strip()) if m else 0


def f_to_int(value: Any) -> int:
    """PHP intval: the leading number of text ("133.45 kg" -> 133, "abc" -> 0), floats
    truncated, booleans 0/1, null 0, arrays 0 when empty else 1."""
    t = type(value)
    if t is int:
        return value
    if t is bool:
        return int(value)
    if value is None:
        return 0
    if t is str:
        n: Any = _leading_number(value[:400])
    elif t is float or t is Decimal:
        n = value
    elif t is list or t is tuple or isinstance(value, Mapping):
        return 1 if value else 0
    else:
        raise _expects("to_int", "a scalar", value)
    if type(n) is int:
        return _checked_int("to_int", n)
    if not math.isfinite(n):
        return 0
    return _checked_int("to_int", int(n))


def f_to_decimal(value: Any) -> float:
    t = type(value)
    if t is float:
        return value
    if t is int or t is bool or t is Decimal:
        return float(value)
    if value is None:
        return 0.0
    if t is str:
        return float(_leading_number(value[:400]))
    if t is list or t is tuple or isinstance(value, Mapping):
        return 1.0 if value else 0.0
    raise _expects("to_decimal", "a scalar", value)


def f_to_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return render(value)


_TRUE_WORDS: Final = frozenset({"1", "true", "on", "yes"})


def f_to_bool(value: Any) -> bool:
    """Text is true only for "1", "true", "on", "yes" (any case; PHP FILTER_VALIDATE_BOOL),
    so "false" and "no" are false; other values by emptiness."""
    if type(value) is str:
        return value.strip().lower() in _TRUE_WORDS
    return php_truthy(value)


def f_to_expr(ctx: FilterContext, value: Any) -> Any:
    return ctx.evaluate_text(_text("to_expr", value))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise TypeError("binary data is not UTF-8 text (base64_encode it first)") from None
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def f_json_encode(value: Any) -> str:
    try:
        out = orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:  # orjson.JSONEncodeError subclasses TypeError
        raise _fail("json_encode", f"failed: {exc}") from None
    _sized_text("json_encode", len(out))
    return out.decode()


def f_json_decode(value: Any) -> Any:
    if type(value) is not str and not isinstance(value, bytes | bytearray):
        if value is None or type(value) is bool or _is_num(value):
            return value  # PHP's json_decode(5) is 5
        raise _expects("json_decode", "text", value)
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise _fail("json_decode", f"cannot decode JSON: {exc}") from None


# yaml and cryptography are imported by the filters that use them: most daemons never do, and
# importing them up front cost every process ~10 MB and tens of milliseconds at start.


@lru_cache(maxsize=1)
def _yaml_loader() -> Any:
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """Safe YAML without anchors/aliases: a few aliases can expand to gigabytes."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("YAML aliases (*name) are not allowed")
            return super().compose_node(parent, index)

    return NoAliasLoader


def f_yaml_decode(value: Any) -> Any:
    import yaml

    text = _text("yaml_decode", value)
    try:
        data = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _fail("yaml_decode", f"cannot decode YAML: {str(exc)[:200]}") from None
    return _jsonable(data)


def _jsonable(value: Any) -> Any:
    # YAML has dates and non-text keys; JSON values do not.
    if isinstance(value, dict):
        return {k if type(k) is str else render(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, bytes):
        return _binary(value)
    return str(value) if not hasattr(value, "isoformat") else value.isoformat()


def f_yaml_encode(value: Any) -> str:
    import yaml

    plain = orjson.loads(f_json_encode(value))  # Decimal, bytes -> JSON values first
    out = yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, default_flow_style=False)
    _sized_text("yaml_encode", len(out))
    return out


_DTD_RE: Final = re.compile(r"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def f_xml_decode(value: Any) -> dict[str, Any]:
    """XML to Xano's shape: {tag: {"@attributes": {...} or [], "value": text or [{child}]}}.
    Documents with a DTD are refused (entity expansion is the classic XML bomb)."""
    text = _text("xml_decode", value)
    if _DTD_RE.search(text):
        raise _fail("xml_decode", "refuses documents with a DOCTYPE or ENTITY declaration")
    try:
        root = ElementTree.fromstring(text)  # noqa: S314 - DTDs refused above
    except ElementTree.ParseError as exc:
        raise _fail("xml_decode", f"cannot parse XML: {exc}") from None
    return {root.tag: _xml_node(root)}


def _xml_node(el: ElementTree.Element) -> dict[str, Any]:
    children = list(el)
    attrs: Any = dict(el.attrib) if el.attrib else []
    if children:
        return {"@attributes": attrs, "value": [{c.tag: _xml_node(c)} for c in children]}
    return {"@attributes": attrs, "value": el.text or ""}


def _csv_dialect(name: str, sep: Any, enclosure: Any, escape: Any) -> dict[str, Any]:
    d, q = (
        _text(name, sep if sep is not None else ","),
        _text(name, enclosure if enclosure is not None else '"'),
    )
    e = _text(name, escape) if escape is not None else q  # default: a doubled enclosure
    if len(d) != 1 or len(q) != 1 or len(e) > 1:
        raise _fail(name, "separator, enclosure and escape must be single characters")
    return {
        "delimiter": d,
        "quotechar": q,
        "escapechar": None if e in ("", q) else e,
        "doublequote": e in ("", q),
        "lineterminator": "\n",
    }


def _csv_rows(name: str, text: str, dialect: dict[str, Any]) -> list[list[str]]:
    try:
        rows = []
        for row in csv.reader(io.StringIO(text), **dialect):
            rows.append(row)
            if len(rows) > MAX_LIST:
                _sized_list(name, len(rows))
        return rows
    except csv.Error as exc:
        raise _fail(name, f"cannot parse CSV: {exc}") from None


def f_csv_decode(
    value: Any, sep: Any = None, enclosure: Any = None, escape: Any = None
) -> list[list[str]]:
    dialect = _csv_dialect("csv_decode", sep, enclosure, escape)
    return _csv_rows("csv_decode", _text("csv_decode", value), dialect)


def f_csv_parse(
    value: Any, sep: Any = None, enclosure: Any = None, escape: Any = None
) -> list[dict[str, str]]:
    """CSV with a header row to an array of objects keyed by the header."""
    dialect = _csv_dialect("csv_parse", sep, enclosure, escape)
    rows = _csv_rows("csv_parse", _text("csv_parse", value), dialect)
    if not rows:
        return []
    header = rows[0]
    return [
        {h: (row[i] if i < len(row) else "") for i, h in enumerate(header)}
        for row in rows[1:]
        if row
    ]


def _csv_write(
    name: str, rows: Iterable[Any], dialect: dict[str, Any], columns: list[str] | None
) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, **dialect)
    try:
        for row in rows:
            if isinstance(row, Mapping):
                cells = [row.get(c) for c in columns] if columns is not None else list(row.values())
            elif type(row) in (list, tuple):
                cells = list(row)
            else:
                raise _fail(name, f"expects rows that are arrays or objects, got {xano_type(row)}")
            writer.writerow(
                ["" if c is None else (c if type(c) is str else render(c)) for c in cells]
            )
            if buf.tell() > MAX_STRING:
                _sized_text(name, buf.tell())
    except csv.Error as exc:
        raise _fail(name, f"cannot write CSV: {exc}") from None
    return buf.getvalue()


def f_csv_encode(value: Any, sep: Any = None, enclosure: Any = None, escape: Any = None) -> str:
    dialect = _csv_dialect("csv_encode", sep, enclosure, escape)
    return _csv_write("csv_encode", _list("csv_encode", value), dialect, None)


def f_csv_create(
    value: Any, rows: Any, sep: Any = None, enclosure: Any = None, escape: Any = None
) -> str:
    """The piped value is the column names; `rows` are arrays (in column order) or objects."""
    dialect = _csv_dialect("csv_create", sep, enclosure, escape)
    columns = [_text_key(c) for c in _list("csv_create", value)]
    body = _csv_write("csv_create", _list("csv_create", rows), dialect, columns)
    return _csv_write("csv_create", [columns], dialect, None) + body


def f_base64_encode(value: Any) -> str:
    data = _bytes("base64_encode", value)
    _sized_text("base64_encode", (len(data) + 2) // 3 * 4)
    return base64.b64encode(data).decode("ascii")


def f_base64_encode_urlsafe(value: Any) -> str:
    """URL-safe alphabet (- and _) without "=" padding, as in JWTs."""
    return f_base64_encode(value).replace("+", "-").replace("/", "_").rstrip("=")


def _b64decode(name: str, text: str, urlsafe: bool) -> str | bytes:
    cleaned = "".join(text.split())
    if urlsafe:
        cleaned = cleaned.replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return _binary(base64.b64decode(cleaned, validate=True))
    except (binascii.Error, ValueError):
        raise _fail(name, "got text that is not valid base64") from None


def f_base64_decode(value: Any) -> str | bytes:
    return _b64decode("base64_decode", _text("base64_decode", value), urlsafe=False)


def f_base64_decode_urlsafe(value: Any) -> str | bytes:
    return _b64decode("base64_decode_urlsafe", _text("base64_decode_urlsafe", value), urlsafe=True)


def f_hex2bin(value: Any) -> str | bytes:
    try:
        return _binary(bytes.fromhex(_text("hex2bin", value)))
    except ValueError:
        raise _fail("hex2bin", "got text that is not an even number of hex digits") from None


def f_bin2hex(value: Any) -> str:
    data = _bytes("bin2hex", value)
    _sized_text("bin2hex", len(data) * 2)
    return data.hex()


def _from_base(name: str, value: Any, base: int) -> int:
    # PHP's hexdec/bindec/octdec skip characters that are not digits of the base.
    text = _text(name, value).lower()
    digits = "".join(ch for ch in text if ch in _DIGITS36[:base])
    if len(digits) > 200:
        raise _fail(name, "input is too long")
    return int(digits, base) if digits else 0


_DIGITS36: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


def _to_base(n: int, base: int) -> str:
    if n < 0:
        n += 2**64  # PHP treats negatives as unsigned 64-bit
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, base)
        out.append(_DIGITS36[r])
    return "".join(reversed(out))


def _radix(name: str, base: int, to: bool) -> Callable[..., Any]:
    def impl(value: Any) -> Any:
        if to:
            return _to_base(_int(name, value), base)
        return _from_base(name, value, base)

    return impl


def f_base_convert(value: Any, from_base: Any, to_base: Any) -> str:
    a, b = _int("base_convert", from_base), _int("base_convert", to_base)
    if not (2 <= a <= 36 and 2 <= b <= 36):
        raise _fail("base_convert", "bases must be from 2 to 36")
    return _to_base(_from_base("base_convert", value, a), b)


# --- security --------------------------------------------------------------------------------


def _hasher(name: str, algo: str) -> Callable[..., Any]:
    def impl(value: Any, raw: Any = False) -> str | bytes:
        digest = hashlib.new(algo, _bytes(name, value), usedforsecurity=False)
        return _binary(digest.digest()) if _bool_arg(raw) else digest.hexdigest()

    return impl


def _hmacer(name: str, algo: str) -> Callable[..., Any]:
    def impl(value: Any, key: Any, raw: Any = False) -> str | bytes:
        mac = hmac.new(_bytes(name, key), _bytes(name, value), algo)
        return _binary(mac.digest()) if _bool_arg(raw) else mac.hexdigest()

    return impl


_CIPHERS: Final = {
    f"aes-{bits}-{mode}": (bits // 8, mode) for bits in (128, 192, 256) for mode in ("cbc", "gcm")
}
_GCM_TAG: Final = 16


def _cipher_args(name: str, algorithm: Any, key: Any, iv: Any) -> tuple[str, bytes, bytes]:
    algo = _text(name, algorithm).strip().lower()
    if algo not in _CIPHERS:
        raise _fail(name, f'supports {", ".join(_CIPHERS)}, got "{algo[:30]}"')
    size, mode = _CIPHERS[algo]
    # As PHP's openssl_encrypt: the key is raw bytes, NUL-padded or cut to the key size;
    # a CBC IV likewise to 16 bytes. A GCM IV is used as given (12 bytes is standard).
    key_b = _bytes(name, key)[:size].ljust(size, b"\0")
    iv_b = _bytes(name, iv)
    if mode == "cbc":
        iv_b = iv_b[:16].ljust(16, b"\0")
    elif not iv_b:
        raise _fail(name, "needs a non-empty IV for GCM")
    return mode, key_b, iv_b


def f_encrypt(value: Any, algorithm: Any, key: Any, iv: Any) -> str | bytes:
    """AES-CBC (PKCS#7 padded) or AES-GCM; raw binary out. GCM output is ciphertext
    followed by its 16-byte tag, which `decrypt` expects."""
    from cryptography.hazmat.primitives import padding as sym_padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    mode, key_b, iv_b = _cipher_args("encrypt", algorithm, key, iv)
    data = _bytes("encrypt", value)
    if mode == "gcm":
        return _binary(AESGCM(key_b).encrypt(iv_b, data, None))
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    enc = Cipher(algorithms.AES(key_b), modes.CBC(iv_b)).encryptor()
    return _binary(enc.update(padded) + enc.finalize())


def f_decrypt(value: Any, algorithm: Any, key: Any, iv: Any) -> str | bytes:
    from cryptography.hazmat.primitives import padding as sym_padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    mode, key_b, iv_b = _cipher_args("decrypt", algorithm, key, iv)
    data = _bytes("decrypt", value)
    try:
        if mode == "gcm":
            return _binary(AESGCM(key_b).decrypt(iv_b, data, None))
        dec = Cipher(algorithms.AES(key_b), modes.CBC(iv_b)).decryptor()
        padded = dec.update(data) + dec.finalize()
        unpadder = sym_padding.PKCS7(128).unpadder()
        return _binary(unpadder.update(padded) + unpadder.finalize())
    except Exception:  # InvalidTag, bad padding, wrong length: one answer, no oracle detail
        raise _fail("decrypt", "failed: wrong key, IV or algorithm, or corrupted data") from None


# JWT: joserfc covers both JWS and JWE (pyjwt has no JWE), on top of `cryptography`.


def _jose_key(name: str, key: Any, alg: str) -> Any:
    from joserfc import jwk
    from joserfc.errors import SecurityWarning

    kind = "oct"
    if alg.startswith(("RS", "PS", "RSA")):
        kind = "RSA"
    elif alg.startswith(("ES", "ECDH")):
        kind = "EC"
    elif alg in ("EdDSA", "Ed25519", "Ed448"):
        kind = "OKP"
    # joserfc only warns about weak keys (an HS256 secret under 14 bytes); refuse them.
    with warnings.catch_warnings():
        warnings.simplefilter("error", SecurityWarning)
        try:
            if isinstance(key, Mapping):
                return jwk.import_key(dict(key))
            return jwk.import_key(_bytes(name, key), kind)  # type: ignore[call-overload]
        except SecurityWarning as exc:
            raise _fail(name, f"refuses the key: {exc}") from None
        except Exception as exc:
            raise _fail(name, f"cannot use the key for {alg}: {exc}") from None


def _jose(name: str, fn: Callable[[], Any]) -> Any:
    from joserfc.errors import JoseError, SecurityWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", SecurityWarning)
        try:
            return fn()
        except SecurityWarning as exc:
            raise _fail(name, f"refuses the key: {exc}") from None
        except (JoseError, ValueError, TypeError) as exc:
            raise _fail(name, f"failed: {exc.__class__.__name__}: {exc}") from None


def _claims(ctx: FilterContext, name: str, value: Any, ttl: Any) -> bytes:
    seconds = _int(name, ttl) if ttl is not None else 0
    payload = value
    if seconds > 0:
        if not isinstance(value, Mapping):
            raise _fail(name, "can only add an expiry (ttl) to an object of claims")
        now_s = ctx.now_ms() // 1000
        payload = {**value, "iat": value.get("iat", now_s), "exp": now_s + seconds}
    return f_json_encode(payload).encode()


def _verify_claims(ctx: FilterContext, name: str, payload: Any, check: Any, drift: Any) -> None:
    if not isinstance(payload, Mapping):
        return
    slack = _int(name, drift) if drift is not None else 0
    now_s = ctx.now_ms() // 1000
    exp, nbf = payload.get("exp"), payload.get("nbf")
    if isinstance(exp, int | float) and now_s > exp + slack:
        raise _fail(name, "token has expired")
    if isinstance(nbf, int | float) and now_s + slack < nbf:
        raise _fail(name, "token is not valid yet")
    for claim, expected in _object(name, check).items():
        if not loose_equals(payload.get(claim), expected):
            raise _fail(name, f'claim "{claim}" does not match')


def f_jws_encode(
    ctx: FilterContext, value: Any, headers: Any, key: Any, alg: Any = "HS256", ttl: Any = 0
) -> str:
    from joserfc import jws

    algorithm = _text("jws_encode", alg if alg is not None else "HS256")
    if algorithm.lower() == "none":
        raise _fail("jws_encode", 'refuses the "none" algorithm')
    header = {"typ": "JWT", **_object("jws_encode", headers), "alg": algorithm}
    payload = _claims(ctx, "jws_encode", value, ttl)
    k = _jose_key("jws_encode", key, algorithm)
    out: str = _jose(
        "jws_encode", lambda: jws.serialize_compact(header, payload, k, algorithms=[algorithm])
    )
    return out


def f_jws_decode(
    ctx: FilterContext, value: Any, check: Any, key: Any, alg: Any = "HS256", drift: Any = 0
) -> Any:
    from joserfc import jws

    algorithm = _text("jws_decode", alg if alg is not None else "HS256")
    if algorithm.lower() == "none":
        raise _fail("jws_decode", 'refuses the "none" algorithm')
    token = _text("jws_decode", value)
    k = _jose_key("jws_decode", key, algorithm)
    obj = _jose("jws_decode", lambda: jws.deserialize_compact(token, k, algorithms=[algorithm]))
    payload = f_json_decode(obj.payload)
    _verify_claims(ctx, "jws_decode", payload, check, drift)
    return payload


def f_jwe_encode(
    ctx: FilterContext,
    value: Any,
    headers: Any,
    key: Any,
    key_alg: Any = "A256KW",
    content_alg: Any = "A256CBC-HS512",
    ttl: Any = 0,
) -> str:
    from joserfc import jwe

    ka = _text("jwe_encode", key_alg if key_alg is not None else "A256KW")
    ca = _text("jwe_encode", content_alg if content_alg is not None else "A256CBC-HS512")
    header = {**_object("jwe_encode", headers), "alg": ka, "enc": ca}
    payload = _claims(ctx, "jwe_encode", value, ttl)
    k = _jose_key("jwe_encode", key, ka)
    out: str = _jose(
        "jwe_encode", lambda: jwe.encrypt_compact(header, payload, k, algorithms=[ka, ca])
    )
    return out


def f_jwe_decode(
    ctx: FilterContext,
    value: Any,
    check: Any,
    key: Any,
    key_alg: Any = "A256KW",
    content_alg: Any = "A256CBC-HS512",
    drift: Any = 0,
) -> Any:
    from joserfc import jwe

    ka = _text("jwe_decode", key_alg if key_alg is not None else "A256KW")
    ca = _text("jwe_decode", content_alg if content_alg is not None else "A256CBC-HS512")
    token = _text("jwe_decode", value)
    k = _jose_key("jwe_decode", key, ka)
    obj = _jose("jwe_decode", lambda: jwe.decrypt_compact(token, k, algorithms=[ka, ca]))
    payload = f_json_decode(obj.plaintext)
    _verify_claims(ctx, "jwe_decode", payload, check, drift)
    return payload


# secureid: Xano's own format is undocumented, so this is ours: a 4-byte HMAC tag of the
# id, then the id XORed with a keystream derived from the tag (a deterministic, verifiable
# SIV-style construction), base64url. Decoding checks the tag, so typos and ids encoded
# with another salt are errors, not wrong ids.


def _secureid_key(name: str, salt: Any) -> bytes:
    return hashlib.sha256(b"cronstack-secureid\0" + _bytes(name, salt or "")).digest()


def f_secureid_encode(value: Any, salt: Any = "") -> str:
    n = _int("secureid_encode", value)
    if not -(2**63) <= n < 2**63:
        raise _fail("secureid_encode", "id must fit in 64 bits")
    key = _secureid_key("secureid_encode", salt)
    plain = n.to_bytes(8, "big", signed=True)
    tag = hmac.new(key, plain, "sha256").digest()[:4]
    stream = hmac.new(key, b"stream" + tag, "sha256").digest()[:8]
    cipher = bytes(a ^ b for a, b in zip(plain, stream, strict=True))
    return base64.urlsafe_b64encode(tag + cipher).decode("ascii").rstrip("=")


def f_secureid_decode(value: Any, salt: Any = "") -> int:
    text = _text("secureid_decode", value).strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 12:
        raise _fail("secureid_decode", "got text that is not a secure id")
    key = _secureid_key("secureid_decode", salt)
    tag, cipher = raw[:4], raw[4:]
    stream = hmac.new(key, b"stream" + tag, "sha256").digest()[:8]
    plain = bytes(a ^ b for a, b in zip(cipher, stream, strict=True))
    if not hmac.compare_digest(hmac.new(key, plain, "sha256").digest()[:4], tag):
        raise _fail("secureid_decode", "got an id encoded with another salt, or a damaged one")
    return int.from_bytes(plain, "big", signed=True)


def f_uuid(value: Any) -> str:
    return str(uuid.uuid4())


def f_create_uid(value: Any) -> int:
    """A unique positive 63-bit integer: milliseconds since the epoch shifted left 22 bits,
    plus 22 random bits (time-ordered, fits a BIGINT column)."""
    return ((time.time_ns() // 1_000_000) << 22 | secrets.randbits(22)) & (2**63 - 1)


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


# --- registry --------------------------------------------------------------------------------

UNSUPPORTED_FILTERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        name: "runs JavaScript in Xano's lambda runtime, which cronstack does not embed; "
        "use the expression filters (map, filter, find, findIndex, some, every, reduce)"
        for name in (
            "lambda",
            "lambda_map",
            "lambda_filter",
            "lambda_find",
            "lambda_findIndex",
            "lambda_some",
            "lambda_every",
            "lambda_reduce",
        )
    }
)

# (names: canonical first, then aliases), fn, min args, max args (None: any), flags
_Row = tuple[tuple[str, ...], Callable[..., Any], int, "int | None", str]

_ROWS: Final[list[_Row]] = [
    # text
    (("trim",), _trimmer("trim", "both"), 0, 1, ""),
    (("ltrim",), _trimmer("ltrim", "left"), 0, 1, ""),
    (("rtrim",), _trimmer("rtrim", "right"), 0, 1, ""),
    (("to_lower", "lower"), f_to_lower, 0, 0, ""),
    (("to_upper", "upper"), f_to_upper, 0, 0, ""),
    (("capitalize",), f_capitalize, 0, 0, ""),
    (("strlen",), f_strlen, 0, 0, ""),
    (("substr",), f_substr, 1, 2, ""),
    (("split",), f_split, 0, 1, ""),
    (("replace", "string_replace"), f_replace, 2, 2, ""),
    (("concat",), f_concat, 1, 2, ""),
    (("sprintf",), f_sprintf, 0, None, ""),
    (("contains",), _tester("contains", False, "contains"), 1, 1, ""),
    (("icontains",), _tester("icontains", True, "contains"), 1, 1, ""),
    (("starts_with",), _tester("starts_with", False, "start"), 1, 1, ""),
    (("istarts_with",), _tester("istarts_with", True, "start"), 1, 1, ""),
    (("ends_with",), _tester("ends_with", False, "end"), 1, 1, ""),
    (("iends_with",), _tester("iends_with", True, "end"), 1, 1, ""),
    (("index", "strpos"), _finder("index", False), 1, 1, ""),
    (("iindex", "stripos"), _finder("iindex", True), 1, 1, ""),
    (("strip_html", "strip_tags"), f_strip_html, 0, 1, ""),
    (("unaccent", "strip_accents"), f_unaccent, 0, 0, ""),
    (("addslashes",), f_addslashes, 0, 0, ""),
    (("escape",), f_escape, 0, 0, ""),
    (("regex_matches", "regex_test"), f_regex_matches, 1, 1, ""),
    (("regex_get_first_match", "regex_match"), f_regex_get_first_match, 1, 1, ""),
    (("regex_get_all_matches", "regex_match_all"), f_regex_get_all_matches, 1, 1, ""),
    (("regex_replace",), f_regex_replace, 2, 2, ""),
    (("regex_quote",), f_regex_quote, 0, 1, ""),
    (("url_encode",), f_url_encode, 0, 0, ""),
    (("url_decode",), f_url_decode, 0, 0, ""),
    (("url_encode_rfc3986",), f_url_encode_rfc3986, 0, 0, ""),
    (("url_decode_rfc3986",), f_url_decode_rfc3986, 0, 0, ""),
    (("url_addarg",), f_url_addarg, 2, 3, ""),
    (("url_delarg",), f_url_delarg, 1, 1, ""),
    (("url_hasarg",), f_url_hasarg, 1, 1, ""),
    (("url_getarg",), f_url_getarg, 1, 2, ""),
    (("url_parse",), f_url_parse, 0, 0, ""),
    (("querystring_parse",), f_querystring_parse, 0, 0, ""),
    (("list_encodings",), f_list_encodings, 0, 0, ""),
    (("detect_encoding",), f_detect_encoding, 0, 1, ""),
    (("to_utf8",), f_to_utf8, 0, 0, ""),
    (("from_utf8",), f_from_utf8, 0, 0, ""),
    (("convert_encoding",), f_convert_encoding, 1, 2, ""),
    # arrays
    (("first",), f_first, 0, 0, ""),
    (("last",), f_last, 0, 0, ""),
    (("count",), f_count, 0, 0, ""),
    (("get",), f_get, 1, 2, ""),
    (("has",), f_has, 1, 1, ""),
    (("slice", "array_slice"), f_slice, 0, 2, ""),
    (("join",), f_join, 0, 1, ""),
    (("push", "array_push"), f_push, 1, 1, ""),
    (("unshift", "array_unshift"), f_unshift, 1, 1, ""),
    (("pop", "array_pop"), f_pop, 0, 0, ""),
    (("shift", "array_shift"), f_shift, 0, 0, ""),
    (("append",), _adder("append", front=False), 1, 2, ""),
    (("prepend",), _adder("prepend", front=True), 1, 2, ""),
    (("merge", "array_merge"), f_merge, 1, 1, ""),
    (("merge_recursive", "array_merge_recursive"), f_merge_recursive, 1, 1, ""),
    (("diff", "array_diff"), _set_op("diff", False, False), 1, 1, ""),
    (("diff_assoc", "array_diff_assoc"), _set_op("diff_assoc", False, True), 1, 1, ""),
    (("intersect", "array_intersect"), _set_op("intersect", True, False), 1, 1, ""),
    (
        ("intersect_assoc", "array_intersect_assoc"),
        _set_op("intersect_assoc", True, True),
        1,
        1,
        "",
    ),
    (("unique",), f_unique, 0, 1, ""),
    (("reverse",), f_reverse, 0, 0, ""),
    (("shuffle", "array_shuffle"), f_shuffle, 0, 0, "impure"),
    (("flatten",), f_flatten, 0, 0, ""),
    (("safe_array",), f_safe_array, 0, 0, ""),
    (("sort", "fsort"), f_sort, 0, 3, ""),
    (("index_by",), f_index_by, 1, 1, ""),
    (("remove", "array_remove"), f_remove, 1, 3, ""),
    (("range",), f_range, 2, 2, ""),
    (("fill", "array_fill"), f_fill, 2, 2, ""),
    (("fill_keys", "array_fill_keys"), f_fill_keys, 1, 1, ""),
    (("filter_empty",), _filter_empty("filter_empty", is_empty), 0, 1, ""),
    (("filter_null",), _filter_empty("filter_null", lambda v: v is None), 0, 1, ""),
    (("filter_empty_text",), _filter_empty("filter_empty_text", lambda v: v == ""), 0, 1, ""),
    (("filter_empty_array",), _filter_empty("filter_empty_array", lambda v: v == []), 0, 1, ""),
    (("filter_empty_object",), _filter_empty("filter_empty_object", lambda v: v == {}), 0, 1, ""),
    (("in",), f_in, 1, 1, ""),
    (("map",), f_map, 1, 1, "higher"),
    (("filter",), f_filter, 1, 1, "higher"),
    (("find",), f_find, 1, 1, "higher"),
    (("findIndex",), f_find_index, 1, 1, "higher"),
    (("some",), f_some, 1, 1, "higher"),
    (("every",), f_every, 1, 1, "higher"),
    (("reduce",), f_reduce, 1, 2, "higher"),
    (("sum",), f_sum, 0, 0, ""),
    (("avg",), f_avg, 0, 0, ""),
    (("product",), f_product, 0, 0, ""),
    (("array_min",), f_array_min, 0, 0, ""),
    (("array_max",), f_array_max, 0, 0, ""),
    (("min",), f_min, 0, 1, ""),
    (("max",), f_max, 0, 1, ""),
    (("num_min",), f_num_min, 1, 1, ""),
    (("num_max",), f_num_max, 1, 1, ""),
    (("pick",), _picker("pick", True), 1, 1, ""),
    (("unpick",), _picker("unpick", False), 1, 1, ""),
    (("keys", "array_keys"), f_keys, 0, 0, ""),
    (("values", "array_values"), f_values, 0, 0, ""),
    (("entries", "array_entries"), f_entries, 0, 0, ""),
    (("create_object",), f_create_object, 1, 1, ""),
    (("create_object_from_entries",), f_create_object_from_entries, 0, 0, ""),
    # objects
    (("set",), f_set, 2, 2, ""),
    (("set_conditional",), f_set_conditional, 3, 3, ""),
    (("set_ifnotempty",), f_set_ifnotempty, 2, 2, ""),
    (("set_ifnotnull",), f_set_ifnotnull, 2, 2, ""),
    (("unset",), f_unset, 1, 1, ""),
    (("first_notnull",), f_first_notnull, 1, 1, ""),
    (("first_notempty",), f_first_notempty, 1, 1, ""),
    (("transform",), f_transform, 1, 1, "higher"),
    # math
    (("add",), _arith("add", lambda a, b: a + b), 1, 1, ""),
    (("subtract", "sub"), _arith("subtract", lambda a, b: a - b), 1, 1, ""),
    (("multiply", "mul"), _arith("multiply", lambda a, b: a * b), 1, 1, ""),
    (("divide", "div"), f_divide, 1, 1, ""),
    (("modulus", "mod"), f_modulus, 1, 1, ""),
    (("round",), f_round, 0, 1, ""),
    (("floor",), f_floor, 0, 0, ""),
    (("ceil",), f_ceil, 0, 0, ""),
    (("abs",), f_abs, 0, 0, ""),
    (("sqrt",), _float_fn("sqrt", math.sqrt), 0, 0, ""),
    (("exp",), _float_fn("exp", math.exp), 0, 0, ""),
    (("ln",), _float_fn("ln", math.log), 0, 0, ""),
    (("log10",), _float_fn("log10", math.log10), 0, 0, ""),
    (("log",), f_log, 0, 1, ""),
    (("pow",), f_pow, 1, 1, ""),
    (("number_format",), f_number_format, 0, 3, ""),
    (("bitwise_and",), _bitwise("bitwise_and", lambda a, b: a & b), 1, 1, ""),
    (("bitwise_or",), _bitwise("bitwise_or", lambda a, b: a | b), 1, 1, ""),
    (("bitwise_xor",), _bitwise("bitwise_xor", lambda a, b: a ^ b), 1, 1, ""),
    (("bitwise_not",), f_bitwise_not, 0, 0, ""),
    (("sin",), _float_fn("sin", math.sin), 0, 0, ""),
    (("cos",), _float_fn("cos", math.cos), 0, 0, ""),
    (("tan",), _float_fn("tan", math.tan), 0, 0, ""),
    (("asin",), _float_fn("asin", math.asin), 0, 0, ""),
    (("acos",), _float_fn("acos", math.acos), 0, 0, ""),
    (("atan",), _float_fn("atan", math.atan), 0, 0, ""),
    (("asinh",), _float_fn("asinh", math.asinh), 0, 0, ""),
    (("acosh",), _float_fn("acosh", math.acosh), 0, 0, ""),
    (("atanh",), _float_fn("atanh", math.atanh), 0, 0, ""),
    (("deg2rad",), _float_fn("deg2rad", math.radians), 0, 0, ""),
    (("rad2deg",), _float_fn("rad2deg", math.degrees), 0, 0, ""),
    (("equals", "eq"), f_equals, 1, 1, ""),
    (("not_equals", "ne"), f_not_equals, 1, 1, ""),
    (("greater_than", "gt"), _comparer(lambda c: c > 0), 1, 1, ""),
    (("greater_than_or_equal", "gte"), _comparer(lambda c: c >= 0), 1, 1, ""),
    (("less_than", "lt"), _comparer(lambda c: c < 0), 1, 1, ""),
    (("less_than_or_equal", "lte"), _comparer(lambda c: c <= 0), 1, 1, ""),
    (("odd",), f_odd, 0, 0, ""),
    (("even",), f_even, 0, 0, ""),
    (("not",), f_not, 0, 0, ""),
    (("is_null", "null"), lambda v: v is None, 0, 0, ""),
    (("is_empty", "empty"), is_empty, 0, 0, ""),
    (("is_array",), lambda v: type(v) is list or type(v) is tuple, 0, 0, ""),
    (("is_object",), lambda v: isinstance(v, Mapping), 0, 0, ""),
    (("is_int",), lambda v: type(v) is int, 0, 0, ""),
    (("is_decimal",), lambda v: type(v) is float or type(v) is Decimal, 0, 0, ""),
    (("is_bool",), lambda v: type(v) is bool, 0, 0, ""),
    (("is_text",), lambda v: type(v) is str, 0, 0, ""),
    # conversion and encoding
    (("to_int",), f_to_int, 0, 0, ""),
    (("to_decimal",), f_to_decimal, 0, 0, ""),
    (("to_text",), f_to_text, 0, 0, ""),
    (("to_bool",), f_to_bool, 0, 0, ""),
    (("to_expr",), f_to_expr, 0, 0, "ctx impure"),
    (("json_encode",), f_json_encode, 0, 0, ""),
    (("json_decode",), f_json_decode, 0, 0, ""),
    (("yaml_encode",), f_yaml_encode, 0, 0, ""),
    (("yaml_decode",), f_yaml_decode, 0, 0, ""),
    (("xml_decode",), f_xml_decode, 0, 0, ""),
    (("csv_parse",), f_csv_parse, 0, 3, ""),
    (("csv_decode",), f_csv_decode, 0, 3, ""),
    (("csv_encode",), f_csv_encode, 0, 3, ""),
    (("csv_create",), f_csv_create, 1, 4, ""),
    (("base64_encode",), f_base64_encode, 0, 0, ""),
    (("base64_decode",), f_base64_decode, 0, 0, ""),
    (("base64_encode_urlsafe",), f_base64_encode_urlsafe, 0, 0, ""),
    (("base64_decode_urlsafe",), f_base64_decode_urlsafe, 0, 0, ""),
    (("hex2bin",), f_hex2bin, 0, 0, ""),
    (("bin2hex",), f_bin2hex, 0, 0, ""),
    (("dechex",), _radix("dechex", 16, True), 0, 0, ""),
    (("hexdec",), _radix("hexdec", 16, False), 0, 0, ""),
    (("decbin",), _radix("decbin", 2, True), 0, 0, ""),
    (("bindec",), _radix("bindec", 2, False), 0, 0, ""),
    (("decoct",), _radix("decoct", 8, True), 0, 0, ""),
    (("octdec",), _radix("octdec", 8, False), 0, 0, ""),
    (("base_convert",), f_base_convert, 2, 2, ""),
    # security
    (("md5",), _hasher("md5", "md5"), 0, 1, ""),
    (("sha1",), _hasher("sha1", "sha1"), 0, 1, ""),
    (("sha256",), _hasher("sha256", "sha256"), 0, 1, ""),
    (("sha384",), _hasher("sha384", "sha384"), 0, 1, ""),
    (("sha512",), _hasher("sha512", "sha512"), 0, 1, ""),
    (("hmac_md5",), _hmacer("hmac_md5", "md5"), 1, 2, ""),
    (("hmac_sha1",), _hmacer("hmac_sha1", "sha1"), 1, 2, ""),
    (("hmac_sha256",), _hmacer("hmac_sha256", "sha256"), 1, 2, ""),
    (("hmac_sha384",), _hmacer("hmac_sha384", "sha384"), 1, 2, ""),
    (("hmac_sha512",), _hmacer("hmac_sha512", "sha512"), 1, 2, ""),
    (("encrypt",), f_encrypt, 3, 3, ""),
    (("decrypt",), f_decrypt, 3, 3, ""),
    (("jws_encode", "crypto_jws_encode"), f_jws_encode, 2, 4, "ctx impure"),
    (("jws_decode", "crypto_jws_decode"), f_jws_decode, 2, 4, "ctx impure"),
    (("jwe_encode", "crypto_jwe_encode"), f_jwe_encode, 2, 5, "ctx impure"),
    (("jwe_decode", "crypto_jwe_decode"), f_jwe_decode, 2, 5, "ctx impure"),
    (("secureid_encode",), f_secureid_encode, 0, 1, ""),
    (("secureid_decode",), f_secureid_decode, 0, 1, ""),
    (("uuid", "uuid4"), f_uuid, 0, 0, "impure"),
    (("create_uid", "uid"), f_create_uid, 0, 0, "impure"),
    # timestamps
    (("to_timestamp", "to_epochms"), _epoch_unit("to_timestamp", 1), 0, 1, "ctx impure"),
    (("to_ms", "to_epoch_ms"), _epoch_unit("to_ms", 1), 0, 1, "ctx impure"),
    (("to_seconds", "to_epoch_sec"), _epoch_unit("to_seconds", 1000), 0, 1, "ctx impure"),
    (("to_minutes", "to_epoch_minute"), _epoch_unit("to_minutes", 60_000), 0, 1, "ctx impure"),
    (("to_hours", "to_epoch_hour"), _epoch_unit("to_hours", 3_600_000), 0, 1, "ctx impure"),
    (("to_days", "to_epoch_day"), _epoch_unit("to_days", 86_400_000), 0, 1, "ctx impure"),
    (("format_timestamp", "epochms_date"), f_format_timestamp, 1, 2, "ctx impure"),
    (("parse_timestamp", "epochms_from_format"), f_parse_timestamp, 1, 2, "ctx impure"),
    (("transform_timestamp", "epochms_transform"), f_transform_timestamp, 1, 2, "ctx impure"),
    (("add_secs_to_timestamp", "epochms_add_secs"), f_add_secs_to_timestamp, 1, 1, "ctx impure"),
    (("add_ms_to_timestamp", "epochms_add_ms"), f_add_ms_to_timestamp, 1, 1, "ctx impure"),
    (("timestamp_year",), _part("timestamp_year", lambda d: d.year), 0, 1, "ctx impure"),
    (("timestamp_month",), _part("timestamp_month", lambda d: d.month), 0, 1, "ctx impure"),
    (
        ("timestamp_week",),
        _part("timestamp_week", lambda d: d.isocalendar()[1]),
        0,
        1,
        "ctx impure",
    ),
    (("timestamp_hour",), _part("timestamp_hour", lambda d: d.hour), 0, 1, "ctx impure"),
    (("timestamp_minute",), _part("timestamp_minute", lambda d: d.minute), 0, 1, "ctx impure"),
    (
        ("timestamp_day_of_month",),
        _part("timestamp_day_of_month", lambda d: d.day),
        0,
        1,
        "ctx impure",
    ),
    (
        ("timestamp_day_of_week",),
        _part("timestamp_day_of_week", lambda d: d.isoweekday() % 7),
        0,
        1,
        "ctx impure",
    ),
    (
        ("timestamp_day_of_year",),
        _part("timestamp_day_of_year", lambda d: d.timetuple().tm_yday),
        0,
        1,
        "ctx impure",
    ),
    (("timestamp_epoch_sec",), _epoch_unit("timestamp_epoch_sec", 1000), 0, 0, "ctx impure"),
    (
        ("timestamp_epoch_minute",),
        _epoch_unit("timestamp_epoch_minute", 60_000),
        0,
        0,
        "ctx impure",
    ),
    (("timestamp_epoch_hour",), _epoch_unit("timestamp_epoch_hour", 3_600_000), 0, 0, "ctx impure"),
    (("timestamp_epoch_day",), _epoch_unit("timestamp_epoch_day", 86_400_000), 0, 0, "ctx impure"),
    *(
        (
            (f"timestamp_{verb}_{unit}",),
            _shifter(f"timestamp_{verb}_{unit}", unit, sign),
            0,
            2,
            "ctx impure",
        )
        for verb, sign in (("add", 1), ("subtract", -1))
        for unit in ("seconds", "minutes", "hours", "days", "months", "years")
    ),
]


def _build(rows: list[_Row]) -> Mapping[str, FilterDef]:
    table: dict[str, FilterDef] = {}
    for names, fn, lo, hi, flags in rows:
        fd = FilterDef(
            name=names[0],
            fn=fn,
            min_args=lo,
            max_args=hi,
            aliases=names[1:],
            higher_order="higher" in flags,
            needs_ctx="ctx" in flags,
            pure="impure" not in flags,
        )
        for name in names:
            if name in table:  # pragma: no cover - a typo in the table above
                raise RuntimeError(f"filter {name} registered twice")
            table[name] = fd
    return MappingProxyType(table)


FILTERS: Final[Mapping[str, FilterDef]] = _build(_ROWS)
"""Every filter by name and by alias (aliases share the canonical name's FilterDef)."""
