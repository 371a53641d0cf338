"""Compiles function stacks: the StackCompiler steps compile through, the function library."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from daemon.config.tasks import SOURCE_KEY, StepSource
from daemon.core.errors import (
    ConfigError,
    ExpressionError,
    Issue,
    issue_from_validation,
    join_path,
)
from daemon.core.text import did_you_mean
from daemon.expr.nodes import BUILTIN_NAMES, Template
from daemon.expr.parser import compile_template, compile_value
from steps.base import Evaluator, Function, Registry, Step

if TYPE_CHECKING:
    from daemon.config.tasks import LoadedFunction
    from daemon.engine.context import RunContext
    from daemon.resources.db.base import DataSource, TableInfo


@dataclass(slots=True)
class CompiledStack:
    """A compiled list of steps and the warnings found while compiling it."""

    steps: list[Step]
    warnings: list[Issue]


def _raise_undefined(message: str, column: int | None) -> Evaluator:
    def fail(ctx: RunContext) -> Any:
        raise ExpressionError(message, column=column)

    return fail


class StackCompiler:
    """Implements `steps.base.StepCompiler`: walks a function stack in order, tracking which
    variables earlier steps could define, and collects every issue instead of stopping."""

    def __init__(
        self,
        *,
        registry: Registry,
        file: str,
        datasources: Mapping[str, DataSource] | None = None,
        configured_datasources: Iterable[str] | None = None,
        default_datasource: str | None = None,
        defined: Iterable[str] = (),
        issue_prefix: str = "",
        functions: FunctionLibrary | None = None,
    ) -> None:
        self.registry = registry
        self.file = file
        self.path = ""
        self.functions = functions
        # The step being compiled came from another format (XanoScript): its statement name,
        # line, and how its child lists read in paths.
        self.source: StepSource | None = None
        # Step paths are relative to the task (`function_stack[2]`, as in traces and
        # `error.step`); issues also name the task's place in a list file (`[1].function_stack`).
        self.issue_prefix = issue_prefix
        self.datasources: Mapping[str, DataSource] = datasources or {}
        self.configured = set(configured_datasources or self.datasources)
        # Only a compiler that knows the config can say a data source is missing (tests and
        # tools compile bare stacks and bind data sources at run time).
        self._knows_config = configured_datasources is not None or bool(self.datasources)
        self.default_datasource = default_datasource
        self.defined: set[str] = set(defined)
        self.issues: list[Issue] = []

    # --- issues -------------------------------------------------------------------------------

    def _at(self, fld: str) -> str:
        return join_path(self.path, fld) if fld else self.path

    def _issue_path(self, path: str) -> str:
        if not self.issue_prefix:
            return path
        return f"{self.issue_prefix}.{path}" if path else self.issue_prefix

    def error(self, field: str, message: str, *, column: int | None = None) -> None:
        self._issue(field, message, column, "error")

    def warning(self, field: str, message: str, *, column: int | None = None) -> None:
        self._issue(field, message, column, "warning")

    def _issue(self, field: str, message: str, column: int | None, severity: str) -> None:
        path = self._issue_path(self._at(field))
        line = None
        source = self.source
        if source is not None and source.line is not None:
            # A file position: the statement's line; a template's own column when it has one.
            line = source.line
            column = column if column is not None else source.column
        self.issues.append(Issue(self.file, path, message, line, column, severity))

    # --- templates ----------------------------------------------------------------------------

    def template(self, value: Any, field: str) -> Evaluator:
        if type(value) is Template:  # compiled already (XanoScript): only check its names
            self._check_references(value, field)
            return value.evaluate
        ok = self._check_leaves(value, field)
        if not ok:
            return _raise_undefined(f"invalid template at {self._at(field)}", None)
        try:
            return compile_value(value).evaluate
        except ExpressionError as exc:  # pragma: no cover - leaves were checked above
            self.error(field, exc.message, column=exc.column)
            return _raise_undefined(exc.message, exc.column)

    def _check_references(self, tpl: Template, field: str) -> None:
        for ref in tpl.references:
            if ref.name in self.defined:
                continue
            if ref.name == "error":
                # A built-in that is only bound where an error was caught; anywhere else it
                # reads null, which is never what the author meant.
                self.warning(
                    field,
                    '"error" is only set in a Try-Catch\'s catch_steps and in on_failure;'
                    " here it is null",
                    column=ref.column,
                )
            elif ref.name not in BUILTIN_NAMES:
                self.warning(
                    field,
                    f'undefined variable "{ref.name}": no earlier step defines it',
                    column=ref.column,
                )

    def _check_leaves(self, value: Any, field: str) -> bool:
        """Compile each string leaf on its own so errors and undefined names get an exact path."""
        if isinstance(value, str):
            if "{{" not in value:
                return True
            try:
                tpl = compile_template(value)
            except ExpressionError as exc:
                self.error(field, exc.message, column=exc.column)
                return False
            self._check_references(tpl, field)
            return True
        if type(value) is Template:
            self._check_references(value, field)
            return True
        if isinstance(value, dict):
            return all([self._check_leaves(v, join_path(field, str(k))) for k, v in value.items()])
        if isinstance(value, list):
            return all([self._check_leaves(v, f"{field}[{i}]") for i, v in enumerate(value)])
        return True

    def define(self, name: str) -> None:
        self.defined.add(name)

    # --- steps --------------------------------------------------------------------------------

    def steps(self, raw: Any, field: str, *, scoped: Iterable[str] = ()) -> list[Step]:
        list_path = self._at(field)
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error(field, "must be a list of steps")
            return []
        if self.source is not None and field in self.source.fields:
            list_path = self._at(self.source.fields[field])  # `foreach.each`, not `steps`
        scoped = [n for n in scoped if n not in self.defined]
        self.defined.update(scoped)
        saved, saved_source = self.path, self.source
        try:
            compiled = self.compile_list(raw, list_path)
        finally:
            self.path, self.source = saved, saved_source
            self.defined.difference_update(scoped)
        return compiled

    def compile_list(self, raw: list[Any], list_path: str) -> list[Step]:
        out: list[Step] = []
        for i, item in enumerate(raw):
            step = self.compile_step(item, f"{list_path}[{i}]")
            if step is not None:
                out.append(step)
        return out

    def compile_step(self, raw: Any, path: str) -> Step | None:
        saved, saved_source = self.path, self.source
        self.path = path
        self.source = None
        try:
            if not isinstance(raw, dict):
                self.error("", 'a step must be an object with a "function" key')
                return None
            if SOURCE_KEY in raw:
                self.source = raw[SOURCE_KEY]
                raw = {k: v for k, v in raw.items() if k != SOURCE_KEY}
            function = raw.get("function")
            if not isinstance(function, str) or not function:
                self.error("function", 'missing "function" (the step type)')
                return None
            cls = self.registry.lookup(function)
            if cls is None:
                hint = did_you_mean(function, self.registry.names())
                self.error("function", f'unknown function "{function}"{hint}')
                return None
            try:
                spec = msgspec.convert(raw, cls.Spec)
            except msgspec.ValidationError as exc:
                issue = issue_from_validation(exc, self.file, self._issue_path(path))
                if self.source is not None:
                    issue = Issue(issue.file, issue.path, issue.message, self.source.line)
                self.issues.append(issue)
                return None
            step = cls(spec, self)
            if self.source is not None:
                step.label = self.source.label
            return step
        finally:
            self.path, self.source = saved, saved_source

    # --- functions ----------------------------------------------------------------------------

    def function(self, name: str) -> Function | None:
        return self.functions.get(name) if self.functions is not None else None

    def function_hint(self, name: str) -> str:
        if self.functions is None:
            return " (no functions are loaded: see [daemon] functions)"
        return did_you_mean(name, self.functions.names())

    # --- data sources -------------------------------------------------------------------------

    def datasource_name(self, name: str | None) -> str:
        return name or self.default_datasource or ""

    def datasource(self, name: str | None = None) -> DataSource | None:
        return self.datasources.get(self.datasource_name(name))

    def require_datasource(self, name: str | None, field: str = "data_source") -> None:
        """Report a step that would have no data source (or an unknown one) at run time."""
        if not self._knows_config:
            return
        ds_name = self.datasource_name(name)
        if not ds_name:
            self.error(
                field,
                "no data source for this step: set data_source on the step or the task, "
                "or [daemon] default_data_source",
            )
        elif ds_name not in self.configured:
            hint = did_you_mean(ds_name, self.configured)
            self.error("data_source", f'unknown data source "{ds_name}"{hint}')

    def table(self, name: str, field: str, datasource: str | None = None) -> TableInfo | None:
        if not isinstance(name, str) or not name:
            self.error(field, "table must be a non-empty name")
            return None
        if "{{" in name:
            self.error(field, "table names cannot be templates (they are checked at load time)")
            return None
        ds_name = self.datasource_name(datasource)
        if not ds_name:
            self.error(field, "no data source configured for this step")
            return None
        if ds_name not in self.configured:
            hint = did_you_mean(ds_name, self.configured)
            self.error("data_source", f'unknown data source "{ds_name}"{hint}')
            return None
        ds = self.datasources.get(ds_name)
        if ds is None:  # configured but unreachable: checked on first run instead
            return None
        try:
            return ds.table(name)
        except LookupError as exc:
            self.error(field, str(exc.args[0]) if exc.args else str(exc))
            return None


class FunctionLibrary:
    """Every loaded function, each compiled once, on first use (a Call Function naming it) or
    by `compile_all`; a recursive call gets the handle whose steps are still compiling."""

    def __init__(
        self,
        loaded: Iterable[LoadedFunction],
        *,
        registry: Registry,
        datasources: Mapping[str, DataSource] | None = None,
        configured_datasources: Iterable[str] | None = None,
        default_datasource: str | None = None,
    ) -> None:
        self.sources = {f.name: f for f in loaded}
        self.registry = registry
        self.datasources = datasources or {}
        self.configured = None if configured_datasources is None else list(configured_datasources)
        self.default_datasource = default_datasource
        self.compiled: dict[str, Function] = {}
        self.issues: list[Issue] = []

    def names(self) -> list[str]:
        return list(self.sources)

    def get(self, name: str) -> Function | None:
        found = self.compiled.get(name)
        if found is not None:
            return found
        source = self.sources.get(name)
        if source is None:
            return None
        fn = Function(
            name, source.display, defaults=dict(source.defaults), required=source.required
        )
        self.compiled[name] = fn
        comp = StackCompiler(
            registry=self.registry,
            file=source.display,
            datasources=self.datasources,
            configured_datasources=self.configured,
            default_datasource=self.default_datasource,
            defined=["input"],
            functions=self,
        )
        # A function's steps run with the caller's data source; its paths name the function.
        fn.steps = comp.compile_list(source.function_stack, f"function({name}).{source.stack_name}")
        if source.response is not None:
            comp.path = f"function({name})"
            fn.response = comp.template(source.response, "response")
        self.issues.extend(comp.issues)
        return fn

    def compile_all(self) -> list[Issue]:
        """Compile every function (so `check` reports functions no task calls yet)."""
        for name in self.sources:
            self.get(name)
        return self.issues


def compile_stack(
    raw: list[Any],
    *,
    registry: Registry,
    file: str = "<test>",
    resources: Any = None,
    default_datasource: str | None = None,
    defined: Iterable[str] = (),
    base_path: str = "function_stack",
    functions: FunctionLibrary | None = None,
) -> CompiledStack:
    """Compile one function stack (used by tests and tools); raises ConfigError on errors."""
    datasources = resources.datasources if resources is not None else {}
    if default_datasource is None and resources is not None:
        default_datasource = resources.default_datasource
    comp = StackCompiler(
        registry=registry,
        file=file,
        datasources=datasources,
        default_datasource=default_datasource,
        defined=defined,
        functions=functions,
    )
    steps = comp.compile_list(raw, base_path)
    errors = [i for i in comp.issues if i.severity == "error"]
    if errors:
        raise ConfigError(comp.issues)
    return CompiledStack(steps, [i for i in comp.issues if i.severity == "warning"])
