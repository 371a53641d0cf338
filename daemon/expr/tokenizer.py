"""Tokenizer for `{{ }}` expressions: the token stream, number and string literals."""

from __future__ import annotations

import math
import re
from typing import Any, Final, TypeAlias

from daemon.core.errors import ExpressionError
from daemon.expr.pipes import ELEMENT_NAMES
from daemon.expr.values import MAX_EXPRESSION, MAX_INT

# --- tokenizer -------------------------------------------------------------------------------

_Tok: TypeAlias = tuple[str, Any, int]  # (kind, value, offset in the text); kinds below
_NUM_TOKEN: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NAME_TOKEN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS2: Final = frozenset({"??", "||", "&&", "==", "!=", "<=", ">="})
_OPS1: Final = frozenset("<>+-*/%!?:()[]{},.|")
_ESCAPES: Final = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "/": "/",
}


def _tokenize(text: str, start: int, in_template: bool) -> tuple[list[_Tok], int]:
    """Tokens from `start` up to the closing "}}" (in a template) or the end of the text.

    Returns the tokens (ending with an "end" token) and the offset just past them. Inside a
    template, "}}" closes the expression only outside object literals, so `{{ {"a": {}} }}`
    works; a "}}" inside a string literal is part of the string.
    """
    tokens: list[_Tok] = []
    n = len(text)
    limit = start + MAX_EXPRESSION
    i = start
    depth = 0
    while True:
        if i > limit:
            raise ExpressionError(
                f"expression longer than {MAX_EXPRESSION} characters", column=start + 1
            )
        if i >= n:
            if in_template:
                raise ExpressionError('unterminated "{{" (missing "}}")', column=start - 1)
            tokens.append(("end", None, i))
            return tokens, i
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if in_template and depth == 0 and ch == "}" and text.startswith("}}", i):
            tokens.append(("end", None, i))
            return tokens, i + 2
        if "0" <= ch <= "9":
            m = _NUM_TOKEN.match(text, i)
            assert m is not None
            tokens.append(("num", _number_literal(m.group(), i), i))
            i = m.end()
        elif ch in "'\"":
            value, end = _string_literal(text, i)
            tokens.append(("str", value, i))
            i = end
        elif ch == "_" or ("a" <= ch <= "z") or ("A" <= ch <= "Z"):
            m = _NAME_TOKEN.match(text, i)
            assert m is not None
            name = m.group()
            if name.startswith("__"):
                raise ExpressionError(
                    f'names starting with "__" are not allowed: {name}', column=i + 1
                )
            tokens.append(("name", name, i))
            i = m.end()
        elif text.startswith(("===", "!=="), i):
            tokens.append(("op", text[i : i + 2], i))  # JavaScript habits: same as == and !=
            i += 3
        elif text[i : i + 2] in _OPS2:
            tokens.append(("op", text[i : i + 2], i))
            i += 2
        elif ch in _OPS1:
            if ch == "{":
                depth += 1
            elif ch == "}" and depth > 0:
                depth -= 1
            tokens.append(("op", ch, i))
            i += 1
        elif ch == "$":
            # `$$` / `$this`, `$index`, `$parent`, `$result`: a filter argument's element names
            if text.startswith("$$", i):
                tokens.append(("elem", "this", i))
                i += 2
                continue
            m = _NAME_TOKEN.match(text, i + 1)
            if m is None or m.group() not in ELEMENT_NAMES:
                raise ExpressionError(
                    'unexpected "$" ($$, $this, $index, $parent and $result name a filter'
                    " argument's element)",
                    column=i + 1,
                )
            tokens.append(("elem", m.group(), i))
            i = m.end()
        elif ch == "=":
            raise ExpressionError('unexpected "=" (use "==" to compare)', column=i + 1)
        else:
            raise ExpressionError(f"unexpected character {ch!r}", column=i + 1)


def _number_literal(digits: str, offset: int) -> int | float:
    if "." in digits or "e" in digits or "E" in digits:
        value = float(digits)
        if not math.isfinite(value):
            raise ExpressionError(f"number out of range: {digits:.40}", column=offset + 1)
        return value
    if len(digits) > 19 or int(digits) > MAX_INT:
        raise ExpressionError(f"number too large: {digits:.40}", column=offset + 1)
    return int(digits)


def _string_literal(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= n:
                break
            esc = text[i + 1]
            if esc == "u":
                hexdigits = text[i + 2 : i + 6]
                if len(hexdigits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in hexdigits):
                    raise ExpressionError(r"bad \u escape (need 4 hex digits)", column=i + 1)
                out.append(chr(int(hexdigits, 16)))
                i += 6
                continue
            if esc not in _ESCAPES:
                raise ExpressionError(f"unknown escape \\{esc}", column=i + 1)
            out.append(_ESCAPES[esc])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ExpressionError("unterminated string", column=start + 1)
