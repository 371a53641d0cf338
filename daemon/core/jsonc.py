"""JSON with comments and trailing commas (the seed's format), possibly several values per file."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import Any, overload

import orjson


class JsoncError(ValueError):
    """A syntax error in a JSONC document, with the 1-based line and column where it was found."""

    def __init__(self, message: str, line: int, column: int) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(f"line {line}, column {column}: {message}")


class LineIndex:
    """1-based (line, column) of character indexes in one text: the newlines are found once, and
    each lookup is a bisection (counting newlines from the top per lookup was quadratic: a file
    of 10,000 tasks spent seconds finding their lines)."""

    def __init__(self, text: str) -> None:
        self.size = len(text)
        starts = [0]
        find = text.find
        at = find("\n")
        while at >= 0:
            starts.append(at + 1)
            at = find("\n", at + 1)
        self.starts = starts

    def position(self, index: int) -> tuple[int, int]:
        index = max(0, min(index, self.size))
        line = bisect.bisect_right(self.starts, index)
        return line, index - self.starts[line - 1] + 1


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of a character index (for one-off lookups, e.g. an error)."""
    return LineIndex(text).position(index)


def strip_jsonc(text: str) -> str:
    """Blank out comments and trailing commas with spaces, keeping every other character in place.

    Same length and same newlines as the input, so positions in the result are positions in the
    source. String contents are never touched (`"https://..."` holds `//`).
    """
    out = list(text)
    n = len(text)
    i = 0
    pending_comma: int | None = None  # a comma that is trailing if `]` or `}` comes next
    while i < n:
        ch = text[i]
        if ch == '"':
            pending_comma = None
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    break  # unterminated string: leave it for the parser to report
                i += 1
            i += 1
            continue
        if ch == "/" and i + 1 < n and text[i + 1] == "/":
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
            continue
        if ch == "/" and i + 1 < n and text[i + 1] == "*":
            end = text.find("*/", i + 2)
            if end < 0:
                line, column = _position(text, i)
                raise JsoncError("unterminated /* comment", line, column)
            for j in range(i, end + 2):
                if out[j] != "\n":
                    out[j] = " "
            i = end + 2
            continue
        if ch in " \t\r\n":
            i += 1
            continue
        if ch in "]}" and pending_comma is not None:
            out[pending_comma] = " "
        pending_comma = i if ch == "," else None
        i += 1
    return "".join(out)


def _split_values(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level value of a comment-free text, by bracket depth.

    Unbalanced input yields a segment the parser then rejects with a position.
    """
    spans: list[tuple[int, int]] = []
    n = len(text)
    i = 0
    while i < n:
        if text[i] in " \t\r\n":
            i += 1
            continue
        start = i
        depth = 0
        while i < n:
            ch = text[i]
            if ch == '"':
                i += 1
                while i < n and text[i] != '"':
                    if text[i] == "\\":
                        i += 1
                    elif text[i] == "\n":
                        break
                    i += 1
                i += 1
                if depth == 0:
                    break
                continue
            if ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
                if depth <= 0:
                    i += 1
                    break
            elif depth == 0 and ch in " \t\r\n":
                break  # end of a top-level scalar
            i += 1
        spans.append((start, min(i, n)))
    return spans


def loads_jsonc(text: str) -> list[Any]:
    """Parse every top-level value of a JSONC text, in order; raise JsoncError with line/column."""
    clean = strip_jsonc(text)
    values: list[Any] = []
    for start, end in _split_values(clean):
        try:
            values.append(orjson.loads(clean[start:end]))
        except orjson.JSONDecodeError as exc:
            line, column = _position(text, start + exc.pos)
            raise JsoncError(exc.msg, line, column) from None
    return values


def _item_starts(clean: str, start: int, end: int) -> list[int]:
    """Character indexes where each element of the array spanning clean[start:end] begins."""
    starts: list[int] = []
    depth = 0
    expecting = False
    i = start
    while i < end:
        ch = clean[i]
        if ch == '"':
            if depth == 1 and expecting:
                starts.append(i)
                expecting = False
            i += 1
            while i < end and clean[i] != '"':
                i += 2 if clean[i] == "\\" else 1
        elif ch in "[{":
            if depth == 1 and expecting:
                starts.append(i)
                expecting = False
            depth += 1
            if depth == 1:
                expecting = True
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 1:
            expecting = True
        elif depth == 1 and expecting and ch not in " \t\r\n":
            starts.append(i)
            expecting = False
        i += 1
    return starts


class ItemLines(Sequence[int]):
    """The start lines of a top-level array's items, found on first use.

    Loading needs them only for messages (a duplicate name, an error inside one task); scanning
    a file of 100,000 tasks character by character for lines nobody reads cost seconds."""

    def __init__(self, text: str, clean: str | None, start: int, end: int, count: int) -> None:
        self._text, self._clean, self._span, self._count = text, clean, (start, end), count
        self._lines: list[int] | None = None

    def _scan(self) -> list[int]:
        if self._lines is None:
            clean = self._clean if self._clean is not None else strip_jsonc(self._text)
            index = LineIndex(self._text)
            self._lines = [index.position(i)[0] for i in _item_starts(clean, *self._span)]
            self._text = self._clean = ""
        return self._lines

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        return iter(self._scan()[: self._count]) if self._count else iter(())

    @overload
    def __getitem__(self, i: int) -> int: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[int]: ...

    def __getitem__(self, i: int | slice) -> int | Sequence[int]:
        return self._scan()[i]


def loads_jsonc_located(text: str) -> list[tuple[Any, int, Sequence[int]]]:
    """Like loads_jsonc, plus each value's 1-based start line and, for an array, its items'
    (computed when first read). Plain JSON — one value, no comments or trailing commas: the
    common shape of a big generated file — is parsed in one orjson call."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass  # comments, trailing commas, several values, or a real error: the careful path
    else:
        start = len(text) - len(text.lstrip(" \t\r\n\ufeff"))
        line = text.count("\n", 0, start) + 1
        count = len(value) if isinstance(value, list) else 0
        return [(value, line, ItemLines(text, None, start, len(text), count))]
    clean = strip_jsonc(text)
    lines = LineIndex(text)
    result: list[tuple[Any, int, Sequence[int]]] = []
    for start, end in _split_values(clean):
        try:
            value = orjson.loads(clean[start:end])
        except orjson.JSONDecodeError as exc:
            line, column = lines.position(start + exc.pos)
            raise JsoncError(exc.msg, line, column) from None
        count = len(value) if isinstance(value, list) else 0
        result.append((value, lines.position(start)[0], ItemLines(text, clean, start, end, count)))
    return result
