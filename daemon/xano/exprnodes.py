"""XanoScript AST, expressions: the `Node` base, the expression nodes and their dump helpers.

Every node carries `line` and `column` of its first token, except `Binary`, `Ternary` and
`Filter`, which sit at their operator (`|` for a filter) so an evaluation error can point at it.
`repr(node)` is `node.dump()`: a compact S-expression such as `(|add $x (* 1 2))`, used by the
tests and handy when debugging the compiler.

Decisions the parser's users rely on:
- decimals are `Decimal`, not float: the AST keeps exactly what the file says (`0.10` stays
  `0.10`); the compiler picks the run-time type (PHP-like float arithmetic, XANOSCRIPT.md §6.25).
- `$var.name` is `Var("name")`; `$$` and `$this` are both `Special("this")`; `Special` is only for
  the namespaces `$input`, `$env`, `$auth`, `$var` and the element `$this`. Names that a context
  binds (`$error` in catch, `$index`/`$parent`/`$result` in higher-order filters, `$output` in
  addons) are plain `Var`s: a `for` loop may well say `each as $index`, so scope decides, not
  syntax.
- `.0` (numeric dot segment) is `Index(IntLit(0))`, the same as `[0]`.
- `~` is one operator; whether it concatenates or regex-matches (inside a db `where`) is for the
  compiler to decide by context (§6.17). Likewise `=` is kept as its own operator (alias of `==`
  in a where, assignment in expression mode).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal

_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_0-9][A-Za-z0-9_]*)*\Z")


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _key(text: str) -> str:
    return text if _SIMPLE_KEY.match(text) else _q(text)


def _join(head: str, parts: list[str]) -> str:
    return "(" + " ".join([head, *parts]) + ")"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Node:
    """Base of every node: where it starts in the file (1-based)."""

    line: int
    column: int

    def dump(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.dump()


# --- expressions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Expr(Node):
    """Base of expression nodes."""


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class IntLit(Expr):
    value: int

    def dump(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class DecimalLit(Expr):
    value: Decimal

    def dump(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class StrLit(Expr):
    value: str

    def dump(self) -> str:
        return _q(self.value)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class BoolLit(Expr):
    value: bool

    def dump(self) -> str:
        return "true" if self.value else "false"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class NullLit(Expr):
    def dump(self) -> str:
        return "null"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class NowLit(Expr):
    """The `now` keyword (current time, epoch ms, evaluated per use)."""

    def dump(self) -> str:
        return "now"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Ident(Expr):
    """A bare word used as a value (`history = all`); the compiler decides whether it is valid."""

    name: str

    def dump(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Var(Expr):
    """A stack variable: `$name` or `$var.name`."""

    name: str

    def dump(self) -> str:
        return "$" + self.name


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Special(Expr):
    """A namespace or the element: `input`, `env`, `auth`, `var` (bare `$var`), `this` (`$$`)."""

    name: str

    def dump(self) -> str:
        return "$" + self.name


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Anchor(Expr):
    """`$0`, `$1`, …: a level of the current path in expression mode (§3.5)."""

    level: int

    def dump(self) -> str:
        return f"${self.level}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class DbRef(Expr):
    """A column reference `$db.table.column` (meaningful only in db query clauses); a bare
    `$db.alias` (a joined row, as JSON operand) has no column."""

    table: str
    column_name: str | None

    def dump(self) -> str:
        if self.column_name is None:
            return f"$db.{self.table}"
        return f"$db.{self.table}.{self.column_name}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Segment(Node):
    """Base of path segments."""


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Field(Segment):
    """`.name` (also `.$remote_ip` under `$env`)."""

    name: str

    def dump(self) -> str:
        return "." + (self.name if self.name.startswith("$") else _key(self.name))


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Index(Segment):
    """`[expr]` or a numeric dot segment `.0`; a negative index counts from the end."""

    index: Expr

    def dump(self) -> str:
        return f"[{self.index.dump()}]"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Where(Segment):
    """`[cond]` array filter of expression mode (§3.5): keeps elements where cond holds."""

    cond: Expr

    def dump(self) -> str:
        return f"[? {self.cond.dump()}]"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Path(Expr):
    """A value followed by field, index or array-filter segments."""

    base: Expr
    segments: tuple[Segment, ...]

    def dump(self) -> str:
        return self.base.dump() + "".join(s.dump() for s in self.segments)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Unary(Expr):
    """`!x` or `-x`."""

    op: str
    operand: Expr

    def dump(self) -> str:
        return _join(self.op, [self.operand.dump()])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Binary(Expr):
    """`left op right`; `op` is the operator as written (`==`, `~`, `not in`, `..`, `@>`…).

    `null_ignore` is the db `?` suffix (`==?`, `in?`): drop the condition when the right
    operand is null.
    """

    op: str
    left: Expr
    right: Expr
    null_ignore: bool = False

    def dump(self) -> str:
        op = self.op + "?" if self.null_ignore else self.op
        return _join(op, [self.left.dump(), self.right.dump()])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Ternary(Expr):
    cond: Expr
    then: Expr
    otherwise: Expr

    def dump(self) -> str:
        return _join("?", [self.cond.dump(), self.then.dump(), self.otherwise.dump()])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Filter(Expr):
    """`subject|name:arg:arg`; `subject` is None for a value that starts with `|` (`|uuid`)."""

    name: str
    subject: Expr | None
    args: tuple[Expr, ...]

    def dump(self) -> str:
        subject = self.subject.dump() if self.subject is not None else "_"
        return _join("|" + self.name, [subject, *(a.dump() for a in self.args)])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Cast(Expr):
    """`!int "42"`, `!text …`, `!expr …`: `to` is the type word without the `!`."""

    to: str
    operand: Expr

    def dump(self) -> str:
        return _join("!" + self.to, [self.operand.dump()])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Spread(Expr):
    """`...value` inside an array or object literal (expression mode, §3.5)."""

    value: Expr

    def dump(self) -> str:
        return "..." + self.value.dump()


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ArrayLit(Expr):
    items: tuple[Expr, ...]

    def dump(self) -> str:
        return "[" + " ".join(i.dump() for i in self.items) + "]"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Entry(Node):
    """`key: value` in an object literal; dotted keys (`t.col`) are kept joined."""

    key: str
    value: Expr

    def dump(self) -> str:
        return f"{_key(self.key)}: {self.value.dump()}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ObjectLit(Expr):
    """An object literal, keys in source order; disabled `!key:` entries are not kept."""

    entries: tuple[Entry | Spread, ...]

    def dump(self) -> str:
        return "{" + ", ".join(e.dump() for e in self.entries) + "}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Backtick(Expr):
    """A `` `…` `` or ```` ```…``` ```` expression; its content is parsed like any expression."""

    expr: Expr
    triple: bool = False

    def dump(self) -> str:
        return _join("`", [self.expr.dump()])
