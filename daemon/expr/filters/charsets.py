"""Character-set filters: list/detect encodings, to_utf8, from_utf8, convert_encoding."""

from __future__ import annotations

import codecs
from typing import Any, Final

from daemon.expr.filters.args import _binary, _bytes, _text
from daemon.expr.filters.compare import _fail

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
