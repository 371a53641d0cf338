"""XanoScript statements → the step dicts JSON tasks are made of (one library, one engine).

Each statement becomes a step of the visual-builder library (`db.query` is Query All Records,
`foreach` is Loop, `db.edit` is Patch Record…) whose fields hold pre-compiled expressions
(`daemon.xano.expressions`); the engine's compiler validates and builds them like any JSON step.
Every step dict carries a `StepSource` (under `SOURCE_KEY`): the statement's name for traces
(`db.query`), its line for issues, and its child lists' names for paths
(`stack[2].foreach.each[0]`). Statements that only change a variable (`math.add $n`,
`array.push $list`, `text.append $s`, `var.update $a.b`) are Update Variable steps whose value
computes the new variable.

What cannot run here (XANOSCRIPT.md §6.52: `api.lambda`, `storage.*`, `cloud.*`, `ai.*`,
realtime, the `xano` e-mail provider…) and what cannot be translated is a `XanoCompileError` at
the statement: a `check` error naming file, line and statement, never skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Final

from daemon.config.tasks import SOURCE_KEY, StepSource
from daemon.expr.nodes import Template, combine, const_node, name_node
from daemon.xano import nodes as x
from daemon.xano.expressions import (
    Scope,
    XanoCompileError,
    compile_expr,
    constant_value,
    to_condition,
    to_field,
    to_template,
)
from daemon.xano.values import BITWISE, DIV, MOD, MULTIPLY, SUBTRACT, add, get_field, get_index

Step = dict[str, Any]

# Namespaces and statements with no way to run in a self-hosted daemon (§6.52), and why.
UNSUPPORTED: Final = {
    "api.lambda": "runs JavaScript in Xano's lambda runtime, which cronstack does not embed",
    "api.realtime_event": "sends to Xano's realtime channels, which exist only on Xano",
    "api.stream": "streams an API response; a background task has no caller",
    "storage": "uses Xano's file vault, which exists only on Xano",
    "cloud": "uses Xano's cloud integrations, which exist only on Xano",
    "ai": "uses Xano's AI agents and tools, which exist only on Xano",
    "realtime": "uses Xano's realtime channels, which exist only on Xano",
    "stream": "streams files or requests through Xano",
    "zip": "builds archives in Xano's file vault",
    "security.create_auth_token": "makes a token in Xano's own format",
    "util.template_engine": "renders Twig templates, which cronstack does not embed",
    "util.ip_lookup": "uses Xano's IP geolocation service",
    "util.set_header": "sets a response header; a background task has no response",
    "util.post_process": "runs after an API response; a background task has no response",
    "debug.stop": "stops the editor's debugger, which a daemon does not have",
    "db.external": "queries external databases by connection string; configure a data source",
    "db.schema": "reads Xano's table schema",
    "db.set_datasource": "switches Xano data sources at run time; set the task's datasource",
    "await": "waits for Xano async jobs",
    "task.call": "only runs in Xano's workflow tests",
}


def unsupported_reason(name: str) -> str | None:
    """Why statement `name` cannot run, or None when it can (as far as this table knows)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        reason = UNSUPPORTED.get(".".join(parts[:i]))
        if reason is not None:
            return reason
    return None


class StackBuilder:
    """Translates the statements of one stack (a task's, or a function's), collecting every
    `XanoCompileError` so all of them are reported together."""

    def __init__(self, *, function: bool = False) -> None:
        self.scope = Scope(function=function)
        self.errors: list[XanoCompileError] = []
        self.loops = 0
        self.ref_start = 0  # where the references of the statement being built start

    def statement_refs(self) -> tuple[Any, ...]:
        """The variables the statement being built reads (for undefined-name warnings)."""
        return tuple(self.scope.refs[self.ref_start :])

    # --- stacks -------------------------------------------------------------------------------

    def stack(self, stmts: tuple[x.Stmt, ...]) -> list[Step]:
        out: list[Step] = []
        for stmt in stmts:
            if stmt.disabled or _disabled(stmt):
                continue
            try:
                out.extend(self.statement(stmt))
            except XanoCompileError as exc:
                if exc.line is None:
                    exc.line, exc.column = stmt.line, stmt.column
                self.errors.append(exc)
        return out

    def statement(self, stmt: x.Stmt) -> list[Step]:
        self.ref_start = len(self.scope.refs)
        handler = _CONTROL.get(type(stmt))
        if handler is not None:
            return handler(self, stmt)
        assert isinstance(stmt, x.Call)
        name = stmt.name
        reason = unsupported_reason(name)
        if reason is not None:
            raise XanoCompileError(f"{name} cannot run here: it {reason}")
        call = _CALLS.get(name)
        if call is None:
            namespace = name.split(".", 1)[0]
            call = _NAMESPACES.get(namespace)
        if call is None:
            raise XanoCompileError(f'unknown statement "{name}"')
        return call(self, stmt)

    # --- helpers ------------------------------------------------------------------------------

    def step(
        self,
        stmt: x.Stmt,
        function: str,
        label: str,
        fields: dict[str, Any],
        *,
        paths: dict[str, str] | None = None,
        bind: bool = True,
    ) -> Step:
        step: Step = {"function": function, **fields}
        step[SOURCE_KEY] = StepSource(label, stmt.line, stmt.column, paths or {}, digest(stmt))
        description = stmt.attr("description")
        if isinstance(description, x.StrLit):
            step["description"] = description.value
        if bind and isinstance(stmt, x.Call) and stmt.as_var is not None:
            step["return_variable"] = var_name(stmt.as_var)
        return step

    def value(self, expr: x.Expr | None) -> Any:
        return None if expr is None else to_field(expr, self.scope)

    def template(self, expr: x.Expr) -> Template:
        return to_template(expr, self.scope)

    def condition(self, expr: x.Expr) -> Template:
        return to_condition(expr, self.scope)

    def required(self, stmt: x.Stmt, key: str) -> x.Expr:
        found = stmt.attr(key)
        if found is None:
            raise XanoCompileError(f'{_label(stmt)} needs "{key} = …"', stmt.line, stmt.column)
        return found

    def body(self, stmts: tuple[x.Stmt, ...] | None, *, loop: bool = False) -> list[Step]:
        if stmts is None:
            return []
        self.loops += loop
        try:
            return self.stack(stmts)
        finally:
            self.loops -= loop


def digest(stmt: x.Stmt) -> str:
    """A short digest of a statement as written (its AST dump, positions left out)."""
    return hashlib.blake2b(stmt.dump().encode(), digest_size=12).hexdigest()


def _label(stmt: x.Stmt) -> str:
    if isinstance(stmt, x.Call):
        return stmt.name
    return type(stmt).__name__.lower()


def _disabled(stmt: x.Stmt) -> bool:
    flag = stmt.attr("disabled")
    return isinstance(flag, x.BoolLit) and flag.value


def var_name(expr: x.Expr) -> str:
    """The variable a statement binds (`as $x`) or targets (`var $x`)."""
    if isinstance(expr, x.Var):
        return expr.name
    raise XanoCompileError("expected a plain variable ($name) here", expr.line, expr.column)


def target_name(stmt: x.Call) -> str:
    """A table or function name: `user`, `"user"`, a static path `a/b`."""
    target = stmt.target
    if isinstance(target, x.Name):
        return target.value
    if isinstance(target, x.StrLit):
        return target.value
    if isinstance(target, x.Expr):
        value = constant_value(target)
        if isinstance(value, str):
            return value
    raise XanoCompileError(f"{stmt.name} needs a name here", stmt.line, stmt.column)


# --- assignment to a variable or a path inside one --------------------------------------------


def _segments(expr: x.Expr) -> tuple[str, list[x.Segment]]:
    """`$a.b[0]` -> ("a", [.b, [0]]); the root must be a plain variable."""
    if isinstance(expr, x.Var):
        return expr.name, []
    if isinstance(expr, x.Path) and isinstance(expr.base, x.Var):
        if any(isinstance(s, x.Where) for s in expr.segments):
            raise XanoCompileError("cannot assign through [condition]", expr.line, expr.column)
        return expr.base.name, list(expr.segments)
    raise XanoCompileError("expected a variable ($name or $name.path)", expr.line, expr.column)


def updater(
    b: StackBuilder,
    target: x.Expr,
    compute: Callable[[Any, Any], Any] | None,
    value: x.Expr | None,
) -> tuple[str, Template]:
    """(root variable, value template) for "set `target` to compute(current, value)" (or to
    `value` when compute is None)."""
    root, segs = _segments(target)
    b.scope.refs.append(_ref(root, target))
    read = name_node(root, target.column)
    keys = [
        (s.name, None) if isinstance(s, x.Field) else (None, compile_expr(s.index, b.scope))  # type: ignore[attr-defined]
        for s in segs
    ]
    val = compile_expr(value, b.scope) if value is not None else const_node(None)
    rf, vf = read.fn, val.fn
    key_fns = [(n, k.fn if k is not None else None) for n, k in keys]
    where = target.dump()

    if not segs and compute is not None:  # `math.add $n`: the common case, one closure
        node = combine(lambda ctx: compute(rf(ctx), vf(ctx)), [read, val], 1, foldable=False)
        return root, Template(target.dump(), node.fn, b.statement_refs(), False)

    def apply(ctx: Any) -> Any:
        current = rf(ctx) if (segs or compute is not None) else None
        path = [n if kf is None else kf(ctx) for n, kf in key_fns]
        new_value = vf(ctx)
        if not path:
            return new_value if compute is None else compute(current, new_value)
        old = _read(current, path, where)
        new = new_value if compute is None else compute(old, new_value)
        return _write(current, path, new)

    node = combine(apply, [read, val], target.column, foldable=False)
    return root, Template(target.dump(), node.fn, b.statement_refs(), False)


def _ref(name: str, node: x.Node) -> Any:
    from daemon.expr.nodes import Reference

    return Reference(name, node.column)


def _read(value: Any, path: list[Any], where: str) -> Any:
    for key in path:
        if value is None:
            return None
        value = get_index(value, key, where) if type(key) is int else get_field(value, key, where)
    return value


def _write(value: Any, path: list[Any], new: Any) -> Any:
    """A copy of `value` with `new` at `path` (objects and lists made on the way)."""
    key, rest = path[0], path[1:]
    if type(value) is list and type(key) is int:
        out_list = list(value)
        index = key if key >= 0 else len(out_list) + key
        while len(out_list) <= index:
            out_list.append(None)
        out_list[index] = _write(out_list[index], rest, new) if rest else new
        return out_list
    out = dict(value) if isinstance(value, dict) else {}
    k = str(key)
    out[k] = _write(out.get(k), rest, new) if rest else new
    return out


# --- control statements ----------------------------------------------------------------------


def _conditional(b: StackBuilder, stmt: x.Conditional) -> list[Step]:
    else_steps = b.body(stmt.else_body)
    branches = list(stmt.branches)
    step: Step | None = None
    for branch in reversed(branches):
        keyword = branch.keyword if branch is branches[0] else "elseif"
        step = {
            "function": "Conditional",
            "condition": b.condition(branch.cond),
            "true_steps": b.body(branch.body),
            "false_steps": else_steps,
            SOURCE_KEY: StepSource(
                "conditional" if keyword == "if" else "elseif",
                branch.line,
                branch.column,
                {"true_steps": "if" if keyword == "if" else "elseif", "false_steps": "else"},
                digest(stmt),
            ),
        }
        else_steps = [step]
    assert step is not None  # the parser requires an if
    description = stmt.attr("description")
    if isinstance(description, x.StrLit):
        step["description"] = description.value
    return [step]


def _foreach(b: StackBuilder, stmt: x.Foreach) -> list[Step]:
    fields = {
        "input_array": b.value(stmt.iterable),
        "loop_item_variable": stmt.item,
        "steps": b.body(stmt.body, loop=True),
    }
    return [b.step(stmt, "Loop", "foreach", fields, paths={"steps": "foreach.each"})]


def _for(b: StackBuilder, stmt: x.For) -> list[Step]:
    fields = {
        "iterations": b.value(stmt.count),
        "index_variable": stmt.index,
        "steps": b.body(stmt.body, loop=True),
    }
    return [b.step(stmt, "For Loop", "for", fields, paths={"steps": "for.each"})]


def _while(b: StackBuilder, stmt: x.While) -> list[Step]:
    fields = {"condition": b.condition(stmt.cond), "steps": b.body(stmt.body, loop=True)}
    return [b.step(stmt, "While Loop", "while", fields, paths={"steps": "while.each"})]


def _switch(b: StackBuilder, stmt: x.Switch) -> list[Step]:
    cases = [{"value": b.value(c.value), "steps": b.body(c.body)} for c in stmt.cases]
    paths = {f"cases[{i}].steps": f"switch.case[{i}]" for i in range(len(cases))}
    paths["default_steps"] = "switch.default"
    fields = {
        "value": b.value(stmt.subject),
        "cases": cases,
        "default_steps": b.body(stmt.default),
        "loose": True,
    }
    return [b.step(stmt, "Switch", "switch", fields, paths=paths)]


def _try_catch(b: StackBuilder, stmt: x.TryCatch) -> list[Step]:
    fields = {
        "try_steps": b.body(stmt.try_body),
        "catch_steps": b.body(stmt.catch_body),
        "finally_steps": b.body(stmt.finally_body),
    }
    paths = {"try_steps": "try", "catch_steps": "catch", "finally_steps": "finally"}
    return [b.step(stmt, "Try-Catch", "try_catch", fields, paths=paths)]


def _group(b: StackBuilder, stmt: x.Group) -> list[Step]:
    return [b.step(stmt, "Group", "group", {"steps": b.body(stmt.stack)}, paths={"steps": "stack"})]


def _transaction(b: StackBuilder, stmt: x.Transaction) -> list[Step]:
    fields = {"steps": b.body(stmt.stack)}
    return [
        b.step(stmt, "Database Transaction", "db.transaction", fields, paths={"steps": "stack"})
    ]


def _return(b: StackBuilder, stmt: x.Return) -> list[Step]:
    return [b.step(stmt, "Return", "return", {"value": b.value(stmt.attr("value"))})]


def _throw(b: StackBuilder, stmt: x.Throw) -> list[Step]:
    name_expr = stmt.attr("name")
    name = "StepError" if name_expr is None else constant_value(name_expr)
    if not isinstance(name, str) or not name.strip():
        raise XanoCompileError('throw needs a text name (name = "...")', stmt.line, stmt.column)
    fields = {
        "type": name,
        "message": b.value(
            stmt.attr("value") or x.StrLit(line=stmt.line, column=stmt.column, value=name)
        ),
    }
    return [b.step(stmt, "Throw Error", "throw", fields)]


def _precondition(b: StackBuilder, stmt: x.Precondition) -> list[Step]:
    fields: dict[str, Any] = {"condition": b.condition(stmt.cond)}
    kind = stmt.attr("error_type")
    if kind is not None:
        value = constant_value(kind)
        if not isinstance(value, str):
            raise XanoCompileError("error_type must be a text literal", kind.line, kind.column)
        fields["error_type"] = value
    if stmt.attr("error") is not None:
        fields["error"] = b.value(stmt.attr("error"))
    if stmt.attr("payload") is not None:
        fields["payload"] = b.value(stmt.attr("payload"))
    return [b.step(stmt, "Precondition", "precondition", fields)]


def _loop_signal(function: str, label: str) -> Callable[[StackBuilder, x.Stmt], list[Step]]:
    def build(b: StackBuilder, stmt: x.Stmt) -> list[Step]:
        if not b.loops:
            raise XanoCompileError(f"{label} outside a loop", stmt.line, stmt.column)
        return [b.step(stmt, function, label, {})]

    return build


def _remove(b: StackBuilder, stmt: x.Stmt) -> list[Step]:
    raise XanoCompileError(
        "foreach.remove is not supported: build a filtered array instead (|filter)",
        stmt.line,
        stmt.column,
    )


_CONTROL: Final[dict[type, Callable[[StackBuilder, Any], list[Step]]]] = {
    x.Conditional: _conditional,
    x.Foreach: _foreach,
    x.For: _for,
    x.While: _while,
    x.Switch: _switch,
    x.TryCatch: _try_catch,
    x.Group: _group,
    x.Transaction: _transaction,
    x.Return: _return,
    x.Throw: _throw,
    x.Precondition: _precondition,
    x.Break: _loop_signal("Break Out", "break"),
    x.Continue: _loop_signal("Continue", "continue"),
    x.Remove: _remove,
}


# --- variables and math ----------------------------------------------------------------------


def _var(b: StackBuilder, stmt: x.Call) -> list[Step]:
    if stmt.target is None or not isinstance(stmt.target, x.Expr):
        raise XanoCompileError("var needs a variable: var $name { value = … }")
    name = var_name(stmt.target)
    fields = {"name": name, "value": b.value(stmt.attr("value"))}
    return [b.step(stmt, "Create Variable", "var", fields)]


def _var_update(b: StackBuilder, stmt: x.Call) -> list[Step]:
    return [assign(b, stmt, None, stmt.attr("value"))]


def assign(
    b: StackBuilder,
    stmt: x.Call,
    compute: Callable[[Any, Any], Any] | None,
    value: x.Expr | None,
    *,
    label: str | None = None,
) -> Step:
    if not isinstance(stmt.target, x.Expr):
        raise XanoCompileError(f"{stmt.name} needs a variable: {stmt.name} $name {{ … }}")
    if isinstance(stmt.target, x.Var) and compute is None:
        fields = {"name": stmt.target.name, "value": b.value(value)}
        return b.step(stmt, "Update Variable", label or stmt.name, fields)
    root, template = updater(b, stmt.target, compute, value)
    return b.step(stmt, "Update Variable", label or stmt.name, {"name": root, "value": template})


_MATH: Final = {
    "math.add": add,
    "math.sub": SUBTRACT,
    "math.mul": MULTIPLY,
    "math.div": DIV,
    "math.mod": MOD,
    "math.bitwise.and": BITWISE["and"],
    "math.bitwise.or": BITWISE["or"],
    "math.bitwise.xor": BITWISE["xor"],
}


def _math(b: StackBuilder, stmt: x.Call) -> list[Step]:
    compute = _MATH.get(stmt.name)
    if compute is None:
        raise XanoCompileError(f'unknown statement "{stmt.name}"')
    step = assign(b, stmt, compute, b.required(stmt, "value"))
    step.pop("return_variable", None)  # math statements give no result (§4.3)
    return [step]


def _debug_log(b: StackBuilder, stmt: x.Call) -> list[Step]:
    fields = {"message": b.value(b.required(stmt, "value")), "level": "debug"}
    return [b.step(stmt, "Log", "debug.log", fields)]


def _function_run(b: StackBuilder, stmt: x.Call) -> list[Step]:
    fields = {"name": target_name(stmt), "input": b.value(stmt.attr("input"))}
    return [b.step(stmt, "Call Function", "function.run", fields)]


def _util(b: StackBuilder, stmt: x.Call) -> list[Step]:
    name = stmt.name
    if name == "util.sleep":
        return [b.step(stmt, "Sleep", name, {"duration": b.value(b.required(stmt, "value"))})]
    if name in ("util.get_env", "util.get_vars", "util.get_all_input", "util.get_input"):
        value: Template
        if name == "util.get_env":
            value = _computed(lambda ctx: ctx.builtin("env"), "$env")
        elif name == "util.get_vars":
            value = _computed(lambda ctx: dict(ctx.vars), "$var")
        elif b.scope.function:
            value = _computed(lambda ctx: ctx.vars.get("input", {}), "$input")
        else:
            value = _computed(lambda ctx: {}, "{}")
        return [result_step(b, stmt, value)]
    if name == "util.send_email":
        from daemon.xano.library import send_email

        return send_email(b, stmt)
    raise XanoCompileError(f'unknown statement "{name}"')


def _computed(fn: Callable[[Any], Any], source: str) -> Template:
    return Template(source, fn, (), False)


def result_step(b: StackBuilder, stmt: x.Call, value: Any, *, label: str | None = None) -> Step:
    """A statement whose only effect is its result (`as $x`): Create Variable when bound, else
    Update Variable of nothing (the value is still computed, and traced)."""
    name = var_name(stmt.as_var) if stmt.as_var is not None else "_"
    return b.step(
        stmt, "Create Variable", label or stmt.name, {"name": name, "value": value}, bind=False
    )


# Statement name -> builder. Namespaces with many members are looked up in _NAMESPACES.
_CALLS: Final[dict[str, Callable[[StackBuilder, x.Call], list[Step]]]] = {
    "var": _var,
    "var.update": _var_update,
    "debug.log": _debug_log,
    "function.run": _function_run,
}


def _db(b: StackBuilder, stmt: x.Call) -> list[Step]:
    from daemon.xano.library import db_statement

    return db_statement(b, stmt)


def _library(b: StackBuilder, stmt: x.Call) -> list[Step]:
    from daemon.xano.library import library_statement

    return library_statement(b, stmt)


_NAMESPACES: Final[dict[str, Callable[[StackBuilder, x.Call], list[Step]]]] = {
    "db": _db,
    "math": _math,
    "util": _util,
    "api": _library,
    "redis": _library,
    "security": _library,
    "array": _library,
    "text": _library,
    "object": _library,
}
