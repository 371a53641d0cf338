"""`.xs` files → loaded tasks and functions: the reader `[daemon] tasks` / `functions` use.

A `task` document becomes a `LoadedTask` whose `function_stack` holds the step dicts of
`daemon.xano.statements` (named `stack`, so paths read `stack[2]`); a `function` document a
`LoadedFunction` for Call Function / `function.run`. Other documents of an export (tables,
APIs, middleware…) are skipped with a note. Settings (XANOSCRIPT.md §1.2, §6.1): leading `//`
lines are the description, `active` defaults to true, `datasource` to "live" (the compiler
falls back to the only configured data source with a warning), `history = false` turns
request history off, `schedule = []` (or none) means the task only runs when triggered.
Schedules are UTC events (`daemon.core.events`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon.config.tasks import (
    EventSpec,
    LoadedFunction,
    LoadedTask,
    ScheduleSpec,
    TaskSpec,
    check_events,
)
from daemon.core.errors import Issue
from daemon.expr.values import MISSING
from daemon.xano import nodes as x
from daemon.xano.errors import XanoSyntaxError
from daemon.xano.expressions import XanoCompileError, constant_value, to_field
from daemon.xano.parser import parse_document
from daemon.xano.statements import StackBuilder

DEFAULT_DATASOURCE = "live"  # Xano's default data source name (§1.2)


def read_xs_file(
    path: Path, display: str, file: str
) -> tuple[list[LoadedTask], list[LoadedFunction], list[Issue]]:
    """Read one `.xs` document: ([task], [], issues), ([], [function], issues), or nothing
    with a note for other kinds; syntax and translation problems are issues with positions."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [], [Issue(display, "", f"cannot read the file: {exc}")]
    try:
        doc = parse_document(text, display)
    except XanoSyntaxError as exc:
        return [], [], [exc.as_issue()]
    issues = [_relocated(i, display) for i in doc.warnings]
    if isinstance(doc, x.TaskDoc):
        task = _task(doc, display, file, issues)
        return [task], [], issues
    if isinstance(doc, x.FunctionDoc):
        return [], [_function(doc, display, file, issues)], issues
    issues.append(
        Issue(
            display,
            "",
            f'{doc.kind} "{doc.name}" skipped: only task and function documents run here',
            doc.line,
            doc.column,
            severity="info",
        )
    )
    return [], [], issues


def _relocated(issue: Issue, display: str) -> Issue:
    if issue.file == display:
        return issue
    return Issue(display, issue.path, issue.message, issue.line, issue.column, issue.severity)


def _errors(builder: StackBuilder, display: str, path: str) -> list[Issue]:
    return [Issue(display, path, e.message, e.line, e.column) for e in builder.errors]


def _task(doc: x.TaskDoc, display: str, file: str, issues: list[Issue]) -> LoadedTask:
    builder = StackBuilder()
    stack = builder.stack(doc.stack)
    issues.extend(_errors(builder, display, "stack"))
    if doc.middleware is not None:
        issues.append(
            Issue(
                display,
                "middleware",
                "middleware is not run by cronstack (move what it does into the stack)",
                doc.middleware.line,
                doc.middleware.column,
                severity="warning",
            )
        )
    schedule: ScheduleSpec | None = None
    if doc.schedule:
        events = [
            EventSpec(starts_on=e.starts_on, freq=e.freq, ends_on=e.ends_on) for e in doc.schedule
        ]
        problems: list[Issue] = []
        check_events(events, display, "schedule", problems)
        first = doc.schedule[0]
        issues.extend(Issue(p.file, p.path, p.message, first.line, first.column) for p in problems)
        schedule = ScheduleSpec(events=events, timezone="UTC")
    spec = TaskSpec(
        name=doc.name,
        description=doc.description or "",
        tags=list(doc.tags),
        status="active" if doc.active else "inactive",
        request_history=doc.history is not False,
        data_source=doc.datasource or DEFAULT_DATASOURCE,
        schedule=schedule,
        function_stack=stack,
    )
    return LoadedTask(spec, file=file, located=doc.line, display=display, stack_name="stack")


def _function(doc: x.FunctionDoc, display: str, file: str, issues: list[Issue]) -> LoadedFunction:
    builder = StackBuilder(function=True)
    stack = builder.stack(doc.stack)
    response: Any = None
    if doc.response is not None:
        try:
            response = to_field(doc.response, builder.scope)
        except XanoCompileError as exc:
            builder.errors.append(exc)
    issues.extend(_errors(builder, display, "stack"))
    defaults: dict[str, Any] = {}
    required: list[str] = []
    for param in doc.inputs:
        if param.default is not None:
            value = constant_value(param.default)
            if value is MISSING:
                issues.append(
                    Issue(
                        display,
                        f"input.{param.name}",
                        "an input default must be a constant",
                        param.line,
                        param.column,
                    )
                )
            else:
                defaults[param.name] = value
        elif not param.optional and not param.nullable:
            required.append(param.name)
    return LoadedFunction(
        name=doc.name,
        file=file,
        display=display,
        function_stack=stack,
        response=response,
        defaults=defaults,
        required=tuple(required),
        stack_name="stack",
        line=doc.line,
    )
