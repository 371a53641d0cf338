"""XanoScript parser, expressions: operators by precedence, operands, filters, paths and literals.

Binary operators by an operator stack (so long operator chains cost no recursion), the rest by
recursive descent. The rules a reader of this file needs (XANOSCRIPT.md section numbers in
brackets):

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
- A disabled object key (`!key: v`) or filter (`|!f`) is parsed (so errors in it are reported)
  and then dropped.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, NoReturn

from daemon.xano.cursor import _Cursor, _describe
from daemon.xano.exprnodes import (
    Anchor,
    ArrayLit,
    Backtick,
    Binary,
    BoolLit,
    Cast,
    DbRef,
    DecimalLit,
    Entry,
    Expr,
    Field,
    Filter,
    Ident,
    Index,
    IntLit,
    NowLit,
    NullLit,
    ObjectLit,
    Path,
    Segment,
    Special,
    Spread,
    StrLit,
    Ternary,
    Unary,
    Var,
    Where,
)
from daemon.xano.lexer import BT_CLOSE, BT_OPEN, DEC, EOF, IDENT, INT, RAW, STR, TS, VAR, Token
from daemon.xano.nodes import walk

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


def _is_condition(expr: Expr) -> bool:
    """Whether `$arr[expr]` filters the array rather than indexing it (see module docstring)."""
    if isinstance(expr, Binary) and expr.op not in _VALUE_OPS:
        return True
    if isinstance(expr, Unary) and expr.op == "!":
        return True
    return any(isinstance(node, Special) and node.name == "this" for node in walk(expr))


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
