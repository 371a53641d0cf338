"""Pratt parser for `{{ }}` templates (tokens from expr.tokenizer); the public compile functions."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

from daemon.core.errors import ExpressionError
from daemon.core.text import type_name
from daemon.expr.functions import FUNCTIONS, call_node
from daemon.expr.nodes import (
    Node,
    Reference,
    Template,
    binary_node,
    const_node,
    index_node,
    list_node,
    name_node,
    object_node,
    prop_node,
    ternary_node,
    unary_node,
)
from daemon.expr.pipes import element_node, filter_call, lookup
from daemon.expr.tokenizer import _Tok, _tokenize
from daemon.expr.values import (
    MAX_DEPTH,
    MAX_STRING,
    MAX_TEMPLATE,
    Fn,
    render,
    sized_str,
)

# --- parser ----------------------------------------------------------------------------------

# Binding powers, low to high: ternary, ??, or, and, equality, ordering, + -, * / %, unary,
# postfix (. [ ]). Unary operators parse their operand at _UNARY so `-a.b * c` is (-(a.b)) * c.
_BINARY_BP: Final = {
    "??": 2,
    "||": 3,
    "or": 3,
    "&&": 4,
    "and": 4,
    "==": 5,
    "!=": 5,
    "<": 6,
    "<=": 6,
    ">": 6,
    ">=": 6,
    "+": 7,
    "-": 7,
    "*": 8,
    "/": 8,
    "%": 8,
}
_TERNARY: Final = 1
_UNARY: Final = 9
_POSTFIX: Final = 10


def _describe(tok: _Tok) -> str:
    kind, value, _ = tok
    if kind == "end":
        return "end of expression"
    if kind == "str":
        return "string"
    return f'"{value}"'


class _Parser:
    __slots__ = ("depth", "elem", "in_arg", "pos", "refs", "text", "tokens")

    def __init__(self, tokens: list[_Tok], text: str = "") -> None:
        self.tokens = tokens
        self.text = text
        self.pos = 0
        self.depth = 0
        self.refs: list[Reference] = []
        self.in_arg = False  # parsing a filter argument: a `|` ends it (the chain goes on)
        self.elem: frozenset[str] = frozenset()  # element names bound here ($$, $index…)

    def parse(self) -> Node:
        if self.tokens[0][0] == "end":
            raise ExpressionError("empty expression", column=self.tokens[0][2] + 1)
        node = self.expr(0)
        tok = self.tokens[self.pos]
        if tok[0] != "end":
            if tok[1] == "(":
                raise ExpressionError("only named functions can be called", column=tok[2] + 1)
            raise ExpressionError(f"unexpected {_describe(tok)}", column=tok[2] + 1)
        return node

    def advance(self) -> _Tok:
        tok = self.tokens[self.pos]
        if tok[0] != "end":
            self.pos += 1
        return tok

    def expect(self, op: str) -> _Tok:
        tok = self.tokens[self.pos]
        if tok[0] != "op" or tok[1] != op:
            raise ExpressionError(f'expected "{op}", found {_describe(tok)}', column=tok[2] + 1)
        self.pos += 1
        return tok

    def at_op(self, op: str) -> bool:
        tok = self.tokens[self.pos]
        return tok[0] == "op" and tok[1] == op

    def expr(self, rbp: int) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            tok = self.tokens[self.pos]
            raise ExpressionError(
                f"expression nested too deeply (limit {MAX_DEPTH})", column=tok[2] + 1
            )
        left = self.prefix()
        while True:
            tok = self.tokens[self.pos]
            kind, value, offset = tok
            if kind == "op" and value in (".", "["):
                self.pos += 1
                left = self.postfix(value, left, offset)
                continue
            if kind == "op" and value == "|":
                if self.in_arg:
                    break  # `x|f:a|g` is g(f(x, a)): the chain applies left to right
                self.pos += 1
                left = self.pipe(left, offset + 1)
                continue
            if kind == "op" and value == "?":
                if rbp >= _TERNARY:
                    break
                self.pos += 1
                then = self.expr(0)
                self.expect(":")
                other = self.expr(0)  # right-associative: a ? b : c ? d : e
                left = ternary_node(left, then, other, offset + 1)
                continue
            if kind in ("op", "name") and value in _BINARY_BP:
                if kind == "name" and value not in ("and", "or"):
                    break
                bp = _BINARY_BP[value]
                if bp <= rbp:
                    break
                self.pos += 1
                right = self.expr(bp)
                left = binary_node(value, left, right, offset + 1)
                continue
            break
        self.depth -= 1
        return left

    def pipe(self, subject: Node, column: int) -> Node:
        """`subject|filter:arg:arg` (daemon.expr.filters, XanoScript's library). An argument
        is an expression up to the next `:` or `|`; a `:` with a space before it is a
        ternary's, so `c ? x|round : y` reads as in the rest of the language."""
        tok = self.advance()
        if tok[0] != "name":
            raise ExpressionError(
                f'expected a filter name after "|", found {_describe(tok)}', column=tok[2] + 1
            )
        fd = lookup(tok[1], tok[2] + 1)
        args: list[Node] = []
        saved = (self.in_arg, self.elem)
        try:
            while self.at_op(":") and self.adjacent(self.tokens[self.pos][2]):
                self.pos += 1
                self.in_arg = True
                if fd.higher_order and not args:
                    names = {"this", "index", "parent"} | (
                        {"result"} if fd.name == "reduce" else set()
                    )
                    self.elem = frozenset(names)
                args.append(self.expr(_TERNARY))
                self.elem = saved[1]
        finally:
            self.in_arg, self.elem = saved
        try:
            fd.check_arity(len(args))
        except ExpressionError as exc:
            raise ExpressionError(exc.message, column=tok[2] + 1) from None
        return filter_call(fd, subject, args, column, evaluator=_evaluate_text)

    def adjacent(self, offset: int) -> bool:
        return offset > 0 and not self.text[offset - 1].isspace()

    def nested(self) -> tuple[bool, frozenset[str]]:
        """Inside brackets a `|` is a filter again; returns what to restore."""
        saved = (self.in_arg, self.elem)
        self.in_arg = False
        return saved

    def postfix(self, op: str, left: Node, offset: int) -> Node:
        if op == ".":
            tok = self.tokens[self.pos]
            if tok[0] != "name":
                raise ExpressionError(
                    f'expected a property name after ".", found {_describe(tok)}',
                    column=tok[2] + 1,
                )
            self.pos += 1
            return prop_node(left, tok[1], tok[2] + 1)
        saved = self.nested()
        key = self.expr(0)
        self.in_arg, self.elem = saved
        self.expect("]")
        return index_node(left, key, offset + 1)

    def prefix(self) -> Node:
        tok = self.advance()
        kind, value, offset = tok
        column = offset + 1
        if kind in ("num", "str"):
            return const_node(value)
        if kind == "name":
            if value == "true":
                return const_node(True)
            if value == "false":
                return const_node(False)
            if value == "null":
                return const_node(None)
            if value == "not":
                return unary_node("!", self.expr(_UNARY), column)
            if value in ("and", "or"):
                raise ExpressionError(f'unexpected "{value}"', column=column)
            if self.at_op("("):
                return self.call(value, column)
            self.refs.append(Reference(value, column))
            return name_node(value, column)
        if kind == "elem":
            if value not in self.elem:
                raise ExpressionError(
                    f"${'$' if value == 'this' else value} only means something in an argument"
                    " of a filter like map, filter or reduce",
                    column=column,
                )
            return element_node(value)
        if kind == "op":
            if value == "(":
                saved = self.nested()
                inner = self.expr(0)
                self.in_arg, self.elem = saved
                self.expect(")")
                return inner
            if value in ("-", "!"):
                operand = self.expr(_UNARY)
                return unary_node(value, operand, column)
            if value == "[":
                return self.list_literal(column)
            if value == "{":
                return self.object_literal(column)
        raise ExpressionError(f"unexpected {_describe(tok)}", column=column)

    def call(self, name: str, column: int) -> Node:
        if name not in FUNCTIONS:
            raise ExpressionError(f'unknown function "{name}"', column=column)
        self.expect("(")
        args: list[Node] = []
        saved = self.nested()
        while not self.at_op(")"):
            args.append(self.expr(0))
            if not self.at_op(")"):
                self.expect(",")
        self.in_arg, self.elem = saved
        self.expect(")")
        return call_node(name, args, column)

    def list_literal(self, column: int) -> Node:
        items: list[Node] = []
        saved = self.nested()
        while not self.at_op("]"):
            items.append(self.expr(0))
            if not self.at_op("]"):
                self.expect(",")  # a trailing comma is fine: [1, 2,]
        self.in_arg, self.elem = saved
        self.expect("]")
        return list_node(items, column)

    def object_literal(self, column: int) -> Node:
        keys: list[str] = []
        values: list[Node] = []
        saved = self.nested()
        while not self.at_op("}"):
            tok = self.advance()
            if tok[0] not in ("str", "name"):
                raise ExpressionError(
                    f"expected an object key, found {_describe(tok)}", column=tok[2] + 1
                )
            keys.append(tok[1])
            self.expect(":")
            values.append(self.expr(0))
            if not self.at_op("}"):
                self.expect(",")
        self.in_arg, self.elem = saved
        self.expect("}")
        return object_node(keys, values, column)


# --- public entry points ---------------------------------------------------------------------


def _parse(text: str, start: int, in_template: bool) -> tuple[Node, list[Reference], int]:
    tokens, end = _tokenize(text, start, in_template)
    parser = _Parser(tokens, text)
    return parser.parse(), parser.refs, end


@lru_cache(maxsize=256)
def _compiled_text(text: str) -> Node:
    return _parse(text, 0, in_template=False)[0]


def _evaluate_text(text: str, scope: Any) -> Any:
    """The `to_expr` filter in a template: the text compiled as an expression, evaluated."""
    return _compiled_text(text).fn(scope)


def _constant(value: Any) -> Template:
    node = const_node(value)
    return Template(source=value, evaluate=node.fn, references=(), constant=True)


def compile_expression(expr: str) -> Template:
    """Compile a bare expression (no braces), e.g. a Conditional's `condition` field."""
    if not isinstance(expr, str):
        raise ExpressionError(f"expression must be a string, got {type_name(expr)}")
    node, refs, _ = _parse(expr, 0, in_template=False)
    return Template(source=expr, evaluate=node.fn, references=tuple(refs), constant=False)


def compile_template(text: str) -> Template:
    """Compile a string that may hold `{{ expr }}` parts.

    Exactly one `{{ }}` spanning the whole string yields the typed value; otherwise the parts
    render into a string (see `render`). A "}}" outside an expression is plain text.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"template must be a string, got {type_name(text)}")
    start = text.find("{{")
    if start < 0:
        return _constant(text)
    if len(text) > MAX_TEMPLATE:
        raise ExpressionError(f"template longer than {MAX_TEMPLATE} characters", column=1)
    # Alternating literal text and expression nodes.
    pieces: list[str | Node] = []
    refs: list[Reference] = []
    pos = 0
    while start >= 0:
        if start > pos:
            pieces.append(text[pos:start])
        node, node_refs, pos = _parse(text, start + 2, in_template=True)
        pieces.append(node)
        refs.extend(node_refs)
        start = text.find("{{", pos)
    if pos < len(text):
        pieces.append(text[pos:])

    if len(pieces) == 1:
        only = pieces[0]
        assert isinstance(only, Node)
        return Template(source=text, evaluate=only.fn, references=tuple(refs), constant=False)
    return Template(
        source=text, evaluate=_text_evaluator(pieces), references=tuple(refs), constant=False
    )


def template_parts(text: str) -> list[str | Callable[[Any], Any]]:
    """A template's literal text and compiled `{{ }}` parts, in order: for callers that treat
    each inserted value by where it lands (URL encoding per component)."""
    parts: list[str | Callable[[Any], Any]] = []
    pos = 0
    start = text.find("{{")
    while start >= 0:
        if start > pos:
            parts.append(text[pos:start])
        node, _refs, pos = _parse(text, start + 2, in_template=True)
        parts.append(node.fn)
        start = text.find("{{", pos)
    if pos < len(text):
        parts.append(text[pos:])
    return parts


def _text_evaluator(pieces: list[str | Node]) -> Callable[[Any], Any]:
    # Render constants now and merge neighbouring text, leaving only the dynamic parts.
    merged: list[str | Fn] = []
    pending: list[str] = []  # joined once per run of text: "+=" would be quadratic
    for piece in pieces:
        if isinstance(piece, Node) and not piece.const:
            if pending:
                merged.append("".join(pending))
                pending = []
            merged.append(piece.fn)
        else:
            pending.append(render(piece.value) if isinstance(piece, Node) else piece)
    if pending:
        merged.append("".join(pending))
    if len(merged) == 1 and isinstance(merged[0], str):
        result = merged[0]
        return lambda ctx: result
    # Shape it as head + (value, text) pairs, then specialize the common one- and two-value
    # cases: they avoid a list and a join per evaluation.
    first = merged[0]
    head = ""
    if isinstance(first, str):
        head = first
        merged.pop(0)
    pairs: list[tuple[Fn, str]] = []
    for item in merged:
        if isinstance(item, str):
            pairs[-1] = (pairs[-1][0], item)
        else:
            pairs.append((item, ""))
    fixed = len(head) + sum(len(text) for _, text in pairs)
    room = MAX_STRING - fixed
    if len(pairs) == 1:
        ((f1, t1),) = pairs

        def render_one(ctx: Any) -> str:
            v = f1(ctx)
            if type(v) is not str:
                v = render(v)
            if len(v) > room:
                sized_str(fixed + len(v), 1)
            return head + v + t1

        return render_one
    if len(pairs) == 2:
        (f1, t1), (f2, t2) = pairs

        def render_two(ctx: Any) -> str:
            v1 = f1(ctx)
            if type(v1) is not str:
                v1 = render(v1)
            v2 = f2(ctx)
            if type(v2) is not str:
                v2 = render(v2)
            if len(v1) + len(v2) > room:
                sized_str(fixed + len(v1) + len(v2), 1)
            return head + v1 + t1 + v2 + t2

        return render_two
    parts = (head, *merged)

    def render_text(ctx: Any) -> str:
        out = [p if type(p) is str else render(p(ctx)) for p in parts]  # type: ignore[operator]
        sized_str(sum(map(len, out)), 1)
        return "".join(out)

    return render_text


def compile_value(value: Any) -> Template:
    """Compile a field value: strings are templates, dicts and lists are walked (keys stay
    literal), a Template compiled elsewhere (XanoScript) is taken as it is, anything else is a
    constant."""
    if isinstance(value, str):
        return compile_template(value)
    if type(value) is Template:
        return value
    if isinstance(value, dict):
        items = [(k, compile_value(v)) for k, v in value.items()]
        if all(t.constant for _, t in items):
            return _constant(value)
        pairs = tuple((k, t.evaluate) for k, t in items)
        refs = tuple(r for _, t in items for r in t.references)
        return Template(
            source=value,
            evaluate=lambda ctx: {k: f(ctx) for k, f in pairs},
            references=refs,
            constant=False,
        )
    if isinstance(value, list | tuple):
        compiled = [compile_value(v) for v in value]
        if all(t.constant for t in compiled):
            return _constant(value if isinstance(value, list) else list(value))
        fns = tuple(t.evaluate for t in compiled)
        return Template(
            source=value,
            evaluate=lambda ctx: [f(ctx) for f in fns],
            references=tuple(r for t in compiled for r in t.references),
            constant=False,
        )
    return _constant(value)


def is_template(value: Any) -> bool:
    """True when a literal holds `{{` anywhere (a string, or inside a dict or list), or is a
    compiled Template (XanoScript), so a step evaluates it rather than reading it as written."""
    if isinstance(value, str):
        return "{{" in value
    if type(value) is Template:
        return True  # compiled elsewhere: the step evaluates it (constant or not)
    if isinstance(value, dict):
        return any(is_template(v) for v in value.values())
    if isinstance(value, list):
        return any(is_template(v) for v in value)
    return False
