"""XanoScript AST: statement and document nodes, `walk`, and the expression nodes re-exported.

The expression nodes and the `Node` base live in `exprnodes`; this module re-exports them so
`from daemon.xano import nodes as x` names the whole tree (`x.IntLit`, `x.Call`, `x.TaskDoc`).
Positions and `repr(node)` (the S-expression of `node.dump()`) work as `exprnodes` describes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TypeAlias

from daemon.core.errors import Issue
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
    Node,
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
    _join,
    _q,
)

__all__ = [
    "Anchor",
    "ArrayLit",
    "Attr",
    "Backtick",
    "Binary",
    "Block",
    "BoolLit",
    "Branch",
    "Break",
    "Call",
    "Case",
    "Cast",
    "Conditional",
    "Continue",
    "DbRef",
    "DecimalLit",
    "Document",
    "Entry",
    "Event",
    "Expr",
    "Field",
    "Filter",
    "For",
    "Foreach",
    "FunctionDoc",
    "Group",
    "Ident",
    "Index",
    "InputFilter",
    "InputParam",
    "IntLit",
    "Name",
    "Node",
    "NowLit",
    "NullLit",
    "ObjectLit",
    "OtherDoc",
    "Path",
    "Precondition",
    "Remove",
    "Return",
    "Segment",
    "Special",
    "Spread",
    "Stmt",
    "StrLit",
    "Switch",
    "TaskDoc",
    "Ternary",
    "Throw",
    "Transaction",
    "TryCatch",
    "Unary",
    "Var",
    "Where",
    "While",
    "walk",
]


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
