"""XanoScript lexer: source text → tokens with 1-based line/column and a newline-before flag.

Newlines are not tokens: each token records `nl`, whether a line break (or a `//` comment line)
came before it, and the parser checks that flag where XanoScript is newline-sensitive. Line and
column are tracked incrementally (one pass, no re-scanning), so lexing is linear in the input.

Decisions (XANOSCRIPT.md §2.1 and §6):
- `//` comments are accepted anywhere outside strings, also after a closing brace or inside an
  attribute block, which the language server rejects: exports matter more than strictness and a
  comment cannot change the meaning of the code around it (§6.20 "lenient on reading").
  `#` is not a comment and is reported as such.
- `"…"`/`'…'` strings close on their line and decode JSON-style escapes (`\\n \\t \\r \\b \\f
  \\/ \\\\ \\" \\' \\uXXXX`); an unknown escape keeps its backslash (`"^\\d+$"` stays a regex).
- `\"\"\"…\"\"\"` / `'''…'''` strings are raw (no escapes) and follow §6.19: the newline right after
  the opening quotes and the last line break before the closing quotes (with the closing quotes'
  indentation) are dropped, and the common leading indentation of the lines is stripped.
- Backtick expressions are lexed in place: the opening and closing backticks become `bt_open` /
  `bt_close` tokens and the content in between is ordinary tokens, so positions inside an
  expression string are real file positions.
- A timestamp-shaped word (`2025-01-01 03:00:00+0000`) is one `ts` token; the parser accepts it
  only in schedule events and validates it there.
- `filters=` written without spaces (as input declarations are exported) takes the rest of the
  word as one raw token: its arguments are validation parameters such as regexes, not
  expressions.
- Numbers are `\\d+` and `\\d+.\\d+`; a minus sign is an operator (the parser folds `-1`). After a
  `.` only an integer is read, so `$a.items.0.1` is two numeric segments, not a decimal.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final, NamedTuple

from daemon.xano.errors import XanoSyntaxError

# Token kinds; punctuation and operators use their own text as kind ("{", "==", "not" is ident).
IDENT: Final = "ident"
VAR: Final = "var"
INT: Final = "int"
DEC: Final = "dec"
STR: Final = "str"
TS: Final = "ts"
RAW: Final = "raw"
BT_OPEN: Final = "bt_open"
BT_CLOSE: Final = "bt_close"
EOF: Final = "eof"

MAX_SOURCE_CHARS: Final = 2_000_000  # a real task file is a few KB; this bounds a hostile one
MAX_NUMBER_DIGITS: Final = 100  # int() of a huge literal is quadratic (and capped by Python)


class Token:
    """One token: `kind`, source `text` (a var's name without `$`), decoded `value` of strings
    and numbers, position (`line`, `column` 1-based; `pos`/`end` offsets) and `nl`."""

    __slots__ = ("column", "end", "kind", "line", "nl", "pos", "text", "value")

    def __init__(
        self,
        kind: str,
        text: str,
        value: object,
        line: int,
        column: int,
        pos: int,
        end: int,
        nl: bool,
    ) -> None:
        self.kind = kind
        self.text = text
        self.value = value
        self.line = line
        self.column = column
        self.pos = pos
        self.end = end
        self.nl = nl

    def __repr__(self) -> str:
        return f"Token({self.kind!r}, {self.text!r}, {self.line}:{self.column})"


class Comment(NamedTuple):
    """A `//` comment: where it starts and its text after the slashes."""

    line: int
    column: int
    text: str


# Blanks (line breaks included) are the prefix of every match, so a line break costs no loop
# turn of its own. Alternatives in order of frequency, except where order decides: a comment
# before "/", a timestamp before a number, triple quotes before a string.
_SCAN = re.compile(
    r"""(?P<blank>[ \t\f\v\n]*)(?:
      (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<var>\$(?:\$|[A-Za-z_][A-Za-z0-9_]*|[0-9]+))
    | (?P<comment>//[^\n]*)
    | (?P<op>===|!==|==|!=|<=|>=|&&|\|\||\?\?|\.\.\.|\.\.|@>|!~|[{}\[\](),:.|=!?~+\-*/%<>])
    | (?P<mstr>\"\"\"|''')
    | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    | (?P<ts>[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}
        (?:[ T][0-9]{1,2}:[0-9]{1,2}(?::[0-9]{1,2})?(?:\.[0-9]+)?(?:[ ]?(?:[+-][0-9:]+|Z))?)?)
    | (?P<num>[0-9]+(?:\.[0-9]+)?)
    | (?P<bt>```|`)
    | (?P<end>\Z)
    )""",
    re.VERBOSE,
)
_RAW_WORD = re.compile(r"[^ \t\f\v\n]*")
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)")
_ESCAPES: Final = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "/": "/",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) == 5:
        return chr(int(code[1:], 16))
    return _ESCAPES.get(code, match.group(0))


def dedent_triple(body: str) -> str:
    """The value of a triple-quoted string from the text between its quotes (§6.19)."""
    if body.startswith("\n"):
        body = body[1:]
    lines = body.split("\n")
    if len(lines) > 1 and not lines[-1].strip(" \t"):
        lines.pop()
    indents = [line[: len(line) - len(line.lstrip(" \t"))] for line in lines if line.strip()]
    width = 0
    if indents:  # common prefix of all = common prefix of the smallest and the largest
        low, high = min(indents), max(indents)
        width = next(
            (i for i, (a, b) in enumerate(zip(low, high, strict=False)) if a != b), len(low)
        )
    return "\n".join(line[width:] for line in lines)


def normalize(text: str) -> str:
    """Drop a BOM and turn CRLF / CR line ends into LF (columns then count characters)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _error(file: str, message: str, line: int, column: int) -> XanoSyntaxError:
    return XanoSyntaxError(message, file=file, line=line, column=column)


def _bad_character(file: str, char: str, line: int, column: int) -> XanoSyntaxError:
    if char == "#":
        return _error(file, '"#" does not start a comment in XanoScript: use //', line, column)
    if char in "\"'":
        message = (
            f"unterminated string: a {char}…{char} string must end on the line it starts "
            f"(use {char * 3}…{char * 3} for text over several lines)"
        )
        return _error(file, message, line, column)
    name = f"U+{ord(char):04X}"
    shown = f"{char!r} ({name})" if char.isprintable() else name
    return _error(file, f"invalid character {shown} outside a string", line, column)


def tokenize(text: str, file: str) -> tuple[list[Token], list[Comment]]:
    """Tokens of a normalized source (see `normalize`), ending with an `eof` token."""
    if len(text) > MAX_SOURCE_CHARS:
        message = f"file too large: {len(text):,} characters (the limit is {MAX_SOURCE_CHARS:,})"
        raise _error(file, message, 1, 1)
    tokens: list[Token] = []
    comments: list[Comment] = []
    append = tokens.append
    scan = _SCAN.match
    pos = 0
    line = 1
    line_start = 0
    nl = True
    # open backtick expressions: (opening text, line, column)
    backticks: list[tuple[str, int, int]] = []
    while True:
        m = scan(text, pos)
        if m is None:
            start = len(text) - len(text[pos:].lstrip(" \t\f\v\n"))  # skip the blanks before it
            if text.find("\n", pos, start) >= 0:
                line += text.count("\n", pos, start)
                line_start = text.rindex("\n", pos, start) + 1
            raise _bad_character(file, text[start], line, start - line_start + 1)
        start = m.end(1)
        if text.find("\n", pos, start) >= 0:
            line += text.count("\n", pos, start)
            line_start = text.rindex("\n", pos, start) + 1
            nl = True
        kind = m.lastgroup
        end = m.end()
        word = text[start:end]
        column = start - line_start + 1
        if kind == "ident":
            if word == "filters" and text.startswith("=", end):
                raw = _RAW_WORD.match(text, end + 1)
                if raw is not None and raw.end() > end + 1:
                    spec = raw.group()
                    append(Token(RAW, spec, spec, line, column + 8, end + 1, raw.end(), nl))
                    nl = False
                    pos = raw.end()
                    continue
            append(Token(IDENT, word, None, line, column, start, end, nl))
        elif kind == "op":
            append(Token(word, word, None, line, column, start, end, nl))
        elif kind == "var":
            append(Token(VAR, word[1:], None, line, column, start, end, nl))
        elif kind == "str":
            body = word[1:-1]
            value = _ESCAPE.sub(_unescape, body) if "\\" in body else body
            append(Token(STR, word, value, line, column, start, end, nl))
        elif kind == "num":
            digits = word
            if "." in digits and tokens and tokens[-1].kind == "." and tokens[-1].end == start:
                digits = digits[: digits.index(".")]
                end = start + len(digits)
            if len(digits) > MAX_NUMBER_DIGITS:
                message = f"number too long ({len(digits)} digits; at most {MAX_NUMBER_DIGITS})"
                raise _error(file, message, line, column)
            if "." in digits:
                append(Token(DEC, digits, Decimal(digits), line, column, start, end, nl))
            else:
                append(Token(INT, digits, int(digits), line, column, start, end, nl))
        elif kind == "comment":
            comments.append(Comment(line, column, word[2:]))
            pos = end
            continue
        elif kind == "mstr":
            quotes = word
            close = text.find(quotes, end)
            if close < 0:
                message = f"unterminated {quotes}…{quotes} string: no closing {quotes}"
                raise _error(file, message, line, column)
            value = dedent_triple(text[end:close])
            append(Token(STR, text[start : close + 3], value, line, column, start, close + 3, nl))
            end = close + 3
            breaks = text.count("\n", start, end)
            if breaks:
                line += breaks
                line_start = text.rindex("\n", start, end) + 1
        elif kind == "bt":
            ticks = word
            if backticks and backticks[-1][0] == ticks:
                backticks.pop()
                append(Token(BT_CLOSE, ticks, None, line, column, start, end, nl))
            else:
                backticks.append((ticks, line, column))
                append(Token(BT_OPEN, ticks, None, line, column, start, end, nl))
        elif kind == "ts":
            append(Token(TS, word, word, line, column, start, end, nl))
        else:  # end of input
            if backticks:
                ticks, open_line, open_column = backticks[-1]
                message = f"unterminated expression: no closing {ticks} for this {ticks}"
                raise _error(file, message, open_line, open_column)
            append(Token(EOF, "", None, line, column, end, end, nl))
            return tokens, comments
        nl = False
        pos = end
