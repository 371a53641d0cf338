"""XanoScript AST: frozen, slotted node classes with 1-based positions, and their S-expression dump.

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
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import TypeAlias

from daemon.core.errors import Issue

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


# --- statements ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Attr(Node):
    """`key = value` inside a statement's block."""

    key: str
    value: Expr

    def dump(self) -> str:
        return f"({self.key} {self.value.dump()})"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Stmt(Node):
    """Base of statements: `attrs` are the `key = value` lines of its block (description,
    disabled, value, error_type…) in source order; `disabled` is the `!` prefix."""

    attrs: tuple[Attr, ...] = ()
    disabled: bool = False

    def attr(self, key: str) -> Expr | None:
        """The value of attribute `key`, or None when absent."""
        for a in self.attrs:
            if a.key == key:
                return a.value
        return None

    def attr_all(self, key: str) -> tuple[Expr, ...]:
        """Every value of a repeatable attribute (`arg` of direct_query), in order."""
        return tuple(a.value for a in self.attrs if a.key == key)

    def _head(self, name: str) -> str:
        return "!" + name if self.disabled else name

    def _attrs(self) -> list[str]:
        return [a.dump() for a in self.attrs]


def _stmts(stmts: tuple[Stmt, ...]) -> list[str]:
    return [s.dump() for s in stmts]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Name(Node):
    """A statement target written as a name: `user`, `"user"`, or a static path `a/b`."""

    value: str
    quoted: bool = False

    def dump(self) -> str:
        return _q(self.value) if self.quoted else self.value


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Block(Node):
    """A nested named block inside a statement's block: `stack { … }` or `name { key = … }`."""

    name: str
    attrs: tuple[Attr, ...] = ()
    blocks: tuple[Block, ...] = ()
    stack: tuple[Stmt, ...] | None = None

    def dump(self) -> str:
        parts = [a.dump() for a in self.attrs] + [b.dump() for b in self.blocks]
        if self.stack is not None:
            parts += _stmts(self.stack)
        return _join(self.name, parts)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Call(Stmt):
    """Any statement that is not control flow: `name [target] [if (cond)] [{…}] [as $var]`.

    `target` is a `Name` (identifier, quoted string, `a/b` path) or an `Expr` (a variable path
    or a parenthesised expression); `condition` is the `if (…)` of `array.find`-like statements.
    """

    name: str
    target: Name | Expr | None = None
    condition: Expr | None = None
    blocks: tuple[Block, ...] = ()
    as_var: Expr | None = None

    def dump(self) -> str:
        parts: list[str] = []
        if self.target is not None:
            parts.append(self.target.dump())
        if self.condition is not None:
            parts.append(f"(if {self.condition.dump()})")
        parts += self._attrs() + [b.dump() for b in self.blocks]
        if self.as_var is not None:
            parts += ["->", self.as_var.dump()]
        return _join(self._head(self.name), parts)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Branch(Node):
    """`if (cond) { … }` or `elseif (cond) { … }` of a conditional (an omitted body is empty)."""

    keyword: str
    cond: Expr
    body: tuple[Stmt, ...]

    def dump(self) -> str:
        return _join(self.keyword, [self.cond.dump(), *_stmts(self.body)])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Conditional(Stmt):
    branches: tuple[Branch, ...]
    else_body: tuple[Stmt, ...] | None = None

    def dump(self) -> str:
        parts = self._attrs() + [b.dump() for b in self.branches]
        if self.else_body is not None:
            parts.append(_join("else", _stmts(self.else_body)))
        return _join(self._head("conditional"), parts)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Case(Node):
    """`case (value) { … } [break]`."""

    value: Expr
    body: tuple[Stmt, ...]
    has_break: bool

    def dump(self) -> str:
        tail = ["break"] if self.has_break else []
        return _join("case", [self.value.dump(), *_stmts(self.body), *tail])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Switch(Stmt):
    subject: Expr
    cases: tuple[Case, ...]
    default: tuple[Stmt, ...] | None = None

    def dump(self) -> str:
        parts = [self.subject.dump(), *self._attrs(), *(c.dump() for c in self.cases)]
        if self.default is not None:
            parts.append(_join("default", _stmts(self.default)))
        return _join(self._head("switch"), parts)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Foreach(Stmt):
    """`foreach (iterable) { each as $item { body } }`; `item` is the name without `$`."""

    iterable: Expr
    item: str
    body: tuple[Stmt, ...]

    def dump(self) -> str:
        parts = [self.iterable.dump(), "$" + self.item, *self._attrs(), *_stmts(self.body)]
        return _join(self._head("foreach"), parts)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class For(Stmt):
    """`for (count) { each as $index { body } }`."""

    count: Expr
    index: str
    body: tuple[Stmt, ...]

    def dump(self) -> str:
        parts = [self.count.dump(), "$" + self.index, *self._attrs(), *_stmts(self.body)]
        return _join(self._head("for"), parts)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class While(Stmt):
    """`while (cond) { each { body } }`."""

    cond: Expr
    body: tuple[Stmt, ...]

    def dump(self) -> str:
        parts = [self.cond.dump(), *self._attrs(), *_stmts(self.body)]
        return _join(self._head("while"), parts)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class TryCatch(Stmt):
    try_body: tuple[Stmt, ...]
    catch_body: tuple[Stmt, ...] | None = None
    finally_body: tuple[Stmt, ...] | None = None

    def dump(self) -> str:
        parts = [*self._attrs(), _join("try", _stmts(self.try_body))]
        if self.catch_body is not None:
            parts.append(_join("catch", _stmts(self.catch_body)))
        if self.finally_body is not None:
            parts.append(_join("finally", _stmts(self.finally_body)))
        return _join(self._head("try_catch"), parts)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Group(Stmt):
    """`group { description = … stack { … } }`: runs its stack inline, no new scope."""

    stack: tuple[Stmt, ...]

    def dump(self) -> str:
        return _join(self._head("group"), [*self._attrs(), *_stmts(self.stack)])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Transaction(Stmt):
    """`db.transaction { stack { … } }`."""

    stack: tuple[Stmt, ...]

    def dump(self) -> str:
        return _join(self._head("db.transaction"), [*self._attrs(), *_stmts(self.stack)])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Return(Stmt):
    """`return { value = … }` (value in `attrs`; a bare `return` has none)."""

    def dump(self) -> str:
        return _join(self._head("return"), self._attrs())


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Precondition(Stmt):
    """`precondition (cond) { error_type = … error = … payload = … }`."""

    cond: Expr

    def dump(self) -> str:
        return _join(self._head("precondition"), [self.cond.dump(), *self._attrs()])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Throw(Stmt):
    """`throw { name = … value = … }`."""

    def dump(self) -> str:
        return _join(self._head("throw"), self._attrs())


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Break(Stmt):
    def dump(self) -> str:
        return _join(self._head("break"), [])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Continue(Stmt):
    def dump(self) -> str:
        return _join(self._head("continue"), [])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Remove(Stmt):
    """`foreach.remove` (newer docs: bare `remove`): drop the current element."""

    def dump(self) -> str:
        return _join(self._head("remove"), [])


# --- documents -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Event(Node):
    """One schedule event: fires at starts_on + k·freq up to ends_on (aware datetimes)."""

    starts_on: datetime
    freq: int | None = None
    ends_on: datetime | None = None

    def dump(self) -> str:
        parts = [self.starts_on.isoformat(), str(self.freq) if self.freq is not None else "-"]
        if self.ends_on is not None:
            parts.append(self.ends_on.isoformat())
        return _join("event", parts)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputFilter(Node):
    """One `filters=` entry of an input declaration: `min:1` → name "min", args ("1",).

    Arguments stay raw text: they are validation parameters (`pattern:^\\d+$`, `ok:abc`), not
    expressions.
    """

    name: str
    args: tuple[str, ...] = ()

    def dump(self) -> str:
        return ":".join([self.name, *self.args])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputParam(Node):
    """One declaration of a function's `input { … }` block (§4.7, §6.51).

    `text? name?="x" filters=trim { description = "…" }`: `nullable` is the `?` after the type,
    `optional` the `?` after the name; `is_list`/`list_bounds` come from `text[]` / `int[1:10]`;
    `schema` holds the nested declarations of `object x { schema { … } }`.
    """

    type: str
    name: str
    nullable: bool = False
    optional: bool = False
    is_list: bool = False
    list_bounds: str | None = None
    default: Expr | None = None
    filters: tuple[InputFilter, ...] = ()
    attrs: tuple[Attr, ...] = ()
    schema: tuple[InputParam, ...] | None = None

    def dump(self) -> str:
        list_part = f"[{self.list_bounds or ''}]" if self.is_list else ""
        parts = [self.type + list_part + ("?" if self.nullable else "")]
        if self.name:
            parts.append(self.name + ("?" if self.optional else ""))
        if self.default is not None:
            parts.append(f"(default {self.default.dump()})")
        if self.filters:
            parts.append(_join("filters", [f.dump() for f in self.filters]))
        parts += [a.dump() for a in self.attrs]
        if self.schema is not None:
            parts.append(_join("schema", [p.dump() for p in self.schema]))
        return _join("param", parts)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class TaskDoc(Node):
    """A `task` document.

    `description` is the `description =` setting, else the `//` lines above `task` (newer
    exports), else None. `active` defaults to True (§6.1). `datasource` None means "live" to the
    loader. `schedule` is None when the task has none, `()` for `schedule = []` / a bare
    `schedule`. `history` is `"inherit"`, `"all"`, a bool or an int (`{inherit: true}` reads as
    `"inherit"`). `middleware` stays an expression for the loader to read. Unknown settings are
    skipped and reported in `warnings`.
    """

    name: str
    description: str | None = None
    active: bool = True
    datasource: str | None = None
    tags: tuple[str, ...] = ()
    history: bool | int | str | None = None
    docs: str | None = None
    guid: str | None = None
    middleware: Expr | None = None
    schedule: tuple[Event, ...] | None = None
    stack: tuple[Stmt, ...] = ()
    warnings: tuple[Issue, ...] = ()

    def dump(self) -> str:
        parts = [_q(self.name)]
        if self.description is not None:
            parts.append(f"(description {_q(self.description)})")
        if not self.active:
            parts.append("(active false)")
        if self.datasource is not None:
            parts.append(f"(datasource {_q(self.datasource)})")
        if self.schedule is not None:
            parts.append(_join("schedule", [e.dump() for e in self.schedule]))
        parts.append(_join("stack", _stmts(self.stack)))
        return _join("task", parts)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class FunctionDoc(Node):
    """A `function` document: what `function.run` calls, by its declared name (may hold `/`).

    `response` is `response = expr` (or the old `response { value = expr }`).
    """

    name: str
    description: str | None = None
    inputs: tuple[InputParam, ...] = ()
    stack: tuple[Stmt, ...] = ()
    response: Expr | None = None
    tags: tuple[str, ...] = ()
    history: bool | int | str | None = None
    docs: str | None = None
    guid: str | None = None
    warnings: tuple[Issue, ...] = ()

    def dump(self) -> str:
        parts = [_q(self.name), _join("input", [p.dump() for p in self.inputs])]
        parts.append(_join("stack", _stmts(self.stack)))
        if self.response is not None:
            parts.append(f"(response {self.response.dump()})")
        return _join("function", parts)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class OtherDoc(Node):
    """Any other construct (table, api, query, addon, middleware, workspace…): only its keyword
    and name are read; the loader skips it with a note."""

    kind: str
    name: str
    warnings: tuple[Issue, ...] = ()

    def dump(self) -> str:
        return _join(self.kind, [_q(self.name)])


Document: TypeAlias = TaskDoc | FunctionDoc | OtherDoc

_FIELDS: dict[type, tuple[str, ...]] = {}


def walk(node: Node) -> Iterator[Node]:
    """Every node in the tree under `node` (itself included), parents before children."""
    todo: list[Node] = [node]
    while todo:
        current = todo.pop()
        yield current
        names = _FIELDS.get(type(current))
        if names is None:
            names = _FIELDS[type(current)] = tuple(f.name for f in fields(current))
        children: list[Node] = []
        for name in names:
            value = getattr(current, name)
            if isinstance(value, Node):
                children.append(value)
            elif isinstance(value, tuple):
                children.extend(v for v in value if isinstance(v, Node))
        todo.extend(reversed(children))
