"""XanoScript parser, statements: stacks, attribute blocks, calls and the control statements.

Recursive descent over the expression layer (`exprparse`). The rules a reader of this file needs:

- Control statements get their own nodes; every other statement is a `Call`. A statement's
  target, `if (…)` and `{` must be on the statement's line; `as $x` may follow anywhere.
- Attribute keys may appear once per block, except `arg` (db.direct_query's repeatable one).
- A disabled attribute (`!key = v`) is parsed (so errors in it are reported) and then dropped; a
  disabled statement is kept with `disabled=True` so the compiler can list it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NoReturn

from daemon.xano.cursor import _describe
from daemon.xano.exprparse import _ExprParser
from daemon.xano.lexer import BT_OPEN, EOF, IDENT, INT, STR, VAR, Token
from daemon.xano.nodes import (
    Attr,
    Block,
    Branch,
    Break,
    Call,
    Case,
    Conditional,
    Continue,
    Expr,
    Field,
    For,
    Foreach,
    Group,
    Index,
    IntLit,
    Name,
    Path,
    Precondition,
    Remove,
    Return,
    Stmt,
    Switch,
    Throw,
    Transaction,
    TryCatch,
    Var,
    While,
)

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
