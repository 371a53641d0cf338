"""XanoScript parser, base layer: the token cursor, errors at a token's position, the nesting cap.

`_Cursor` holds the token list, the current token and the two expression modes that brackets
switch; `error` makes (and `fail` raises) a `XanoSyntaxError` at a token. Nesting of blocks,
brackets and unary operators is capped at `MAX_DEPTH` so hostile input gives a clean
`XanoSyntaxError`, never a `RecursionError`. The layers above, one module each: `exprparse` →
`stmtparse` → `docparse`.
"""

from __future__ import annotations

from typing import Final, NoReturn

from daemon.core.errors import Issue
from daemon.xano.errors import XanoSyntaxError
from daemon.xano.lexer import DEC, EOF, IDENT, INT, RAW, STR, VAR, Token

# Nesting cap: each level (a bracket, a block, a unary operator) costs at most four Python frames
# here, so 100 levels stay within 400 frames, far from the default recursion limit of 1000 even
# when the caller is deep in its own stack; real exports nest fewer than 20 levels.
MAX_DEPTH: Final = 100


def _describe(tok: Token) -> str:
    if tok.kind == EOF:
        return "the end of the file"
    if tok.kind == STR:
        return "a string"
    if tok.kind in (INT, DEC):
        return f"the number {tok.text}"
    if tok.kind == VAR:
        return f'"${tok.text}"'
    if tok.kind == RAW:
        return f'"filters={tok.text}"'
    return f'"{tok.text}"'


class _Cursor:
    """Cursor over the token list plus the two expression modes that brackets switch."""

    def __init__(self, text: str, file: str, tokens: list[Token]) -> None:
        self.text = text
        self.file = file
        self.tokens = tokens
        self.i = 0
        self.tok = tokens[0]
        self.depth = 0
        # newlines end expressions (statement/attribute level, [ ] and { } literals)
        self.nl_sensitive = True
        # inside a filter argument: stop at ":" and "|", no ternary
        self.in_arg = False
        # inside backticks: an argument-less filter may be followed by an operator
        self.expr_mode = False
        self.warnings: list[Issue] = []

    # --- cursor --------------------------------------------------------------------------------

    def advance(self) -> Token:
        tok = self.tok
        if tok.kind != EOF:
            self.i += 1
            self.tok = self.tokens[self.i]
        return tok

    def peek(self, ahead: int = 1) -> Token:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else self.tokens[-1]

    def error(self, message: str, tok: Token | None = None) -> XanoSyntaxError:
        at = tok if tok is not None else self.tok
        return XanoSyntaxError(message, file=self.file, line=at.line, column=at.column)

    def fail(self, message: str, tok: Token | None = None) -> NoReturn:
        raise self.error(message, tok)

    def expect(self, kind: str, context: str) -> Token:
        if self.tok.kind != kind:
            self.fail(f'expected "{kind}" {context}, found {_describe(self.tok)}')
        return self.advance()

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(
                f"nesting deeper than {MAX_DEPTH} levels: split the expression into variables "
                "or the stack into functions",
                tok,
            )

    def is_word(self, word: str) -> bool:
        return self.tok.kind == IDENT and self.tok.text == word

    def adjacent(self, tok: Token) -> bool:
        """Whether the current token starts exactly where `tok` ends (no space between)."""
        return self.tok.pos == tok.end
