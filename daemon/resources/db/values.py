"""Values between JSON-shaped task data and database columns: coercion in, decoding out."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import repeat
from typing import Any

import orjson

from daemon.core.millis import Millis
from daemon.resources.db.base import ColumnInfo, Converter, Dialect

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


# --- value conversion -----------------------------------------------------------------------------
# Time values travel as ms since the epoch (docs/contract.md "Time values"); ISO strings are
# accepted too. A time read from a column is a `Millis`: the ms, plus the exact datetime, which
# the coercions below bind instead, so copying a row keeps its microseconds.


def _parse_datetime(value: Any) -> datetime:
    """ms (int/float/digit string), ISO-8601 text, date or datetime -> aware UTC datetime."""
    if type(value) is Millis:
        return value.aware()
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise TypeError("expected a timestamp, got a boolean")
    if isinstance(value, int | float):
        return EPOCH + timedelta(0, 0, 0, value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return EPOCH + timedelta(milliseconds=float(text))
        if text.lower() == "now":  # Xano exports write `created_at: "now"`: the time of writing
            return datetime.now(UTC)
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise TypeError(f"expected a timestamp, got {type(value).__name__}")


def _to_timestamptz(value: Any) -> Any:
    t = type(value)
    if t is int:  # the common case (ms from a template) first
        return EPOCH + timedelta(0, 0, 0, value)  # positional: ~2x faster than milliseconds=
    if t is Millis:  # read from a column: its exact value, not the ms
        return value.aware()
    return None if value is None else _parse_datetime(value)


def _to_timestamp(value: Any) -> Any:
    if value is None:
        return None
    if type(value) is Millis:
        return value.naive_utc()
    return _parse_datetime(value).astimezone(UTC).replace(tzinfo=None)


def _to_date(value: Any) -> Any:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, str) and len(value.strip()) == 10:
        return date.fromisoformat(value.strip())
    return _parse_datetime(value).astimezone(UTC).date()


def _to_int(value: Any) -> Any:
    if value is None or type(value) is int:
        return value
    if isinstance(value, int):  # bool, or a Millis going into an integer column
        return int(value)
    if isinstance(value, float | Decimal):
        if value != int(value):
            raise ValueError(f"{value!r} is not an integer")
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _to_float(value: Any) -> Any:
    if value is None or type(value) is float:
        return value
    if isinstance(value, int | float | Decimal | str) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _to_decimal(value: Any) -> Any:
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, float | str):
        return Decimal(str(value).strip())
    raise TypeError(f"expected a number, got {type(value).__name__}")


_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


def _to_bool(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise ValueError(f"expected a boolean, got {value!r}")


def _to_uuid(value: Any) -> Any:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


def _to_text(value: Any) -> Any:
    if value is None or type(value) is str:
        return value
    if isinstance(value, dict | list | bool):
        return orjson.dumps(value).decode()
    if isinstance(value, int | float | Decimal | uuid.UUID):
        return str(value)
    return value


def _to_bytes(value: Any) -> Any:
    if isinstance(value, str):
        return bytes.fromhex(value)
    return value


def _identity(value: Any) -> Any:
    return value


def _decode_datetime(value: Any) -> Any:
    return Millis(value) if isinstance(value, datetime) else value


def _decode_date(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _decode_decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            return float(value)
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _decode_str(value: Any) -> Any:
    return None if value is None else str(value)


def _decode_bytes(value: Any) -> Any:
    # Bytes become lowercase hex text: JSON has no bytes, and hex round-trips through `coerce`.
    return value.hex() if isinstance(value, bytes | bytearray | memoryview) else value


def decode_value(value: Any) -> Any:
    """Make any driver value JSON-shaped (used where no column type is known, e.g. raw SQL)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        return Millis(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _decode_decimal(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, timedelta):
        return value // _MS
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [decode_value(v) for v in value]
    if isinstance(value, dict):
        return {k: decode_value(v) for k, v in value.items()}
    return str(value)


def decode_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decode every value of raw rows in place, by value type."""
    for row in rows:
        for key, value in row.items():
            if value is not None and type(value) not in (str, int, float, bool):
                row[key] = decode_value(value)
    return rows


def _pg_converters(typname: str) -> tuple[Converter, Converter | None]:
    """(coerce, decode) for a PostgreSQL type name (pg_type.typname)."""
    if typname == "timestamptz":
        return _to_timestamptz, _decode_datetime
    if typname == "timestamp":
        return _to_timestamp, _decode_datetime
    if typname == "date":
        return _to_date, _decode_date
    if typname in ("int2", "int4", "int8", "oid"):
        return _to_int, None
    if typname in ("float4", "float8"):
        return _to_float, None
    if typname in ("numeric", "money"):
        return _to_decimal, _decode_decimal
    if typname == "bool":
        return _to_bool, None
    if typname in ("json", "jsonb"):
        return _identity, None  # the pool's type codec turns dicts/lists into JSON and back
    if typname == "uuid":
        return _to_uuid, _decode_str
    if typname in ("text", "varchar", "bpchar", "name", "citext"):
        return _to_text, None
    if typname == "bytea":
        return _to_bytes, _decode_bytes
    return _identity, decode_value


def _sqlite_ts_text(value: Any) -> Any:
    """UTC ISO text: milliseconds (`…:54.134Z`), or microseconds when the value has them."""
    if value is None:
        return None
    if type(value) is Millis and value.text is not None:
        return value.text  # read from a SQLite timestamp column: written back as it was
    dt = _parse_datetime(value).astimezone(UTC)
    micro = dt.microsecond
    fraction = f"{micro // 1000:03d}" if micro % 1000 == 0 else f"{micro:06d}"
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + fraction + "Z"


def _sqlite_decode_ts(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return Millis(_parse_datetime(value), value)
        except (ValueError, OverflowError):
            return value
    return value


def _sqlite_date_text(value: Any) -> Any:
    return None if value is None else _to_date(value).isoformat()


def _sqlite_bool(value: Any) -> Any:
    b = _to_bool(value)
    return None if b is None else int(b)


def _sqlite_decode_bool(value: Any) -> Any:
    return bool(value) if isinstance(value, int) else value


def _sqlite_json(value: Any) -> Any:
    if isinstance(value, dict | list | bool | int | float):
        return orjson.dumps(value).decode()
    return value


def decode_json_text(value: Any) -> Any:
    """JSON stored as text (SQLite columns, run-history error/trace) back to a value; text that
    is not JSON, and values a driver already decoded, pass through unchanged."""
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _sqlite_plain(value: Any) -> Any:
    # SQLite has no native JSON/boolean/time types: store them the way the typed columns do.
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if isinstance(value, datetime):
        return _sqlite_ts_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return value


def _sqlite_int(value: Any) -> Any:
    return (
        _to_int(value) if isinstance(value, str | float | Decimal | bool) else _sqlite_plain(value)
    )


def _sqlite_real(value: Any) -> Any:
    return _to_float(value) if isinstance(value, str | Decimal) else _sqlite_plain(value)


def _sqlite_numeric(value: Any) -> Any:
    if isinstance(value, str | Decimal):
        num = _to_decimal(value)
        return int(num) if num == num.to_integral_value() else float(num)
    return _sqlite_plain(value)


def _sqlite_converters(decl: str) -> tuple[Converter, Converter | None]:
    """(coerce, decode) for a SQLite declared type (lowercased)."""
    if "timestamp" in decl or "datetime" in decl:
        return _sqlite_ts_text, _sqlite_decode_ts
    if decl == "date":
        return _sqlite_date_text, None
    if "bool" in decl:
        return _sqlite_bool, _sqlite_decode_bool
    if "json" in decl:
        return _sqlite_json, decode_json_text
    if "int" in decl:
        return _sqlite_int, None
    if any(t in decl for t in ("real", "floa", "doub")):
        return _sqlite_real, None
    if "numeric" in decl or "decimal" in decl:
        return _sqlite_numeric, None
    return _sqlite_plain, _decode_bytes


def sqlite_param(value: Any) -> Any:
    """A value bound without a known column (raw SQL, json_each lists) in SQLite's terms."""
    if isinstance(value, bool):
        return int(value)
    return _sqlite_plain(value)


_NONE = type(None)
_NATIVE: dict[Converter, frozenset[type]] = {
    _to_timestamptz: frozenset({_NONE}),  # naive datetimes still need their UTC zone
    _to_int: frozenset({int, _NONE}),
    _to_float: frozenset({float, _NONE}),
    _to_decimal: frozenset({Decimal, _NONE}),
    _to_bool: frozenset({bool, _NONE}),
    _to_uuid: frozenset({uuid.UUID, _NONE}),
    _to_text: frozenset({str, _NONE}),
    _to_bytes: frozenset({bytes, _NONE}),
    _sqlite_int: frozenset({int, _NONE}),
    _sqlite_real: frozenset({float, int, _NONE}),
    _sqlite_plain: frozenset({str, int, float, bytes, _NONE}),
}


def column_info(dialect: Dialect, name: str, type_name: str, nullable: bool = True) -> ColumnInfo:
    """A column with the converters introspection would choose for this type (also for tests)."""
    norm = type_name.strip().lower()
    pick = _pg_converters if dialect == "postgresql" else _sqlite_converters
    coerce, decode = pick(norm)
    return ColumnInfo(name, norm, nullable, coerce, decode, _NATIVE.get(coerce, frozenset()))


def coerce_column(column: ColumnInfo, values: Sequence[Any]) -> Iterable[Any]:
    """Coerce many values of one column (bulk inserts), at C speed where the types allow.

    Raises ValueError/TypeError like `column.coerce`.
    """
    types = set(map(type, values))
    if types <= column.native:
        return values
    if types == {int} and column.coerce in (_to_timestamptz, _to_timestamp):
        # ms -> datetime without a Python-level call per value: timedelta(0, 0, 0, ms).
        base = EPOCH if column.coerce is _to_timestamptz else _EPOCH_NAIVE
        zero = repeat(0)
        return list(map(base.__add__, map(timedelta, zero, zero, zero, values)))
    return list(map(column.coerce, values))
