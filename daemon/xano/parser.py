"""XanoScript parser: a `.xs` document's tokens → TaskDoc / FunctionDoc / OtherDoc with positions.

Recursive descent for documents and statements; binary operators by an operator stack (so
long operator chains cost no recursion). The rules a reader of this file needs (XANOSCRIPT.md
section numbers in brackets):

Expressions
- Precedence, loosest first (§3.2, §6.30): `?:` < `??` < `||` < `&&` < comparisons (`== != ===
  !== < <= > >= =`, `!~`, `@>`, and the words `in like ilike contains includes overlaps between
  search` with their `not` forms) < range `..` < `+ - ~` < `* / %` < unary `! -` < a filtered
  operand. Binary operators are left-associative; the ternary is right-associative.
- A db operator followed directly (no space) by `?` is its null-ignore form (`==?`, `in?`).
- Filters (§3.3, §6.15, §6.16): `|name:arg:arg` attaches to the operand before it (so
  `"a" ~ $x|upper` filters `$x`); an argument is a full expression that stops at the next `:`
  or `|` outside brackets, so `$x|add:1 * 2` is `add(1*2)` and `$a|get:0 == 1` is `get(0 == 1)`;
  a chain applies left to right; a `|` may start a new line. An operand whose last filter has no
  argument cannot be followed by an operator (`$arr|count > 3` is an error telling the user to
  write `($arr|count) > 3`), and a ternary inside an argument must be parenthesised. Inside
  backticks (expression mode, §3.5) such an operand is accepted and the filter binds first
  (`` `$s|strlen > 4` `` is `($s|strlen) > 4`): old exports write conditions that way and the
  reading is unambiguous.
- Casts (`!int "42"`) bind to the operand before its filters: `!text "[1]"|json_decode` decodes
  the cast value. `-` directly before a number is part of the literal (`-1|abs` is 1).
- Newlines end an expression except inside `( )` and backticks; a line may start with `|`, `?`,
  `:` (of a ternary) or a binary operator that cannot start a value (`&&`, `||`, `??`, `==`,
  `~`, `*`, `/`…), in which case it continues the expression above. Inside `[ ]` and `{ }`
  literals a newline separates items like a comma.
- `$arr[…]` (§3.5): the bracket is an array filter (`Where`) when its content is a comparison,
  a logical `&&`/`||`/`!`, or mentions the element `$$`/`$this` anywhere; otherwise it is an
  index (`[0]`, `[-1]`, `[$i]`, `["key"]`).

Statements and documents
- Control statements get their own nodes; every other statement is a `Call`. A statement's
  target, `if (…)` and `{` must be on the statement's line; `as $x` may follow anywhere.
- Attribute keys may appear once per block, except `arg` (db.direct_query's repeatable one).
- A disabled object key (`!key: v`) or filter (`|!f`) is parsed (so errors in it are reported)
  and then dropped; a disabled attribute (`!key = v`) likewise; a disabled statement is kept with
  `disabled=True` so the compiler can list it.
- One construct per file (§1.1). Documents other than `task` and `function` are read only up to
  their name; their body is skipped without being tokenized, so it cannot fail the load.
- Nesting of blocks, brackets and unary operators is capped at `MAX_DEPTH` so hostile input gives
  a clean `XanoSyntaxError`, never a `RecursionError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Final, NoReturn

from daemon.core.errors import Issue
from daemon.xano.errors import XanoSyntaxError
from daemon.xano.lexer import (
    BT_CLOSE,
    BT_OPEN,
    DEC,
    EOF,
    IDENT,
    INT,
    RAW,
    STR,
    TS,
    VAR,
    Comment,
    Token,
    normalize,
    tokenize,
)
from daemon.xano.nodes import (
    Anchor,
    ArrayLit,
    Attr,
    Backtick,
    Binary,
    Block,
    BoolLit,
    Branch,
    Break,
    Call,
    Case,
    Cast,
    Conditional,
    Continue,
    DbRef,
    DecimalLit,
    Document,
    Entry,
    Event,
    Expr,
    Field,
    Filter,
    For,
    Foreach,
    FunctionDoc,
    Group,
    Ident,
    Index,
    InputFilter,
    InputParam,
    IntLit,
    Name,
    NowLit,
    NullLit,
    ObjectLit,
    OtherDoc,
    Path,
    Precondition,
    Remove,
    Return,
    Segment,
    Special,
    Spread,
    Stmt,
    StrLit,
    Switch,
    TaskDoc,
    Ternary,
    Throw,
    Transaction,
    TryCatch,
    Unary,
    Var,
    Where,
    While,
    walk,
)

__all__ = ["MAX_DEPTH", "parse_document", "parse_expression"]

# Nesting cap: each level (a bracket, a block, a unary operator) costs at most four Python frames
# here, so 100 levels stay within 400 frames, far from the default recursion limit of 1000 even
# when the caller is deep in its own stack; real exports nest fewer than 20 levels.
MAX_DEPTH: Final = 100

# precedence levels (higher binds tighter); the ternary sits below all of them
_COALESCE, _OR, _AND, _CMP, _RANGE, _ADD, _MUL = 1, 2, 3, 4, 5, 6, 7
_SYMBOL_OPS: Final = {
    "??": _COALESCE,
    "||": _OR,
    "&&": _AND,
    "==": _CMP,
    "!=": _CMP,
    "===": _CMP,
    "!==": _CMP,
    "<": _CMP,
    "<=": _CMP,
    ">": _CMP,
    ">=": _CMP,
    "=": _CMP,
    "!~": _CMP,
    "@>": _CMP,
    "..": _RANGE,
    "+": _ADD,
    "-": _ADD,
    "~": _ADD,
    "*": _MUL,
    "/": _MUL,
    "%": _MUL,
}
_NEGATABLE_WORDS: Final = frozenset(
    {"in", "like", "ilike", "contains", "includes", "overlaps", "between"}
)
_WORD_OPS: Final = _NEGATABLE_WORDS | {"search"}
# operators that may begin a continuation line: none of them can start a value or an item, so
# reading them as "the expression above goes on" is never ambiguous
_CONTINUATION: Final = frozenset(
    {"??", "||", "&&", "==", "!=", "===", "!==", "<", "<=", ">", ">=", "!~", "@>", "..", "~"}
    | {"*", "/", "%"}
)
_NO_NULL_IGNORE: Final = frozenset({"=", "search", ".."})
# binary operators that compute a value; every other one (comparisons, db words, && ||) is a test
_VALUE_OPS: Final = frozenset({"+", "-", "~", "*", "/", "%", "..", "??"})
_CAST_TYPES: Final = frozenset(
    {"int", "text", "decimal", "bool", "array", "object", "timestamp", "expr"}
)
_SPECIAL_VARS: Final = frozenset({"input", "env", "auth", "this"})
_REPEATABLE_ATTRS: Final = frozenset({"arg"})
_BRANCH_WORDS: Final = {
    "if": "conditional",
    "elseif": "conditional",
    "else": "conditional",
    "each": "foreach, for or while",
    "case": "switch",
    "default": "switch",
    "try": "try_catch",
    "catch": "try_catch",
    "finally": "try_catch",
}
_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})([+-])(\d{2})(\d{2})\Z")
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


def _position(text: str, pos: int) -> tuple[int, int]:
    """Line and column of an offset; only for one-off use (errors before tokenizing)."""
    line_start = text.rfind("\n", 0, pos) + 1
    return text.count("\n", 0, pos) + 1, pos - line_start + 1


def _is_condition(expr: Expr) -> bool:
    """Whether `$arr[expr]` filters the array rather than indexing it (see module docstring)."""
    if isinstance(expr, Binary) and expr.op not in _VALUE_OPS:
        return True
    if isinstance(expr, Unary) and expr.op == "!":
        return True
    return any(isinstance(node, Special) and node.name == "this" for node in walk(expr))


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


class _ExprParser(_Cursor):
    """The expressions: operators by precedence, operands, filters, paths and literals."""

    # --- expressions ---------------------------------------------------------------------------

    def parse_expr(self) -> Expr:
        """A full expression: binary operators by precedence (an operator stack, so operator
        chains cost no recursion), then an optional ternary."""
        self.enter(self.tok)
        operands = [self.parse_unary()]
        pending: list[tuple[str, int, bool, Token]] = []
        while True:
            tok = self.tok
            info = self.binary_op(tok)
            if info is None or not self.continues(tok, info[0]):
                break
            op, prec, width = info
            last = self.advance()
            if width == 2:
                last = self.advance()
            null_ignore = False
            if prec == _CMP and op not in _NO_NULL_IGNORE and self.tok.kind == "?":
                if self.adjacent(last):
                    null_ignore = True
                    self.advance()
            while pending and pending[-1][1] >= prec:  # left-associative
                self.reduce(operands, pending.pop())
            pending.append((op, prec, null_ignore, tok))
            operands.append(self.parse_unary())
        while pending:
            self.reduce(operands, pending.pop())
        cond = operands[0]
        tok = self.tok
        if tok.kind != "?":
            self.depth -= 1
            return cond
        if self.in_arg:
            self.fail(
                "a ternary inside a filter argument must be in parentheses: "
                "write |filter:(cond ? a : b)"
            )
        self.advance()
        then = self.parse_expr()
        if self.tok.kind != ":":
            self.fail(
                f'expected ":" of the ternary started at line {tok.line}, found '
                f"{_describe(self.tok)}"
            )
        self.advance()
        otherwise = self.parse_expr()
        self.depth -= 1
        return Ternary(cond=cond, then=then, otherwise=otherwise, line=tok.line, column=tok.column)

    @staticmethod
    def reduce(operands: list[Expr], pending: tuple[str, int, bool, Token]) -> None:
        op, _, null_ignore, tok = pending
        right = operands.pop()
        left = operands.pop()
        operands.append(
            Binary(
                op=op,
                left=left,
                right=right,
                null_ignore=null_ignore,
                line=tok.line,
                column=tok.column,
            )
        )

    def binary_op(self, tok: Token) -> tuple[str, int, int] | None:
        """(operator, precedence, tokens it spans) when `tok` starts a binary operator."""
        if tok.kind == IDENT:
            word = tok.text
            if word in _WORD_OPS:
                # `search: …` after a value starts the next key of a comma-less object
                return None if self.peek().kind == ":" else (word, _CMP, 1)
            if word == "not":
                after = self.peek()
                if after.kind == IDENT and after.text in _NEGATABLE_WORDS:
                    return "not " + after.text, _CMP, 2
            return None
        prec = _SYMBOL_OPS.get(tok.kind)
        return (tok.kind, prec, 1) if prec is not None else None

    def continues(self, tok: Token, op: str) -> bool:
        """Whether an operator token may extend the expression (newline rules)."""
        return not tok.nl or not self.nl_sensitive or op in _CONTINUATION

    def parse_unary(self) -> Expr:
        tok = self.tok
        kind = tok.kind
        node: Expr
        if kind == "!":
            after = self.peek()
            if after.kind == IDENT and after.text in _CAST_TYPES and after.pos == tok.end:
                self.advance()
                self.advance()
                operand = self.parse_postfix(self.parse_primary())
                node = Cast(to=after.text, operand=operand, line=tok.line, column=tok.column)
                node = self.parse_filters(node, tok)
            else:
                self.advance()
                self.enter(tok)
                operand = self.parse_unary()
                self.depth -= 1
                node = Unary(op="!", operand=operand, line=tok.line, column=tok.column)
        elif kind == "-":
            after = self.peek()
            if after.kind in (INT, DEC) and after.pos == tok.end:
                self.advance()
                number = self.number(self.advance(), tok, negative=True)
                node = self.parse_filters(self.parse_postfix(number), tok)
            else:
                self.advance()
                self.enter(tok)
                operand = self.parse_unary()
                self.depth -= 1
                node = Unary(op="-", operand=operand, line=tok.line, column=tok.column)
        elif kind == "|" and not self.in_arg:
            node = self.parse_filters(None, tok)
        else:
            node = self.parse_filters(self.parse_postfix(self.parse_primary()), tok)
        return node

    def number(self, tok: Token, start: Token, *, negative: bool = False) -> Expr:
        value = tok.value
        if isinstance(value, Decimal):
            return DecimalLit(
                value=-value if negative else value, line=start.line, column=start.column
            )
        assert isinstance(value, int)
        return IntLit(value=-value if negative else value, line=start.line, column=start.column)

    def parse_primary(self) -> Expr:
        tok = self.tok
        kind = tok.kind
        if kind == VAR:
            return self.parse_variable()
        if kind == STR:
            self.advance()
            assert isinstance(tok.value, str)
            return StrLit(value=tok.value, line=tok.line, column=tok.column)
        if kind in (INT, DEC):
            self.advance()
            return self.number(tok, tok)
        if kind == IDENT:
            self.advance()
            word = tok.text
            if word == "true" or word == "false":
                return BoolLit(value=word == "true", line=tok.line, column=tok.column)
            if word == "null":
                return NullLit(line=tok.line, column=tok.column)
            if word == "now":
                return NowLit(line=tok.line, column=tok.column)
            return Ident(name=word, line=tok.line, column=tok.column)
        if kind == "(":
            return self.parse_group()
        if kind == "[":
            return self.parse_array()
        if kind == "{":
            return self.parse_object()
        if kind == BT_OPEN:
            return self.parse_backtick()
        if kind == TS:
            self.fail(
                f"a timestamp literal ({tok.text}) is only valid as starts_on/ends_on of a "
                'schedule event; elsewhere write it as text: "…"|to_timestamp'
            )
        if kind == "...":
            self.fail('a spread "..." is only valid as an item of [ … ] or { … }')
        if kind == "|" and self.in_arg:
            self.fail("a filter argument cannot start with a filter: put it in parentheses")
        if kind == RAW:
            self.fail(
                '"filters=" belongs to input declarations; in a statement write "filters = value"'
            )
        self.fail(f"expected a value, found {_describe(tok)}")

    def parse_variable(self) -> Expr:
        tok = self.advance()
        name = tok.text
        line, column = tok.line, tok.column
        if name == "$":
            return Special(name="this", line=line, column=column)
        if name.isdigit():
            return Anchor(level=int(name), line=line, column=column)
        if name == "var":
            dot = self.tok
            if dot.kind == "." and self.adjacent(tok) and self.peek().kind == IDENT:
                self.advance()
                return Var(name=self.advance().text, line=line, column=column)
            return Special(name="var", line=line, column=column)
        if name == "db":
            parts: list[str] = []
            last = tok
            while len(parts) < 2 and self.tok.kind == "." and self.adjacent(last):
                self.advance()
                if self.tok.kind not in (IDENT, STR):
                    break
                part = self.advance()
                parts.append(part.text if part.kind == IDENT else str(part.value))
                last = part
            if not parts:
                self.fail("a column reference is written $db.<table>.<column>", tok)
            column_name = parts[1] if len(parts) > 1 else None
            return DbRef(table=parts[0], column_name=column_name, line=line, column=column)
        if name in _SPECIAL_VARS:
            return Special(name=name, line=line, column=column)
        return Var(name=name, line=line, column=column)

    def parse_postfix(self, base: Expr) -> Expr:
        segments: list[Segment] = []
        while True:
            tok = self.tok
            if tok.nl:
                break
            if tok.kind == ".":
                self.advance()
                part = self.tok
                if part.kind == IDENT:
                    segments.append(Field(name=part.text, line=part.line, column=part.column))
                elif part.kind == VAR:
                    segments.append(Field(name="$" + part.text, line=part.line, column=part.column))
                elif part.kind == INT:
                    index = self.number(part, part)
                    segments.append(Index(index=index, line=part.line, column=part.column))
                elif part.kind == STR:
                    assert isinstance(part.value, str)
                    segments.append(Field(name=part.value, line=part.line, column=part.column))
                else:
                    self.fail(f'expected a field name after ".", found {_describe(part)}')
                self.advance()
            elif tok.kind == "[":
                self.advance()
                saved = self.nl_sensitive, self.in_arg
                self.nl_sensitive, self.in_arg = False, False
                if self.tok.kind == "]":
                    self.fail("expected an index or a condition inside [ ]")
                inner = self.parse_expr()
                self.nl_sensitive, self.in_arg = saved
                if self.tok.kind != "]":
                    self.fail(
                        f'expected "]" to close the "[" at line {tok.line}, column {tok.column}, '
                        f"found {_describe(self.tok)}"
                    )
                self.advance()
                if _is_condition(inner):
                    segments.append(Where(cond=inner, line=tok.line, column=tok.column))
                else:
                    segments.append(Index(index=inner, line=tok.line, column=tok.column))
            else:
                break
        if not segments:
            return base
        return Path(base=base, segments=tuple(segments), line=base.line, column=base.column)

    def parse_filters(self, subject: Expr | None, start: Token) -> Expr:
        """The `|f:a|g` chain after an operand (or starting a value when `subject` is None)."""
        if self.in_arg or self.tok.kind != "|":
            assert subject is not None
            return subject
        node = subject
        last_had_args = True
        end = start.end
        while self.tok.kind == "|":
            bar = self.advance()
            disabled = False
            if self.tok.kind == "!" and self.adjacent(bar):
                disabled = True
                self.advance()
            name = self.tok
            if name.kind != IDENT:
                self.fail(f'expected a filter name after "|", found {_describe(name)}')
            self.advance()
            end = name.end
            args: list[Expr] = []
            while self.tok.kind == ":":
                self.advance()
                saved = self.in_arg
                self.in_arg = True
                args.append(self.parse_expr())
                self.in_arg = saved
                end = self.tokens[self.i - 1].end
            last_had_args = bool(args)
            if not disabled:
                node = Filter(
                    name=name.text,
                    subject=node,
                    args=tuple(args),
                    line=bar.line,
                    column=bar.column,
                )
        after = self.tok
        info = self.binary_op(after)
        is_operator = (info is not None and self.continues(after, info[0])) or after.kind == "?"
        if not last_had_args and is_operator and not self.expr_mode:
            self.fail(
                "a filter without arguments cannot be followed by an operator: "
                f"write ({self.text[start.pos : end]}) {self.rest_of_operand()}",
                after,
            )
        if node is None:  # every filter of a subject-less chain was disabled
            return NullLit(line=start.line, column=start.column)
        return node

    def rest_of_operand(self) -> str:
        """Source from the current token to the end of the enclosing item (for messages)."""
        depth = 0
        last = self.tok
        for tok in self.tokens[self.i : self.i + 40]:
            closes = tok.kind in (")", "]", "}")
            ends = closes or tok.kind in (",", EOF) or tok.nl
            if depth == 0 and tok is not self.tok and ends:
                break
            if tok.kind in ("(", "[", "{"):
                depth += 1
            elif closes:
                depth -= 1
            last = tok
        text = " ".join(self.text[self.tok.pos : last.end].split())
        return text if len(text) <= 40 else text[:39] + "…"

    def parse_group(self) -> Expr:
        tok = self.advance()
        saved = self.nl_sensitive, self.in_arg
        self.nl_sensitive, self.in_arg = False, False
        inner = self.parse_expr()
        self.nl_sensitive, self.in_arg = saved
        if self.tok.kind != ")":
            self.fail(
                f'expected ")" to close the "(" at line {tok.line}, column {tok.column}, '
                f"found {_describe(self.tok)}"
            )
        self.advance()
        return inner

    def separator(self, close: str, opener: Token, what: str) -> None:
        """Consume the comma or accept the newline between two items of a literal.

        Objects also accept a next `key:` on the same line without a comma (exports write
        `{pre: [...] post: [...]}`): a key followed by ":" cannot continue a value.
        """
        tok = self.tok
        if tok.kind == ",":
            self.advance()
        elif close == "}" and tok.kind in (IDENT, STR, INT) and self.peek().kind == ":":
            return
        elif tok.kind != close and not tok.nl:
            self.fail(
                f'expected "," or "{close}" in the {what} opened at line {opener.line}, '
                f"found {_describe(tok)}"
            )

    def unclosed(self, close: str, opener: Token, what: str) -> NoReturn:
        self.fail(
            f'expected "{close}" to close the {what} opened at line {opener.line}, '
            f"column {opener.column}"
        )

    def parse_array(self) -> Expr:
        tok = self.advance()
        saved = self.nl_sensitive, self.in_arg
        self.nl_sensitive, self.in_arg = True, False
        items: list[Expr] = []
        while self.tok.kind != "]":
            if self.tok.kind == EOF:
                self.unclosed("]", tok, "list")
            if self.tok.kind == "...":
                dots = self.advance()
                value = self.parse_expr()
                items.append(Spread(value=value, line=dots.line, column=dots.column))
            else:
                items.append(self.parse_expr())
            self.separator("]", tok, "list")
        self.advance()
        self.nl_sensitive, self.in_arg = saved
        return ArrayLit(items=tuple(items), line=tok.line, column=tok.column)

    def parse_key(self, what: str) -> tuple[Token, str]:
        """An object key: identifier (dotted `t.col` allowed), quoted string or integer."""
        tok = self.tok
        if tok.kind == STR:
            self.advance()
            assert isinstance(tok.value, str)
            return tok, tok.value
        if tok.kind == INT:
            self.advance()
            return tok, tok.text
        if tok.kind != IDENT:
            self.fail(f"expected a key in the {what}, found {_describe(tok)}")
        parts = [self.advance().text]
        last = tok
        while self.tok.kind == "." and self.adjacent(last) and self.peek().kind in (IDENT, INT):
            self.advance()
            last = self.advance()
            parts.append(last.text)
        return tok, ".".join(parts)

    def parse_object(self) -> Expr:
        tok = self.advance()
        saved = self.nl_sensitive, self.in_arg
        self.nl_sensitive, self.in_arg = True, False
        entries: list[Entry | Spread] = []
        seen: dict[str, Token] = {}
        while self.tok.kind != "}":
            if self.tok.kind == EOF:
                self.unclosed("}", tok, "object")
            if self.tok.kind == "...":
                dots = self.advance()
                value = self.parse_expr()
                entries.append(Spread(value=value, line=dots.line, column=dots.column))
                self.separator("}", tok, "object")
                continue
            disabled = False
            if self.tok.kind == "!":
                disabled = True
                self.advance()
            key_tok, key = self.parse_key("object")
            if self.tok.kind == "=":
                self.fail(f'write "{key}: value" in an object: keys take ":", not "="')
            if self.tok.kind != ":":
                self.fail(f'expected ":" after the key "{key}", found {_describe(self.tok)}')
            self.advance()
            value = self.parse_expr()
            if not disabled:
                first = seen.get(key)
                if first is not None:
                    self.fail(
                        f'duplicate key "{key}" in the object (first at line {first.line}, '
                        f"column {first.column})",
                        key_tok,
                    )
                seen[key] = key_tok
                entries.append(
                    Entry(key=key, value=value, line=key_tok.line, column=key_tok.column)
                )
            self.separator("}", tok, "object")
        self.advance()
        self.nl_sensitive, self.in_arg = saved
        return ObjectLit(entries=tuple(entries), line=tok.line, column=tok.column)

    def parse_backtick(self) -> Expr:
        tok = self.advance()
        saved = self.nl_sensitive, self.in_arg, self.expr_mode
        self.nl_sensitive, self.in_arg, self.expr_mode = False, False, True
        if self.tok.kind == BT_CLOSE:
            self.fail("empty expression between backticks")
        inner = self.parse_expr()
        if self.tok.kind != BT_CLOSE:
            self.fail(
                f"expected the closing {tok.text} of the expression opened at line {tok.line}, "
                f"column {tok.column}, found {_describe(self.tok)}"
            )
        self.advance()
        self.nl_sensitive, self.in_arg, self.expr_mode = saved
        return Backtick(expr=inner, triple=tok.text == "```", line=tok.line, column=tok.column)


class _StmtParser(_ExprParser):
    """The statements: stacks, attribute blocks, calls and the control statements."""

    # --- statements ----------------------------------------------------------------------------

    def parse_stack(self, what: str) -> tuple[Stmt, ...]:
        """`{ statements }`; `what` names the block in messages ("stack", "if", "each"…)."""
        if self.tok.kind != "{":
            self.fail(f'expected "{{" to open the {what} block, found {_describe(self.tok)}')
        opener = self.advance()
        self.enter(opener)
        stmts: list[Stmt] = []
        while self.tok.kind != "}":
            if self.tok.kind == EOF:
                self.fail(
                    f'expected "}}" to close the {what} opened at line {opener.line} '
                    f"(column {opener.column})"
                )
            stmts.append(self.parse_statement())
        self.advance()
        self.depth -= 1
        return tuple(stmts)

    def parse_dotted(self) -> str:
        first = self.advance()
        parts = [first.text]
        last = first
        while self.tok.kind == "." and self.adjacent(last) and self.peek().kind == IDENT:
            self.advance()
            last = self.advance()
            parts.append(last.text)
        return ".".join(parts)

    def parse_statement(self) -> Stmt:
        start = self.tok
        disabled = False
        if start.kind == "!" and self.peek().kind == IDENT and self.peek().pos == start.end:
            disabled = True
            self.advance()
        tok = self.tok
        if tok.kind != IDENT:
            self.fail(
                f"expected a statement (such as var $x {{ value = … }}), found {_describe(tok)}"
            )
        if tok.text in _BRANCH_WORDS:
            if tok.text == "else" and self.peek().kind == IDENT and self.peek().text == "if":
                self.fail('"else if" is not XanoScript: write "elseif (…)"')
            self.fail(f'"{tok.text}" is only valid directly inside {_BRANCH_WORDS[tok.text]}')
        name = self.parse_dotted()
        control = _CONTROL.get(name)
        if control is not None:
            return control(self, start, disabled)
        return self.parse_call(start, name, disabled)

    def same_line(self) -> bool:
        return not self.tok.nl and self.tok.kind != EOF

    def parse_call(self, start: Token, name: str, disabled: bool) -> Stmt:
        target: Name | Expr | None = None
        condition: Expr | None = None
        attrs: tuple[Attr, ...] = ()
        blocks: tuple[Block, ...] = ()
        as_var: Expr | None = None
        if self.same_line():
            target = self.parse_target()
        if self.same_line() and self.is_word("if") and self.peek().kind in ("(", BT_OPEN):
            self.advance()
            condition = self.parse_condition("if")
        if self.same_line() and self.tok.kind == "{":
            attrs, blocks = self.parse_attr_block(name)
        if self.is_word("as") and self.peek().kind in (VAR, IDENT):
            self.advance()
            as_var = self.parse_binding()
        return Call(
            name=name,
            target=target,
            condition=condition,
            attrs=attrs,
            blocks=blocks,
            as_var=as_var,
            disabled=disabled,
            line=start.line,
            column=start.column,
        )

    def parse_target(self) -> Name | Expr | None:
        tok = self.tok
        kind = tok.kind
        if kind == VAR:
            return self.parse_postfix(self.parse_variable())
        if kind == "(":
            return self.parse_group()
        if kind == STR:
            self.advance()
            assert isinstance(tok.value, str)
            return Name(value=tok.value, quoted=True, line=tok.line, column=tok.column)
        if kind == INT:  # a table id, as old exports write it (db.add 48 { … })
            self.advance()
            return Name(value=tok.text, line=tok.line, column=tok.column)
        if kind != IDENT:
            return None
        after = self.peek()
        if tok.text == "as" and after.kind in (VAR, IDENT):
            return None
        if tok.text == "if" and after.kind in ("(", BT_OPEN):
            return None
        parts = [self.advance().text]
        last = tok
        while self.tok.kind == "/" and self.adjacent(last) and self.peek().kind == IDENT:
            self.advance()
            last = self.advance()
            parts.append(last.text)
        return Name(value="/".join(parts), line=tok.line, column=tok.column)

    def parse_binding(self) -> Expr:
        """The variable after `as`: `$x`, `$a.b`, or the old beta form without `$`."""
        tok = self.tok
        if tok.kind == IDENT:
            self.advance()
            return Var(name=tok.text, line=tok.line, column=tok.column)
        target = self.parse_postfix(self.parse_variable())
        base = target.base if isinstance(target, Path) else target
        fields_only = not isinstance(target, Path) or all(
            isinstance(s, Field) or (isinstance(s, Index) and isinstance(s.index, IntLit))
            for s in target.segments
        )
        if not isinstance(base, Var) or not fields_only:
            self.fail("expected a variable to bind after as, like $result", tok)
        return target

    def parse_condition(self, what: str) -> Expr:
        """`(expr)` or an old-style backtick condition."""
        if self.tok.kind == "(":
            return self.parse_group()
        if self.tok.kind == BT_OPEN:
            return self.parse_backtick()
        self.fail(f'expected "(" and the condition of {what}, found {_describe(self.tok)}')

    def parse_attr(self, attrs: list[Attr], seen: dict[str, Token], owner: str) -> bool:
        """One `key = value` line into `attrs` if the cursor is at one; False otherwise."""
        tok = self.tok
        disabled = False
        if tok.kind == "!" and self.peek().kind == IDENT and self.peek(2).kind == "=":
            disabled = True
            self.advance()
            tok = self.tok
        if tok.kind != IDENT or self.peek().kind != "=":
            return False
        self.advance()
        self.advance()
        value = self.parse_expr()
        if disabled:
            return True
        key = tok.text
        first = seen.get(key)
        if first is not None and key not in _REPEATABLE_ATTRS:
            self.fail(
                f'"{key}" is given twice in the {owner} block (first at line {first.line})', tok
            )
        seen.setdefault(key, tok)
        attrs.append(Attr(key=key, value=value, line=tok.line, column=tok.column))
        return True

    def parse_attr_block(self, owner: str) -> tuple[tuple[Attr, ...], tuple[Block, ...]]:
        opener = self.advance()
        self.enter(opener)
        saved = self.nl_sensitive, self.in_arg
        self.nl_sensitive, self.in_arg = True, False
        attrs: list[Attr] = []
        blocks: list[Block] = []
        seen: dict[str, Token] = {}
        while self.tok.kind != "}":
            tok = self.tok
            if tok.kind == EOF:
                self.fail(
                    f'expected "}}" to close the {owner} block opened at line {opener.line} '
                    f"(column {opener.column})"
                )
            if self.parse_attr(attrs, seen, owner):
                continue
            if tok.kind == IDENT and self.peek().kind == "{":
                self.advance()
                if tok.text == "stack":
                    stack = self.parse_stack("stack")
                    blocks.append(
                        Block(name="stack", stack=stack, line=tok.line, column=tok.column)
                    )
                else:
                    sub_attrs, sub_blocks = self.parse_attr_block(tok.text)
                    blocks.append(
                        Block(
                            name=tok.text,
                            attrs=sub_attrs,
                            blocks=sub_blocks,
                            line=tok.line,
                            column=tok.column,
                        )
                    )
                continue
            if tok.kind == IDENT and self.peek().kind == ":":
                self.fail(
                    f'write "{tok.text} = …" in a statement block ("{tok.text}: …" is for objects)',
                    self.peek(),
                )
            if tok.kind == IDENT:
                self.fail(
                    f'expected "=" after "{tok.text}" in the {owner} block, found '
                    f"{_describe(self.peek())}",
                    self.peek(),
                )
            self.fail(
                f"expected an attribute (key = value) in the {owner} block, found {_describe(tok)}"
            )
        self.advance()
        self.nl_sensitive, self.in_arg = saved
        self.depth -= 1
        return tuple(attrs), tuple(blocks)

    def open_control(self, what: str) -> Token:
        if self.tok.kind != "{" or self.tok.nl:
            self.fail(f'expected "{{" after {what}, found {_describe(self.tok)}')
        opener = self.advance()
        self.enter(opener)
        return opener

    def close_control(self, opener: Token, what: str) -> None:
        if self.tok.kind == EOF:
            self.fail(f'expected "}}" to close the {what} opened at line {opener.line}')

    def unexpected_in(self, what: str, expected: str) -> NoReturn:
        self.fail(f"expected {expected} in the {what}, found {_describe(self.tok)}")

    def parse_conditional(self, start: Token, disabled: bool) -> Stmt:
        opener = self.open_control("conditional")
        branches: list[Branch] = []
        else_body: tuple[Stmt, ...] | None = None
        attrs: list[Attr] = []
        seen: dict[str, Token] = {}
        while self.tok.kind != "}":
            self.close_control(opener, "conditional")
            tok = self.tok
            if self.parse_attr(attrs, seen, "conditional"):
                continue
            word = tok.text if tok.kind == IDENT else ""
            if word == "else" and self.peek().kind == IDENT and self.peek().text == "if":
                self.fail('"else if" is not XanoScript: write "elseif (…)"')
            if word in ("if", "elseif"):
                if word == "if" and branches:
                    self.fail('a conditional has one "if"; write "elseif (…)" for the next branch')
                if word == "elseif" and not branches:
                    self.fail('"elseif" must follow an "if" branch')
                if else_body is not None:
                    self.fail(f'"{word}" cannot follow "else": else is the last branch')
                self.advance()
                cond = self.parse_condition(word)
                body = self.parse_stack(word) if self.same_line() and self.tok.kind == "{" else ()
                branches.append(
                    Branch(keyword=word, cond=cond, body=body, line=tok.line, column=tok.column)
                )
            elif word == "else":
                if not branches:
                    self.fail('"else" must follow an "if" branch')
                if else_body is not None:
                    self.fail('a conditional has one "else"')
                self.advance()
                else_body = self.parse_stack("else")
            else:
                self.unexpected_in("conditional", "if, elseif or else")
        self.advance()
        self.depth -= 1
        if not branches:
            self.fail('a conditional needs an "if (…) { … }" branch', start)
        return Conditional(
            branches=tuple(branches),
            else_body=else_body,
            attrs=tuple(attrs),
            disabled=disabled,
            line=start.line,
            column=start.column,
        )

    def parse_switch(self, start: Token, disabled: bool) -> Stmt:
        subject = self.parse_condition("switch")
        opener = self.open_control("switch")
        cases: list[Case] = []
        default: tuple[Stmt, ...] | None = None
        attrs: list[Attr] = []
        seen: dict[str, Token] = {}
        while self.tok.kind != "}":
            self.close_control(opener, "switch")
            tok = self.tok
            if self.parse_attr(attrs, seen, "switch"):
                continue
            if self.is_word("case"):
                if default is not None:
                    self.fail('"case" cannot follow "default": default is the last branch')
                self.advance()
                value = self.parse_condition("case")
                body = self.parse_stack("case") if self.same_line() and self.tok.kind == "{" else ()
                has_break = self.is_word("break")
                if has_break:
                    self.advance()
                cases.append(
                    Case(
                        value=value,
                        body=body,
                        has_break=has_break,
                        line=tok.line,
                        column=tok.column,
                    )
                )
            elif self.is_word("default"):
                if default is not None:
                    self.fail('a switch has one "default"')
                self.advance()
                default = self.parse_stack("default")
            else:
                self.unexpected_in("switch", "case or default")
        self.advance()
        self.depth -= 1
        return Switch(
            subject=subject,
            cases=tuple(cases),
            default=default,
            attrs=tuple(attrs),
            disabled=disabled,
            line=start.line,
            column=start.column,
        )

    def parse_loop(
        self, start: Token, keyword: str
    ) -> tuple[Expr, str, tuple[Stmt, ...], tuple[Attr, ...]]:
        """`keyword (expr) { each [as $v] { … } }`; the name is "" for while's bare `each`."""
        head = self.parse_condition(keyword)
        opener = self.open_control(keyword)
        attrs: list[Attr] = []
        seen: dict[str, Token] = {}
        variable: str | None = None
        body: tuple[Stmt, ...] | None = None
        binds = keyword != "while"
        while self.tok.kind != "}":
            self.close_control(opener, keyword)
            if self.parse_attr(attrs, seen, keyword):
                continue
            if not self.is_word("each"):
                self.unexpected_in(keyword, '"each"')
            if body is not None:
                self.fail(f'a {keyword} has one "each" block')
            self.advance()
            if binds:
                if not self.is_word("as"):
                    self.fail(
                        f'expected "each as $item" in the {keyword}, found {_describe(self.tok)}'
                    )
                self.advance()
                var = self.tok
                if var.kind not in (VAR, IDENT):
                    self.fail(f'expected a variable after "each as", found {_describe(var)}')
                self.advance()
                variable = var.text
            body = self.parse_stack("each")
        closer = self.advance()
        self.depth -= 1
        if body is None:
            form = "each as $item { … }" if binds else "each { … }"
            self.fail(f'a {keyword} needs "{form}" inside its block', closer)
        return head, variable or "", body, tuple(attrs)

    def parse_foreach(self, start: Token, disabled: bool) -> Stmt:
        head, item, body, attrs = self.parse_loop(start, "foreach")
        return Foreach(
            iterable=head,
            item=item,
            body=body,
            attrs=attrs,
            disabled=disabled,
            line=start.line,
            column=start.column,
        )

    def parse_for(self, start: Token, disabled: bool) -> Stmt:
        head, index, body, attrs = self.parse_loop(start, "for")
        return For(
            count=head,
            index=index,
            body=body,
            attrs=attrs,
            disabled=disabled,
            line=start.line,
            column=start.column,
        )

    def parse_while(self, start: Token, disabled: bool) -> Stmt:
        head, _, body, attrs = self.parse_loop(start, "while")
        return While(
            cond=head,
            body=body,
            attrs=attrs,
            disabled=disabled,
            line=start.line,
            column=start.column,
        )

    def parse_try_catch(self, start: Token, disabled: bool) -> Stmt:
        opener = self.open_control("try_catch")
        parts: dict[str, tuple[Stmt, ...]] = {}
        attrs: list[Attr] = []
        seen: dict[str, Token] = {}
        order = ("try", "catch", "finally")
        while self.tok.kind != "}":
            self.close_control(opener, "try_catch")
            if self.parse_attr(attrs, seen, "try_catch"):
                continue
            word = self.tok.text if self.tok.kind == IDENT else ""
            if word not in order:
                self.unexpected_in("try_catch", "try, catch or finally")
            if word in parts:
                self.fail(f'a try_catch has one "{word}" block')
            later = [w for w in order[order.index(word) + 1 :] if w in parts]
            if later:
                self.fail(f'"{word}" must come before "{later[0]}"')
            self.advance()
            parts[word] = self.parse_stack(word)
        closer = self.advance()
        self.depth -= 1
        if "try" not in parts:
            self.fail('a try_catch needs a "try { … }" block', closer)
        return TryCatch(
            try_body=parts["try"],
            catch_body=parts.get("catch"),
            finally_body=parts.get("finally"),
            attrs=tuple(attrs),
            disabled=disabled,
            line=start.line,
            column=start.column,
        )

    def parse_stack_holder(self, what: str) -> tuple[tuple[Stmt, ...], tuple[Attr, ...]]:
        """`{ description = … stack { … } }` of group and db.transaction."""
        opener = self.open_control(what)
        attrs: list[Attr] = []
        seen: dict[str, Token] = {}
        stack: tuple[Stmt, ...] | None = None
        while self.tok.kind != "}":
            self.close_control(opener, what)
            if self.parse_attr(attrs, seen, what):
                continue
            if not self.is_word("stack"):
                self.unexpected_in(what, '"stack { … }"')
            if stack is not None:
                self.fail(f'a {what} has one "stack" block')
            self.advance()
            stack = self.parse_stack("stack")
        self.advance()
        self.depth -= 1
        return stack or (), tuple(attrs)

    def parse_group_stmt(self, start: Token, disabled: bool) -> Stmt:
        stack, attrs = self.parse_stack_holder("group")
        return Group(
            stack=stack, attrs=attrs, disabled=disabled, line=start.line, column=start.column
        )

    def parse_transaction(self, start: Token, disabled: bool) -> Stmt:
        stack, attrs = self.parse_stack_holder("db.transaction")
        return Transaction(
            stack=stack, attrs=attrs, disabled=disabled, line=start.line, column=start.column
        )

    def optional_attrs(self, what: str) -> tuple[Attr, ...]:
        if not (self.same_line() and self.tok.kind == "{"):
            return ()
        attrs, blocks = self.parse_attr_block(what)
        if blocks:
            self.fail(f'unexpected block "{blocks[0].name}" in {what}', self.tokens[self.i - 1])
        return attrs

    def parse_return(self, start: Token, disabled: bool) -> Stmt:
        return Return(
            attrs=self.optional_attrs("return"),
            disabled=disabled,
            line=start.line,
            column=start.column,
        )

    def parse_throw(self, start: Token, disabled: bool) -> Stmt:
        return Throw(
            attrs=self.optional_attrs("throw"),
            disabled=disabled,
            line=start.line,
            column=start.column,
        )

    def parse_precondition(self, start: Token, disabled: bool) -> Stmt:
        if self.is_word("if"):  # old beta form: precondition if (`cond`) { … }
            self.advance()
        cond = self.parse_condition("precondition")
        return Precondition(
            cond=cond,
            attrs=self.optional_attrs("precondition"),
            disabled=disabled,
            line=start.line,
            column=start.column,
        )

    def parse_break(self, start: Token, disabled: bool) -> Stmt:
        return Break(disabled=disabled, line=start.line, column=start.column)

    def parse_continue(self, start: Token, disabled: bool) -> Stmt:
        return Continue(disabled=disabled, line=start.line, column=start.column)

    def parse_remove(self, start: Token, disabled: bool) -> Stmt:
        return Remove(disabled=disabled, line=start.line, column=start.column)


class _Parser(_StmtParser):
    """The documents: a task's or a function's settings, inputs and schedule."""

    # --- documents -----------------------------------------------------------------------------

    def parse_doc_name(self, kind: str) -> str:
        tok = self.tok
        if tok.kind == STR:
            self.advance()
            assert isinstance(tok.value, str)
            return tok.value
        if tok.kind == IDENT and not tok.nl:
            name = self.parse_target()
            assert isinstance(name, Name)
            return name.value
        self.fail(f'expected the {kind} name (a word or a "quoted name"), found {_describe(tok)}')

    def string_setting(self, key: Token) -> str:
        value = self.parse_expr()
        if not isinstance(value, StrLit):
            self.fail(f'{key.text} must be a "string"', key)
        return value.value

    def tags_setting(self, key: Token) -> tuple[str, ...]:
        value = self.parse_expr()
        if not isinstance(value, ArrayLit) or not all(isinstance(i, StrLit) for i in value.items):
            self.fail('tags must be a list of strings: tags = ["a", "b"]', key)
        return tuple(i.value for i in value.items if isinstance(i, StrLit))

    def history_setting(self, key: Token) -> bool | int | str | None:
        value = self.parse_expr()
        if isinstance(value, BoolLit | IntLit):
            if isinstance(value, IntLit) and value.value < 0:
                self.fail("history must not be negative", key)
            return value.value
        word = value.value if isinstance(value, StrLit) else getattr(value, "name", None)
        if isinstance(value, StrLit | Ident) and word in ("inherit", "all"):
            return word
        if isinstance(value, ObjectLit):  # older exports: history = {inherit: true}
            entry = value.entries[0] if len(value.entries) == 1 else None
            if (
                isinstance(entry, Entry)
                and entry.key == "inherit"
                and isinstance(entry.value, BoolLit)
                and entry.value.value
            ):
                return "inherit"
            self.warn(key, "history object not understood (expected {inherit: true}); ignored")
            return None
        self.fail('history must be "inherit", "all", true, false or a number', key)

    def warn(self, tok: Token, message: str) -> None:
        self.warnings.append(
            Issue(self.file, tok.text, message, tok.line, tok.column, severity="warning")
        )

    def skip_item(self) -> None:
        """Skip an unknown document setting: `key = value…` to the end of its line (brackets
        balanced) or `key [name] { … }`."""
        depth = 0
        first = True
        while self.tok.kind != EOF:
            tok = self.tok
            if not first and depth == 0 and (tok.nl or tok.kind == "}"):
                return
            first = False
            if tok.kind in ("(", "[", "{"):
                depth += 1
            elif tok.kind in (")", "]", "}"):
                depth -= 1
                if depth == 0 and tok.kind == "}":
                    self.advance()
                    return
            self.advance()

    def parse_schedule(self) -> tuple[Event, ...]:
        if self.tok.kind == "=":
            self.advance()
            return self.parse_events()
        if self.tok.kind != "{" or self.tok.nl:
            return ()  # a bare `schedule` (language server grammar): no events
        opener = self.advance()
        events: tuple[Event, ...] = ()
        seen = False
        while self.tok.kind != "}":
            if self.tok.kind == EOF:
                self.unclosed("}", opener, "schedule")
            if not self.is_word("events") or self.peek().kind != "=":
                self.fail(
                    f'expected "events = [ … ]" in schedule {{ }}, found {_describe(self.tok)}'
                )
            if seen:
                self.fail('"events" is given twice in this schedule')
            seen = True
            self.advance()
            self.advance()
            events = self.parse_events()
        self.advance()
        return events

    def parse_events(self) -> tuple[Event, ...]:
        if self.tok.kind != "[":
            self.fail(f'expected "[" and the schedule events, found {_describe(self.tok)}')
        opener = self.advance()
        events: list[Event] = []
        while self.tok.kind != "]":
            if self.tok.kind == EOF:
                self.unclosed("]", opener, "list of events")
            if self.tok.kind != "{":
                self.fail(
                    f"expected an event {{starts_on: …, freq: …}}, found {_describe(self.tok)}"
                )
            events.append(self.parse_event())
            self.separator("]", opener, "list of events")
        self.advance()
        return tuple(events)

    def parse_event(self) -> Event:
        opener = self.advance()
        values: dict[str, object] = {}
        seen: dict[str, Token] = {}
        while self.tok.kind != "}":
            if self.tok.kind == EOF:
                self.unclosed("}", opener, "event")
            key_tok, key = self.parse_key("event")
            if key not in ("starts_on", "freq", "ends_on"):
                self.fail(
                    f'unknown schedule event key "{key}": expected starts_on, freq or ends_on',
                    key_tok,
                )
            if key in seen:
                self.fail(f'"{key}" is given twice in this event', key_tok)
            seen[key] = key_tok
            if self.tok.kind == "=":
                self.fail(f'write "{key}: value" in an event: keys take ":", not "="')
            self.expect(":", f'after "{key}"')
            value = self.tok
            if key == "freq":
                if value.kind != INT or not isinstance(value.value, int) or value.value <= 0:
                    self.fail("freq is a whole number of seconds greater than 0, like 3600")
                values[key] = value.value
            elif value.kind in (TS, STR):
                values[key] = self.timestamp(value)
            else:
                self.fail(
                    f"{key} needs a timestamp like 2025-01-01 00:00:00+0000, found "
                    f"{_describe(value)}"
                )
            self.advance()
            self.separator("}", opener, "event")
        self.advance()
        starts_on = values.get("starts_on")
        if not isinstance(starts_on, datetime):
            self.fail(
                "a schedule event needs starts_on: {starts_on: 2025-01-01 00:00:00+0000}", opener
            )
        freq = values.get("freq")
        ends_on = values.get("ends_on")
        return Event(
            starts_on=starts_on,
            freq=freq if isinstance(freq, int) else None,
            ends_on=ends_on if isinstance(ends_on, datetime) else None,
            line=opener.line,
            column=opener.column,
        )

    def timestamp(self, tok: Token) -> datetime:
        text = str(tok.value)
        m = _TIMESTAMP.match(text)
        if m is None:
            self.fail(
                f'invalid timestamp "{text}": write YYYY-MM-DD HH:MM:SS+0000 (one space, '
                "seconds, and a 4-digit UTC offset)",
                tok,
            )
        year, month, day, hour, minute, second, sign, off_h, off_m = m.groups()
        try:
            if int(off_m) >= 60:
                raise ValueError("offset minutes must be below 60")
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            zone = timezone(-offset if sign == "-" else offset)
            return datetime(
                int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=zone
            )
        except ValueError as exc:
            self.fail(f'invalid timestamp "{text}": {exc}', tok)

    def parse_task(self, comments: list[Comment]) -> TaskDoc:
        keyword = self.advance()
        name = self.parse_doc_name("task")
        opener = self.open_control("the task name")
        settings: dict[str, object] = {}
        seen: dict[str, Token] = {}
        while self.tok.kind != "}":
            tok = self.tok
            if tok.kind == EOF:
                self.fail(f'expected "}}" to close the task opened at line {opener.line}')
            if tok.kind != IDENT:
                self.fail(
                    f"expected a task setting (description, stack, schedule…), found "
                    f"{_describe(tok)}"
                )
            key = tok.text
            first = seen.get(key)
            if first is not None and key != "test":
                self.fail(f'"{key}" is given twice in this task (first at line {first.line})')
            seen[key] = tok
            self.advance()
            if key == "stack":
                settings[key] = self.parse_stack("stack") if self.same_line() else ()
            elif key == "schedule":
                settings[key] = self.parse_schedule()
            elif key == "test":
                self.skip_item()  # unit tests do not run in a daemon
            elif key in (
                "description",
                "datasource",
                "docs",
                "guid",
                "active",
                "tags",
                "history",
                "middleware",
            ):
                self.expect("=", f"after {key}")
                settings[key] = self.task_setting(tok)
            else:
                self.warn(tok, f'unknown task setting "{key}" skipped')
                self.skip_item()
        self.advance()
        self.depth -= 1
        self.end_of_document("task")
        description = settings.get("description")
        if description is None:
            description = _comment_description(comments, keyword.line)
        return TaskDoc(
            name=name,
            description=description if isinstance(description, str) else None,
            active=settings.get("active", True) is True,
            datasource=_opt_str(settings.get("datasource")),
            tags=_str_tuple(settings.get("tags")),
            history=_history(settings.get("history")),
            docs=_opt_str(settings.get("docs")),
            guid=_opt_str(settings.get("guid")),
            middleware=_opt_expr(settings.get("middleware")),
            schedule=_events(settings.get("schedule")),
            stack=_stmt_tuple(settings.get("stack")),
            warnings=tuple(self.warnings),
            line=keyword.line,
            column=keyword.column,
        )

    def task_setting(self, key: Token) -> object:
        name = key.text
        if name in ("description", "datasource", "docs", "guid"):
            return self.string_setting(key)
        if name == "tags":
            return self.tags_setting(key)
        if name == "history":
            return self.history_setting(key)
        value = self.parse_expr()
        if name == "active":
            if not isinstance(value, BoolLit):
                self.fail("active must be true or false", key)
            return value.value
        if not isinstance(value, ObjectLit):  # middleware
            self.fail("middleware must be an object: {pre: [...], post: [...]}", key)
        return value

    def parse_function(self, comments: list[Comment]) -> FunctionDoc:
        keyword = self.advance()
        name = self.parse_doc_name("function")
        opener = self.open_control("the function name")
        settings: dict[str, object] = {}
        seen: dict[str, Token] = {}
        while self.tok.kind != "}":
            tok = self.tok
            if tok.kind == EOF:
                self.fail(f'expected "}}" to close the function opened at line {opener.line}')
            if tok.kind != IDENT:
                self.fail(
                    f"expected a function setting (input, stack, response…), found {_describe(tok)}"
                )
            key = tok.text
            first = seen.get(key)
            if first is not None and key != "test":
                self.fail(f'"{key}" is given twice in this function (first at line {first.line})')
            seen[key] = tok
            self.advance()
            if key == "stack":
                settings[key] = self.parse_stack("stack") if self.same_line() else ()
            elif key == "input":
                settings[key] = self.parse_inputs()
            elif key == "response" and self.tok.kind == "{":  # old form: response { value = x }
                attrs, _ = self.parse_attr_block("response")
                settings[key] = next((a.value for a in attrs if a.key == "value"), None)
            elif key == "response":
                self.expect("=", "after response")
                settings[key] = self.parse_expr()
            elif key == "test":
                self.skip_item()
            elif key in ("description", "docs", "guid"):
                self.expect("=", f"after {key}")
                settings[key] = self.string_setting(tok)
            elif key == "tags":
                self.expect("=", "after tags")
                settings[key] = self.tags_setting(tok)
            elif key == "history":
                self.expect("=", "after history")
                settings[key] = self.history_setting(tok)
            else:
                self.warn(tok, f'unknown function setting "{key}" skipped')
                self.skip_item()
        self.advance()
        self.depth -= 1
        self.end_of_document("function")
        description = settings.get("description")
        if description is None:
            description = _comment_description(comments, keyword.line)
        inputs = settings.get("input", ())
        assert isinstance(inputs, tuple)
        return FunctionDoc(
            name=name,
            description=description if isinstance(description, str) else None,
            inputs=inputs,
            stack=_stmt_tuple(settings.get("stack")),
            response=_opt_expr(settings.get("response")),
            tags=_str_tuple(settings.get("tags")),
            history=_history(settings.get("history")),
            docs=_opt_str(settings.get("docs")),
            guid=_opt_str(settings.get("guid")),
            warnings=tuple(self.warnings),
            line=keyword.line,
            column=keyword.column,
        )

    def parse_inputs(self) -> tuple[InputParam, ...]:
        if self.tok.kind != "{":
            self.fail(f'expected "{{" after input, found {_describe(self.tok)}')
        opener = self.advance()
        self.enter(opener)
        params: list[InputParam] = []
        while self.tok.kind != "}":
            if self.tok.kind == EOF:
                self.unclosed("}", opener, "input block")
            params.append(self.parse_input_param())
        self.advance()
        self.depth -= 1
        return tuple(params)

    def parse_input_param(self) -> InputParam:
        type_tok = self.tok
        if type_tok.kind != IDENT:
            self.fail(
                f'expected an input declaration such as "text name", found {_describe(type_tok)}'
            )
        last = self.advance()
        nullable = is_list = False
        bounds: str | None = None
        while True:  # modifiers glued to the type: text?  text[]  int[1:10]
            if self.tok.kind == "?" and not self.tok.nl:  # also the old spaced form "text ?x"
                nullable = True
                last = self.advance()
            elif self.tok.kind == "[" and self.adjacent(last):
                open_bracket = self.advance()
                while self.tok.kind not in ("]", EOF):
                    self.advance()
                if self.tok.kind != "]":
                    self.unclosed("]", open_bracket, "list type")
                inner = self.text[open_bracket.end : self.tok.pos].strip()
                bounds = inner or None
                is_list = True
                last = self.advance()
            else:
                break
        name = ""
        if self.tok.kind in (IDENT, STR) and not self.tok.nl:
            name_tok = self.advance()
            name = name_tok.text if name_tok.kind == IDENT else str(name_tok.value)
            last = name_tok
        optional = False
        if self.tok.kind == "?" and self.adjacent(last):
            optional = True
            self.advance()
        default: Expr | None = None
        if self.tok.kind == "=" and not self.tok.nl:
            self.advance()
            default = self.parse_expr()
        filters: tuple[InputFilter, ...] = ()
        if self.tok.kind == RAW:
            filters = self.input_filters(self.advance())
        attrs: list[Attr] = []
        schema: tuple[InputParam, ...] | None = None
        if self.tok.kind == "{" and not self.tok.nl:
            opener = self.advance()
            self.enter(opener)
            seen: dict[str, Token] = {}
            while self.tok.kind != "}":
                if self.tok.kind == EOF:
                    self.unclosed("}", opener, f'input "{name}"')
                if self.parse_attr(attrs, seen, f'input "{name}"'):
                    continue
                if self.is_word("schema") and self.peek().kind == "{":
                    self.advance()
                    schema = self.parse_inputs()
                    continue
                self.fail(
                    f'expected "key = value" or "schema {{ … }}" in the input "{name}", '
                    f"found {_describe(self.tok)}"
                )
            self.advance()
            self.depth -= 1
        return InputParam(
            type=type_tok.text,
            name=name,
            nullable=nullable,
            optional=optional or default is not None,
            is_list=is_list,
            list_bounds=bounds,
            default=default,
            filters=filters,
            attrs=tuple(attrs),
            schema=schema,
            line=type_tok.line,
            column=type_tok.column,
        )

    def input_filters(self, tok: Token) -> tuple[InputFilter, ...]:
        filters: list[InputFilter] = []
        offset = 0
        for part in tok.text.split("|"):
            column = tok.column + offset
            offset += len(part) + 1
            if not part:
                self.fail("empty filter name in filters=", tok)
            if part.startswith("!"):  # a disabled input filter
                continue
            name, *args = part.split(":")
            filters.append(InputFilter(name=name, args=tuple(args), line=tok.line, column=column))
        return tuple(filters)

    def end_of_document(self, kind: str) -> None:
        tok = self.tok
        if tok.kind == EOF:
            return
        if tok.kind == "-" and self.text.startswith("---", tok.pos):
            self.fail(
                f'a .xs file holds one construct, but a "---" line follows the {kind}: '
                "split a multidoc export into one file per document"
            )
        if tok.kind == IDENT:
            self.fail(f'a .xs file holds one construct; a second one ("{tok.text}") starts here')
        self.fail(f"unexpected {_describe(tok)} after the end of the {kind}")


_CONTROL: Final[dict[str, Callable[[_StmtParser, Token, bool], Stmt]]] = {
    "conditional": _StmtParser.parse_conditional,
    "switch": _StmtParser.parse_switch,
    "foreach": _StmtParser.parse_foreach,
    "for": _StmtParser.parse_for,
    "while": _StmtParser.parse_while,
    "try_catch": _StmtParser.parse_try_catch,
    "group": _StmtParser.parse_group_stmt,
    "db.transaction": _StmtParser.parse_transaction,
    "return": _StmtParser.parse_return,
    "precondition": _StmtParser.parse_precondition,
    "throw": _StmtParser.parse_throw,
    "break": _StmtParser.parse_break,
    "continue": _StmtParser.parse_continue,
    "foreach.remove": _StmtParser.parse_remove,
    "remove": _StmtParser.parse_remove,
}


def _comment_description(comments: list[Comment], before_line: int) -> str | None:
    lines = [
        c.text[1:] if c.text.startswith(" ") else c.text for c in comments if c.line < before_line
    ]
    return "\n".join(lines) if lines else None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_expr(value: object) -> Expr | None:
    return value if isinstance(value, Expr) else None


def _str_tuple(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, tuple) else ()


def _stmt_tuple(value: object) -> tuple[Stmt, ...]:
    return tuple(v for v in value if isinstance(v, Stmt)) if isinstance(value, tuple) else ()


def _events(value: object) -> tuple[Event, ...] | None:
    if not isinstance(value, tuple):
        return None
    return tuple(v for v in value if isinstance(v, Event))


def _history(value: object) -> bool | int | str | None:
    return value if isinstance(value, bool | int | str) else None


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
