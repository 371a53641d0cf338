"""JSON with comments and trailing commas (the seed's format), possibly several values per file."""

from __future__ import annotations

import bisect
import re
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


# How deep a task file may nest objects and lists: orjson's own bound (it refuses to write
# 255 levels), so the check is one C-speed dumps. Real files stay far below it (a step in a
# Loop in a Try-Catch is six levels); deeper, the recursive passes over a task (validation,
# compiling, running nested steps) would near Python's recursion limit.
MAX_NESTING = 254
_DEPTH = {"[": 1, "{": 1, "]": -1, "}": -1}


def _too_deep(value: Any, text: str, start: int, end: int) -> None:
    """Raise JsoncError where `value` (parsed from comment-free `text[start:end]`) nests deeper
    than MAX_NESTING, at the bracket that goes too deep."""
    try:
        orjson.dumps(value)
        return
    except orjson.JSONEncodeError:
        pass  # too deep: find where (rare, so a plain scan)
    depth = 0
    for match in re.finditer(r'"(?:[^"\\\n]|\\.)*"|[\[\]{}]', text[start:end]):
        depth += _DEPTH.get(match.group(), 0)
        if depth > MAX_NESTING:
            line, column = _position(text, start + match.start())
            raise JsoncError(f"nested deeper than {MAX_NESTING} levels", line, column)
    raise JsoncError(f"nested deeper than {MAX_NESTING} levels", *_position(text, start))


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
        _too_deep(value, text, start, len(text))  # plain JSON: no comment hides a bracket
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
        _too_deep(value, clean, start, end)
        count = len(value) if isinstance(value, list) else 0
        result.append((value, lines.position(start)[0], ItemLines(text, clean, start, end, count)))
    return result


def _join(path: str, key: str | int) -> str:
    # The same spelling as daemon.core.errors.join_path (Issue paths): `a.b[2].c`.
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class JsonPositions:
    """Where things are written in a JSONC text, for placing issues that name a path.

    For each top-level value (that parses): each path inside it (spelled like Issue paths,
    `function_stack[2].table`, relative to the value) at its key (object members) or where it
    starts (list items), and where each string value's opening quote is. Iterative (any depth),
    one pass; built only when there are issues to place.
    """

    def __init__(self, text: str) -> None:
        self.clean = strip_jsonc(text)
        self._lines = LineIndex(text)
        self.values = [_value_positions(self.clean, a, b) for a, b in _split_values(self.clean)]

    def where(self, index: int) -> tuple[int, int]:
        """1-based (line, column) of a character index."""
        return self._lines.position(index)

    def key(self, value: int, path: str) -> tuple[int, int] | None:
        """Where `path` of top-level value `value` is written, or None."""
        found = self.values[value][0].get(path) if value < len(self.values) else None
        return None if found is None else self.where(found)

    def in_string(self, value: int, path: str, column: int) -> tuple[int, int] | None:
        """Where character `column` (1-based) of the string at `path` is written: escapes
        (`\\n`, `\\u00e9`, surrogate pairs) counted as the one character they decode to."""
        quote = self.values[value][1].get(path) if value < len(self.values) else None
        if quote is None:
            return None
        clean, i = self.clean, quote + 1
        for _ in range(column - 1):
            if clean[i] == '"':
                return None  # past the end of the string
            if clean[i] != "\\":
                i += 1
            elif clean[i + 1] != "u":
                i += 2
            elif (
                0xD800 <= int(clean[i + 2 : i + 6] or "0", 16) < 0xDC00
                and clean[i + 6 : i + 8] == "\\u"
            ):
                i += 12  # a surrogate pair: one character
            else:
                i += 6
        return self.where(i)


def key_positions(text: str) -> list[dict[str, tuple[int, int]]]:
    """Per top-level value: path -> (line, column) of its key or start (see JsonPositions)."""
    positions = JsonPositions(text)
    return [{p: positions.where(i) for p, i in keys.items()} for keys, _ in positions.values]


def _value_positions(clean: str, start: int, end: int) -> tuple[dict[str, int], dict[str, int]]:
    keys: dict[str, int] = {}
    strings: dict[str, int] = {}
    # Open containers: [is_object, path, next item index (lists)].
    stack: list[list[Any]] = []
    pending = ""  # the path of the value that starts next
    expect_key = False
    i = start
    while i < end:
        ch = clean[i]
        if ch in " \t\r\n:":
            i += 1
            continue
        if ch == ",":
            if stack and stack[-1][0]:
                expect_key = True
            elif stack:
                stack[-1][2] += 1
                pending = _join(stack[-1][1], stack[-1][2])
            i += 1
            continue
        if ch in "]}":
            if stack:
                stack.pop()
            expect_key = False
            i += 1
            continue
        if ch == '"':
            j = _string_end(clean, i, end)
            if expect_key and stack:
                try:
                    key = orjson.loads(clean[i:j])
                except orjson.JSONDecodeError:
                    key = clean[i + 1 : j - 1]
                pending = _join(stack[-1][1], str(key))
                keys.setdefault(pending, i)
                expect_key = False
            else:
                _mark_item(keys, stack, pending, i)
                strings.setdefault(pending, i)
            i = j
            continue
        _mark_item(keys, stack, pending, i)
        if ch == "{":
            stack.append([True, pending, 0])
            expect_key = True
            i += 1
        elif ch == "[":
            stack.append([False, pending, 0])
            pending = _join(pending, 0)
            i += 1
        else:  # a number, true, false, null
            while i < end and clean[i] not in " \t\r\n,]}":
                i += 1
    return keys, strings


def _mark_item(keys: dict[str, int], stack: list[list[Any]], path: str, index: int) -> None:
    # A list item is located where it starts (an object member is located at its key).
    if stack and not stack[-1][0]:
        keys.setdefault(path, index)


def _string_end(clean: str, i: int, end: int) -> int:
    """Index just past the string token starting at clean[i] (a quote)."""
    i += 1
    while i < end and clean[i] != '"':
        i += 2 if clean[i] == "\\" else 1
    return min(i + 1, end)
