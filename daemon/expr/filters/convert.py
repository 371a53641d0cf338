"""Conversion and encoding filters: to_*, JSON, YAML, XML, CSV, base64, hex and radix."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import math
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final
from xml.etree import ElementTree

import orjson

from daemon.expr.filters.args import (
    _binary,
    _bytes,
    _checked_int,
    _int,
    _list,
    _sized_list,
    _sized_text,
    _text,
    _text_key,
)
from daemon.expr.filters.base import FilterContext
from daemon.expr.filters.compare import (
    _LEADING_NUMBER_RE,
    _expects,
    _fail,
    _is_num,
    _text_number,
    php_truthy,
    xano_type,
)
from daemon.expr.values import MAX_LIST, MAX_STRING, render

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
