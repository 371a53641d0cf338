"""The step contract: a validated spec, a compiled step with `run(ctx)`, the compiler API."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import msgspec

from daemon.core.errors import StepError
from daemon.expr.nodes import Evaluator, Scope
from daemon.expr.values import copy_value

if TYPE_CHECKING:
    from daemon.resources.cache import Cache
    from daemon.resources.db.base import DataSource, TableInfo
    from daemon.resources.http.client import HttpClient

__all__ = [
    "Evaluator",
    "Function",
    "Registry",
    "Step",
    "StepCompiler",
    "StepContext",
    "StepSpec",
    "normalize_function_name",
]


class StepContext(Scope, Protocol):
    """What a step may use of its run (the engine's run context implements it).

    Variables and built-ins are read through compiled expressions (`Scope`); a step writes
    variables with `set_var`, runs child steps with `run_step` (so each gets its trace entry),
    and reaches resources through `db`, `http` and `cache`. `error` is the caught error inside
    a catch block and an `on_failure` stack.
    """

    error: dict[str, Any] | None

    def set_var(self, name: str, value: Any) -> None: ...

    async def run_step(self, step: Step) -> Any: ...

    def child(self, overlay: dict[str, Any]) -> StepContext:
        """A context for one concurrent loop iteration: same run, `overlay` names on top."""
        ...

    def function_scope(self, variables: dict[str, Any]) -> StepContext:
        """A context for a called function: same run and trace, a fresh scope of its own."""
        ...

    def db(self, name: str | None = None) -> DataSource: ...

    def endpoint(self, name: str) -> str | None:
        """The configured base URL of a named outside service (`email.resend`), if any."""
        ...

    @property
    def http(self) -> HttpClient: ...

    @property
    def cache(self) -> Cache: ...


class StepSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields every step accepts; each step type subclasses this with its own typed fields.

    Templated fields are typed `Any` (a literal or a string holding `{{ }}`); the step compiles
    them with `StepCompiler.template`. Child step lists are `list[Any]`, compiled with
    `StepCompiler.steps` so each child is validated on its own and errors carry its path.
    """

    function: str
    return_variable: str | None = None
    description: str | None = None


class StepCompiler(Protocol):
    """What a step may ask of the compiler while it is being built (at load time, once)."""

    path: str  # this step's path, e.g. "function_stack[2].steps[0]"
    file: str

    def template(self, value: Any, field: str) -> Evaluator:
        """Compile a literal/template (recursively through dicts and lists) into an evaluator.

        Reports parse errors and undefined-variable references as issues at `path.field`.
        """
        ...

    def steps(self, raw: Any, field: str, *, scoped: Iterable[str] = ()) -> list[Step]:
        """Compile a child step list found at `field`; `scoped` names are defined only inside it."""
        ...

    def define(self, name: str) -> None:
        """Declare that a variable is defined from this point of the stack on."""
        ...

    def datasource_name(self, name: str | None) -> str:
        """Resolve a step's data source name (None = the task's)."""
        ...

    def table(self, name: str, field: str, datasource: str | None = None) -> TableInfo | None:
        """Check a table name against the data source's schema; None if the schema is unknown
        (data source unreachable during `check`) or the name was reported as an error."""
        ...

    def datasource(self, name: str | None = None) -> DataSource | None:
        """The opened data source (for its dialect and schema), or None if unreachable."""
        ...

    def require_datasource(self, name: str | None, field: str = "data_source") -> None:
        """Report (as an error) a step that would have no data source, or an unknown one."""
        ...

    def function(self, name: str) -> Function | None:
        """The function Call Function names (by its declared name), or None if there is none.
        Its steps may still be compiling (a recursive call): read them at run time."""
        ...

    def function_hint(self, name: str) -> str:
        """A did-you-mean suffix for an unknown function name ("" when nothing is close)."""
        ...

    def error(self, field: str, message: str, *, column: int | None = None) -> None: ...

    def warning(self, field: str, message: str, *, column: int | None = None) -> None: ...


@dataclass(slots=True, eq=False)
class Function:
    """A function stack Call Function runs, compiled once for every caller; `steps` and
    `response` are filled in after the handle is handed out, so recursion resolves."""

    name: str
    file: str = ""
    steps: list[Step] = field(default_factory=list)
    response: Evaluator | None = None
    defaults: dict[str, Any] = field(default_factory=dict)  # constant input defaults
    required: tuple[str, ...] = ()  # inputs without a default that must not be null

    def prepare(self, given: dict[str, Any]) -> dict[str, Any]:
        """The callee's `input`: the given values over the defaults; a missing required one
        fails the call (Xano's inputerror)."""
        for name in self.required:
            if given.get(name) is None:
                err = StepError(f'function "{self.name}": missing input "{name}"')
                err.extra.update(code="ERROR_CODE_INPUT_ERROR", name="inputerror")
                raise err
        if not self.defaults:
            return given
        merged = {k: copy_value(v) for k, v in self.defaults.items()}
        merged.update(given)
        return merged


class Step:
    """A compiled step. Subclasses set `Spec`, `function`, `display_name`, and implement `run`.

    `__init__` runs once at load time and should do every piece of work that does not depend
    on run-time values (compile templates, build SQL text); `run` only moves values.
    """

    Spec: ClassVar[type[StepSpec]] = StepSpec
    function: ClassVar[str] = ""  # snake_case id, e.g. "query_all_records"
    display_name: ClassVar[str] = ""  # the seed's name, e.g. "Query All Records"
    aliases: ClassVar[tuple[str, ...]] = ()  # extra accepted names, e.g. "Try-Catch-Finally"

    # Whether `run` may wait (I/O, a timer, a task group): a task none of whose steps waits runs
    # to its end inside the scheduler's batch, without an asyncio task of its own. Anything
    # that waits, or needs to know the current task (timeouts, task groups), must say True.
    waits: ClassVar[bool] = True

    # `label` names the step in traces: its `function`, or what the source called it (a
    # XanoScript statement, `db.query`), set by the compiler after construction.
    __slots__ = ("label", "path", "return_variable")

    def __init__(self, spec: Any, c: StepCompiler) -> None:
        self.path: str = c.path
        self.label: str = self.function
        self.return_variable: str | None = spec.return_variable
        if spec.return_variable:
            c.define(spec.return_variable)

    async def run(self, ctx: StepContext) -> Any:
        raise NotImplementedError

    def children(self) -> Sequence[Sequence[Step]]:
        """Child step lists (for introspection); leaf steps have none."""
        return ()

    def may_wait(self) -> bool:
        """Whether running this step, children included, may wait (see `waits`)."""
        return type(self).waits or any(s.may_wait() for group in self.children() for s in group)


class Registry:
    """Maps every accepted function name (display name, snake_case id, aliases) to a step class.

    Built once by `steps.build_registry()` and handed to the compiler; never mutated afterwards.
    """

    def __init__(self, classes: Iterable[type[Step]]) -> None:
        self._by_name: dict[str, type[Step]] = {}
        for cls in classes:
            for name in (cls.function, cls.display_name, *cls.aliases):
                key = normalize_function_name(name)
                if key in self._by_name and self._by_name[key] is not cls:
                    raise ValueError(f"step name {name!r} registered twice")
                self._by_name[key] = cls

    def lookup(self, name: str) -> type[Step] | None:
        return self._by_name.get(normalize_function_name(name))

    def names(self) -> list[str]:
        return sorted({cls.display_name for cls in self._by_name.values()})

    def classes(self) -> list[type[Step]]:
        return list(dict.fromkeys(self._by_name.values()))


@functools.lru_cache(maxsize=4096)
def normalize_function_name(name: str) -> str:
    """`"Query All Records"`, `"query_all_records"` and `"query-all-records"` are one name."""
    return "".join(ch for ch in name.lower() if ch.isalnum())
