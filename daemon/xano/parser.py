"""XanoScript parser: a `.xs` document's tokens → TaskDoc / FunctionDoc / OtherDoc with positions.

The entry points live here: `parse_document` (one file) and `parse_expression` (one expression,
for tests and tools), with the skimmer for constructs the daemon does not run. The parser itself
is a chain of layers, one module each, every one documenting the rules a reader of it needs
(XANOSCRIPT.md section numbers in brackets): `cursor` (tokens, error positions, `MAX_DEPTH`) →
`exprparse` (expressions) → `stmtparse` (statements) → `docparse` (task and function settings).
Recursive descent for documents and statements; binary operators by an operator stack (so long
operator chains cost no recursion).

- One construct per file (§1.1). Documents other than `task` and `function` are read only up to
  their name; their body is skipped without being tokenized, so it cannot fail the load.
"""

from __future__ import annotations

import re

from daemon.core.errors import Issue
from daemon.xano.cursor import MAX_DEPTH, _describe
from daemon.xano.docparse import _Parser
from daemon.xano.errors import XanoSyntaxError
from daemon.xano.lexer import EOF, normalize, tokenize
from daemon.xano.nodes import Document, Expr, OtherDoc

__all__ = ["MAX_DEPTH", "parse_document", "parse_expression"]

_LEAD = re.compile(r"(?:[ \t\f\v\n]+|//[^\n]*)*")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# a name: a word, a path whose segments may be {params} (query users/{id}), or "quoted"
_OTHER_NAME = re.compile(
    r'[ \t\f\v]*(?:([A-Za-z_](?:[A-Za-z0-9_/.\-]|\{[A-Za-z0-9_]*\})*)|"((?:[^"\\\n]|\\.)*)")'
)
_SKIP = re.compile(
    r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\''
    r"|```[\s\S]*?```|`(?:[^`\\]|\\.)*`|//[^\n]*|[{}]|\n[A-Za-z_][A-Za-z0-9_]*"
)


def _position(text: str, pos: int) -> tuple[int, int]:
    """Line and column of an offset; only for one-off use (errors before tokenizing)."""
    line_start = text.rfind("\n", 0, pos) + 1
    return text.count("\n", 0, pos) + 1, pos - line_start + 1


def _parse_other(
    text: str, file: str, kind: str, after_kind: int, line: int, column: int
) -> OtherDoc:
    """Keyword and name of a construct the daemon does not run; the body is skipped unread.

    Braces are counted outside strings and comments; names may hold braces themselves
    (`query users/{id} verb=GET {`), so the body is not "the first balanced block" but
    everything up to a word at the start of a line after all braces closed, which is where a
    second construct would start.
    """
    m = _OTHER_NAME.match(text, after_kind)
    name = ""
    if m is not None:
        name = m.group(1) if m.group(1) is not None else m.group(2)
    depth = 0
    closed = False
    for token in _SKIP.finditer(text, after_kind):
        piece = token.group()
        if piece == "{":
            depth += 1
        elif piece == "}":
            depth = max(depth - 1, 0)
            closed = closed or depth == 0
        elif piece.startswith("\n") and depth == 0 and closed:
            at_line, at_column = _position(text, token.start() + 1)
            raise XanoSyntaxError(
                f'a .xs file holds one construct; a second one ("{piece[1:]}") starts here',
                file=file,
                line=at_line,
                column=at_column,
            )
    warnings: tuple[Issue, ...] = ()
    if depth:
        message = f"the braces of this {kind} do not balance; skipped to the end of the file"
        warnings = (Issue(file, kind, message, line, column, severity="warning"),)
    return OtherDoc(kind=kind, name=name, warnings=warnings, line=line, column=column)


def parse_document(text: str, file: str) -> Document:
    """Parse one `.xs` document; raises XanoSyntaxError with the position of the problem."""
    text = normalize(text)
    lead = _LEAD.match(text)
    start = lead.end() if lead is not None else 0
    word = _WORD.match(text, start)
    line, column = _position(text, start)
    if word is None:
        if start >= len(text):
            raise XanoSyntaxError(
                "the file holds no XanoScript construct (expected task, function, …)",
                file=file,
                line=line,
                column=column,
            )
        raise XanoSyntaxError(
            "expected a construct keyword (task, function, table…) at the start of the file",
            file=file,
            line=line,
            column=column,
        )
    kind = word.group()
    if kind not in ("task", "function"):
        return _parse_other(text, file, kind, word.end(), line, column)
    tokens, comments = tokenize(text, file)
    parser = _Parser(text, file, tokens)
    try:
        if kind == "task":
            return parser.parse_task(comments)
        return parser.parse_function(comments)
    except RecursionError:
        # MAX_DEPTH keeps well inside the default limit; this only guards a caller that is
        # already deep in its own stack
        raise parser.error("nesting too deep to read") from None


def parse_expression(text: str, file: str = "<expression>") -> Expr:
    """Parse one expression on its own (tests, tools); the whole text must be the expression."""
    text = normalize(text)
    tokens, _ = tokenize(text, file)
    parser = _Parser(text, file, tokens)
    parser.nl_sensitive = False
    try:
        expr = parser.parse_expr()
    except RecursionError:
        raise parser.error("nesting too deep to read") from None
    if parser.tok.kind != EOF:
        parser.fail(f"unexpected {_describe(parser.tok)} after the expression")
    return expr
