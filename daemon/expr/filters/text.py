"""Text filters: trimming, case, substrings, sprintf, searching, HTML and escaping."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

import orjson

from daemon.expr.filters.args import _int, _num, _sized_list, _sized_text, _text
from daemon.expr.filters.compare import _fail
from daemon.expr.values import render

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
