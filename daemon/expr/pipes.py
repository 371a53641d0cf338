"""Filter calls as compiled nodes: `value|filter:arg` in `{{ }}` templates and XanoScript alike.

One library for both formats: a filter of `daemon.expr.filters` called on a subject node with
argument nodes. A higher-order filter's first argument (`map:$$.total`) is compiled once and
evaluated per element in an `ElemScope`: the run's variables and built-ins with the element
(`$$` / `$this`), `$index`, `$parent` and reduce's `$result` on top. Filters that need the run
(time zone, clock, `to_expr`) get a `FilterEnv` over it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from daemon.core.errors import ExpressionError
from daemon.core.millis import Millis
from daemon.core.text import did_you_mean
from daemon.expr.nodes import Node, combine

if TYPE_CHECKING:
    from daemon.expr.filters import FilterDef

# Names a higher-order filter's argument may read; `result` only in reduce.
ELEMENT_NAMES = ("this", "index", "parent", "result")


class ElemScope:
    """The scope of a higher-order filter's argument (see the module docstring)."""

    __slots__ = ("index", "item", "outer", "parent", "result", "tz", "vars")

    def __init__(self, outer: Any) -> None:
        self.outer = outer
        self.vars = outer.vars
        self.tz = outer.tz
        self.item: Any = None
        self.index: Any = None
        self.parent: Any = None
        self.result: Any = None

    def builtin(self, name: str) -> Any:
        return self.outer.builtin(name)


def element_node(name: str) -> Node:
    """`$$` / `$this` (name "this"), `$index`, `$parent` or `$result` inside a filter argument."""
    attr = "item" if name == "this" else name

    def get(ctx: Any) -> Any:
        return getattr(ctx, attr)

    return Node(get, 1)


TextEvaluator = Callable[[str, Any], Any]


class FilterEnv:
    """`daemon.expr.filters.FilterContext` over a run's scope: its time zone (when a filter's
    own time zone argument is left out), the clock, and `to_expr` compiled by the language the
    template is written in (never `eval`)."""

    __slots__ = ("evaluator", "scope", "tz")

    def __init__(self, scope: Any, evaluator: TextEvaluator, tz: Any = None) -> None:
        self.scope = scope
        self.evaluator = evaluator
        self.tz = tz if tz is not None else getattr(scope, "tz", None)

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def evaluate_text(self, text: str) -> Any:
        return self.evaluator(text, self.scope)


def lookup(name: str, column: int | None = None) -> FilterDef:
    """The filter called `name`; ExpressionError for one that cannot run or does not exist."""
    # The filter library (~300 filters) loads with the first template that pipes a value:
    # a daemon without one starts ~0.1 s sooner.
    from daemon.expr.filters import FILTERS, UNSUPPORTED_FILTERS

    found = FILTERS.get(name)
    if found is not None:
        return found
    if name in UNSUPPORTED_FILTERS:
        raise ExpressionError(
            f'filter "{name}" cannot run here: {UNSUPPORTED_FILTERS[name]}', column=column
        )
    raise ExpressionError(f'unknown filter "{name}"{did_you_mean(name, FILTERS)}', column=column)


def filter_call(
    fd: FilterDef,
    subject: Node,
    args: list[Node],
    column: int,
    *,
    evaluator: TextEvaluator,
    tz: Any = None,
) -> Node:
    """A node applying `fd` to `subject` and `args` (for a higher-order filter, `args[0]` was
    compiled to be evaluated in an ElemScope). `tz` fixes the default time zone (XanoScript:
    UTC); None uses the run's."""
    raw_subject = subject.fn

    def sf(ctx: Any) -> Any:
        # A time read from a column (Millis) is the plain number to every filter (their type
        # dispatch is exact); its exact datetime matters only when written to a column again.
        value = raw_subject(ctx)
        return int(value) if type(value) is Millis else value

    call = fd.fn
    if fd.higher_order:
        ef = args[0].fn
        rest = args[1:]
        rfs = tuple(r.fn for r in rest)

        def higher(ctx: Any) -> Any:
            es = ElemScope(ctx)

            def each(item: Any, index: Any, parent: Any, result: Any) -> Any:
                es.item, es.index, es.parent, es.result = item, index, parent, result
                return ef(es)

            return call(sf(ctx), each, *[r(ctx) for r in rfs])

        return combine(higher, [subject, *rest], column, foldable=False)
    afs = tuple(a.fn for a in args)
    fn: Callable[[Any], Any]
    if fd.needs_ctx:

        def with_env(ctx: Any) -> Any:
            return call(FilterEnv(ctx, evaluator, tz), sf(ctx), *[a(ctx) for a in afs])

        fn = with_env
    elif not afs:
        fn = lambda ctx: call(sf(ctx))  # noqa: E731
    elif len(afs) == 1:
        (a1,) = afs
        if args[0].const:
            c1 = args[0].value
            fn = lambda ctx: call(sf(ctx), c1)  # noqa: E731
        else:
            fn = lambda ctx: call(sf(ctx), a1(ctx))  # noqa: E731
    else:
        fn = lambda ctx: call(sf(ctx), *[a(ctx) for a in afs])  # noqa: E731
    return combine(fn, [subject, *args], column, foldable=fd.pure and not fd.needs_ctx)
