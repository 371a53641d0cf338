"""Math filters: arithmetic, rounding, number_format, bitwise, comparisons and predicates."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any, Final

from daemon.expr.filters.args import _checked_int, _int, _num, _pair, _text
from daemon.expr.filters.compare import _fail, loose_equals, php_compare, php_truthy
from daemon.expr.values import render

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
