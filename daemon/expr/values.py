"""Values in the expression language: limits, truthiness, copying, rendering, property access."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, TypeAlias

import orjson

from daemon.core.errors import ExpressionError
from daemon.core.text import type_name


class _Missing:
    """Marks "no such variable" in `ctx.vars.get(name, MISSING)` (None is a real value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()

# --- limits ----------------------------------------------------------------------------------
# Expressions come from task files; these bounds keep a typo or a hostile file from exhausting
# memory, the stack or the CPU. Every size is checked before the big value is allocated.
MAX_STRING: Final = 1_000_000
MAX_LIST: Final = 1_000_000
MAX_INT: Final = 2**63
MAX_DEPTH: Final = 64  # parser nesting and depth of the compiled closure tree
MAX_EXPRESSION: Final = 10_000  # characters between one "{{" and its "}}"
MAX_TEMPLATE: Final = MAX_STRING

# The compiled closures receive the run context; constant folding calls them with None.
Fn: TypeAlias = Callable[[Any], Any]


def is_number(value: Any) -> bool:
    t = type(value)
    return t is int or t is float or (t is not bool and isinstance(value, int | float | Decimal))


def truthy(value: Any) -> bool:
    """The one truthiness rule, for `&&`, `||`, `!`, `?:` and Conditional/While conditions:
    null, false, 0, NaN, "", [] and {} are false; everything else is true (JS's rule, plus
    empty lists and objects, which task authors test as "nothing found")."""
    if type(value) is float:
        return value == value and value != 0.0  # NaN is the only value unequal to itself
    return bool(value)


def copy_value(value: Any) -> Any:
    if type(value) is dict:
        return {k: copy_value(v) for k, v in value.items()}
    if type(value) is list:
        return [copy_value(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


def to_json(value: Any, column: int | None = None) -> str:
    try:
        out = orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError subclasses TypeError
        raise ExpressionError(f"cannot serialize value to JSON: {exc}", column=column) from None
    if len(out) > MAX_STRING:
        raise ExpressionError(f"string longer than {MAX_STRING} characters", column=column)
    return out.decode()


def render(value: Any, column: int | None = None) -> str:
    """How a value reads inside text: null is empty, booleans lowercase, containers as JSON."""
    t = type(value)
    if t is str:
        return value
    if value is None:
        return ""
    if t is bool:
        return "true" if value else "false"
    if t is int:
        if -MAX_INT <= value <= MAX_INT:
            return str(value)
        return _render_big_int(value, column)
    if t is float:
        # 3.0 reads "3", as in JSON-minded languages; huge floats keep their exponent form.
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if t is list or t is dict or t is tuple or isinstance(value, Mapping):
        return to_json(value, column)
    if isinstance(value, datetime | date):
        return value.isoformat()
    try:
        return str(value)
    except ValueError as exc:  # int subclasses beyond the digit limit, broken __str__
        raise ExpressionError(f"cannot render value: {exc}", column=column) from None


def _render_big_int(value: int, column: int | None) -> str:
    try:
        return str(value)
    except ValueError:  # Python refuses to print ints over 4300 digits
        raise ExpressionError("number too large to render", column=column) from None


def check_int(value: int, column: int) -> int:
    if -MAX_INT <= value <= MAX_INT:
        return value
    raise ExpressionError("number too large (limit is 2**63)", column=column)


def sized_str(length: int, column: int) -> None:
    if length > MAX_STRING:
        raise ExpressionError(f"string longer than {MAX_STRING} characters", column=column)


def sized_list(length: int, column: int) -> None:
    if length > MAX_LIST:
        raise ExpressionError(f"list longer than {MAX_LIST} items", column=column)


# --- property and index access ---------------------------------------------------------------


def get_prop(value: Any, name: str, column: int) -> Any:
    """`value.name`: dict key, list pseudo-property or pluck, string length; null stays null."""
    t = type(value)
    if t is dict or (t is not list and isinstance(value, Mapping)):
        found = value.get(name, MISSING)
        if found is MISSING:
            # A record with its own "length" field keeps it; otherwise it is the key count.
            return len(value) if name == "length" else None
        return found
    if value is None:
        return None
    if t is list or t is tuple:
        if name == "length":
            return len(value)
        if name == "first":
            return value[0] if value else None
        if name == "last":
            return value[-1] if value else None
        # Pluck. Dict items take the short path (`length` never gets here: lists answer it).
        return [
            item.get(name) if type(item) is dict else get_prop(item, name, column) for item in value
        ]
    if t is str and name == "length":
        return len(value)
    raise ExpressionError(f'cannot read property "{name}" of {type_name(value)}', column=column)


def get_index(value: Any, key: Any, column: int) -> Any:
    """`value[key]`: list/string index (negative from the end), dict key; misses are null."""
    if value is None:
        return None
    t = type(value)
    if t is list or t is tuple or t is str:
        if type(key) is float and key.is_integer():
            key = int(key)
        if type(key) is int:
            try:
                return value[key]
            except IndexError:
                return None
        if type(key) is str and t is not str:
            return get_prop(value, key, column)
        raise ExpressionError(
            f"{type_name(value)} index must be an integer, got {type_name(key)}", column=column
        )
    if isinstance(value, Mapping):
        try:
            found = value.get(key, MISSING)
        except TypeError:
            raise ExpressionError(
                f"cannot use a {type_name(key)} as a key", column=column
            ) from None
        if found is MISSING and type(key) is int:
            found = value.get(str(key), MISSING)  # JSON objects only have string keys
        return None if found is MISSING else found
    raise ExpressionError(f"cannot index {type_name(value)}", column=column)
