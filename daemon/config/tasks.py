"""Task specs and task files (JSON with comments, or TOML): loading and validation with paths."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from daemon.config.convert import (
    check_duration,
    check_timezone,
    convert_struct,
    nesting_problem,
)
from daemon.core.cron import cron_problem
from daemon.core.durations import MAX_RETENTION
from daemon.core.errors import Issue, join_path
from daemon.core.events import Event, parse_instant
from daemon.core.jsonc import JsoncError, JsonPositions, loads_jsonc_located
from daemon.core.text import name_problem

Overlap = Literal["skip", "allow", "queue", "replace"]
CatchUp = Literal["none", "latest", "all"]
Duration = str | float


class RetrySpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Task retry: attempts in all (1 = no retry) and the exponential backoff bounds."""

    max_attempts: int = 3
    initial_delay: Duration = "1s"
    max_delay: Duration = "30s"


class EventSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One Xano event (docs/contract.md "Xano's own formats"): times with an offset, as text or
    (TOML) a datetime; `check_events` validates them."""

    starts_on: Any
    freq: int | None = None
    ends_on: Any = None


class ScheduleSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The seed's schedule object, plus cronstack's jitter / misfire_grace / catch_up; or Xano
    `events` instead of `cron_expression` (exactly one of the two)."""

    cron_expression: str | None = None
    events: list[EventSpec] | None = None
    timezone: str | None = None
    skip_if_running: bool | None = None
    jitter: Duration | None = None
    misfire_grace: Duration | None = None
    catch_up: CatchUp | None = None


class TaskSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One task as written. `jitter`, `misfire_grace` and `catch_up` may sit at task level or in
    `schedule`; when both are given the schedule's value wins (it is the more specific place)."""

    name: str | None = None
    description: str = ""
    tags: list[str] = []
    status: Literal["active", "inactive"] = "active"
    request_history: bool = True
    data_source: str | None = None
    schedule: str | ScheduleSpec | list[EventSpec] | None = None
    function_stack: list[Any] = []
    timeout: Duration | None = None
    retry: RetrySpec | None = None
    overlap: Overlap | None = None
    on_failure: list[Any] | None = None
    jitter: Duration | None = None
    misfire_grace: Duration | None = None
    catch_up: CatchUp | None = None
    expect_success_within: str | None = None
    history_retention: Duration | None = None  # overrides `[daemon] history_retention`
    history_max_runs: int | None = None  # overrides `[daemon] history_max_runs`

    # --- effective values (defaults: docs/contract.md "Details that tests rely on") -----------

    @property
    def cron_expression(self) -> str | None:
        """The cron string, or None for a manual-only or event-scheduled task."""
        if isinstance(self.schedule, ScheduleSpec):
            return self.schedule.cron_expression
        return self.schedule if isinstance(self.schedule, str) else None

    @property
    def event_specs(self) -> list[EventSpec] | None:
        """The Xano events (`schedule: {events: [...]}` or the list alone), else None."""
        if isinstance(self.schedule, ScheduleSpec):
            return self.schedule.events
        return self.schedule if isinstance(self.schedule, list) else None

    def timezone_name(self, default: str) -> str:
        """The schedule's timezone, else `default` (config `[daemon] timezone`)."""
        if isinstance(self.schedule, ScheduleSpec) and self.schedule.timezone:
            return self.schedule.timezone
        return default

    def effective_overlap(self) -> Overlap:
        """`overlap` if set; else `skip_if_running` (true: skip, false: allow); else skip."""
        if self.overlap is not None:
            return self.overlap
        if isinstance(self.schedule, ScheduleSpec) and self.schedule.skip_if_running is False:
            return "allow"
        return "skip"

    def _schedule_or_task(self, key: str) -> Any:
        if isinstance(self.schedule, ScheduleSpec):
            value = getattr(self.schedule, key)
            if value is not None:
                return value
        return getattr(self, key)

    def jitter_seconds(self) -> float:
        value = self._schedule_or_task("jitter")
        return 0.0 if value is None else _seconds(value)

    def misfire_grace_seconds(self) -> float:
        value = self._schedule_or_task("misfire_grace")
        return 60.0 if value is None else _seconds(value)

    def effective_catch_up(self) -> CatchUp:
        value: CatchUp | None = self._schedule_or_task("catch_up")
        return value or "none"

    def timeout_seconds(self) -> float | None:
        return None if self.timeout is None else _seconds(self.timeout)


def _seconds(value: Duration) -> float:
    # Values were validated at load; this cannot fail for a spec that load_task_file returned.
    from daemon.core.durations import parse_duration

    return parse_duration(value)


# A step dict produced from another format (XanoScript) carries where it came from under this
# key; the engine's compiler reads it (trace names, issue lines) and drops it before validating.
SOURCE_KEY = "$source"


@dataclass(frozen=True, slots=True)
class StepSource:
    """Where a step came from: the statement's name for traces (`db.query`), its position for
    issues, and how its child step lists read in paths (`steps` -> `foreach.each`)."""

    label: str
    line: int | None = None
    column: int | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    # A digest of the statement as written: what the task's fingerprint sees of it, so an
    # edit anywhere in the statement reloads the task.
    digest: str = ""


@dataclass(slots=True)
class LoadedTask:
    """A validated task and where it came from (for error messages and reload diffs)."""

    spec: TaskSpec
    file: str  # as written relative to the config folder, e.g. "tasks/report.json"
    index: int | None = None  # position in a list file
    base_path: str = ""  # prefix for Issue paths: "" for one task per file, "[2]" in a list file
    # Where the task starts, when the format tells (see `line`).
    located: int | _LazyLine | None = None
    display: str = field(default="")  # the file name for Issue.file (relative to the cwd)
    stack_name: str = "function_stack"  # XanoScript: "stack" (step paths read `stack[2]`)
    # Issue path -> position in the file, for issues found later (the compiler's); None
    # where the format keeps no positions (TOML).
    locate: Locator | None = None

    def __post_init__(self) -> None:
        if not self.display:
            self.display = self.file

    @property
    def line(self) -> int | None:
        """The task's first line in its file, when the format tells."""
        located = self.located
        return located.get() if isinstance(located, _LazyLine) else located

    @property
    def name(self) -> str:
        assert self.spec.name is not None  # loaders always set it
        return self.spec.name

    def path(self, sub: str | int) -> str:
        """An Issue path inside this task: `[2]` + `function_stack` -> `[2].function_stack`."""
        return join_path(self.base_path, sub)


class FunctionSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A JSON/TOML function file: what Call Function runs, by `name`, with `input` defaults."""

    name: str
    description: str = ""
    tags: list[str] = []
    input: dict[str, Any] = {}
    function_stack: list[Any] = []
    response: Any = None


@dataclass(slots=True)
class LoadedFunction:
    """A function (JSON/TOML or XanoScript) ready to compile: its stack and response as step
    dicts and a value, its input defaults and required inputs."""

    name: str
    file: str  # relative to the config folder
    display: str  # as the user would type it
    function_stack: list[Any]
    response: Any = None
    defaults: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    stack_name: str = "function_stack"
    line: int | None = None


# A reader for a task file format the config part does not know itself (XanoScript `.xs`):
# (path, display name, name relative to the config folder) -> tasks, functions, issues. The
# composition root hands these to `read_config`, keyed by suffix.
TaskReader = Callable[[Path, str, str], tuple[list[LoadedTask], list[LoadedFunction], list[Issue]]]


def load_function_file(
    path: Path, display_name: str, *, file: str | None = None
) -> tuple[list[LoadedFunction], list[Issue]]:
    """Load a JSON/TOML function file: one `{name, function_stack, response, input}` object (or
    a list of them); `input` holds the defaults of the function's inputs."""
    values, issues, _text = _read_values(path, display_name)
    if issues:
        return [], issues
    raw: list[tuple[Any, str]] = []
    for value, _line, _ in values:
        if isinstance(value, list):
            raw.extend((v, f"[{i}]") for i, v in enumerate(value))
        else:
            raw.append((value, ""))
    functions: list[LoadedFunction] = []
    for value, base in raw:
        spec, problems = convert_struct(value, FunctionSpec, display_name, base)
        issues.extend(problems)
        if spec is None:
            continue
        if not spec.name.strip():
            issues.append(Issue(display_name, join_path(base, "name"), "must not be empty"))
            continue
        functions.append(
            LoadedFunction(
                name=spec.name,
                file=file or display_name,
                display=display_name,
                function_stack=spec.function_stack,
                response=spec.response,
                defaults=dict(spec.input),
            )
        )
    return functions, issues


def task_from_value(value: Any, file: str, base_path: str) -> tuple[TaskSpec | None, list[Issue]]:
    """Validate one raw task object; return the spec (None if it could not be decoded) and every
    issue found. A spec with envelope errors is still returned so the compiler can report its
    steps' problems too ("all errors in one run"); the errors keep it from ever running."""
    # Lenient: keep validating the good fields (cron, timezone, durations) after a bad one.
    spec, issues = convert_struct(value, TaskSpec, file, base_path, lenient=True)
    if spec is None:
        return None, issues
    where = lambda key: join_path(base_path, key)  # noqa: E731 - tiny local helper

    schedule = spec.schedule
    sched_path = where("schedule")
    if isinstance(schedule, ScheduleSpec):
        check_timezone(schedule.timezone, file, join_path(sched_path, "timezone"), issues)
        for key in ("jitter", "misfire_grace"):
            check_duration(getattr(schedule, key), file, join_path(sched_path, key), issues)
        cron_text: str | None = schedule.cron_expression
        cron_path = join_path(sched_path, "cron_expression")
        if schedule.skip_if_running is not None and spec.overlap is not None:
            # `skip_if_running: false` only says "do not skip": allow, queue and replace all fit.
            if schedule.skip_if_running != (spec.overlap == "skip"):
                issues.append(
                    Issue(
                        file,
                        where("overlap"),
                        f'overlap "{spec.overlap}" contradicts schedule.skip_if_running ='
                        f" {str(schedule.skip_if_running).lower()}; set only one",
                    )
                )
        if schedule.events is not None:
            if cron_text is not None:
                issues.append(Issue(file, sched_path, "give cron_expression or events, not both"))
            check_events(schedule.events, file, join_path(sched_path, "events"), issues)
        elif cron_text is None:
            issues.append(Issue(file, cron_path, 'missing required key "cron_expression"'))
    elif isinstance(schedule, list):
        cron_text, cron_path = None, sched_path
        check_events(schedule, file, sched_path, issues)
    else:
        cron_text, cron_path = schedule, sched_path
    if cron_text is not None:
        problem = cron_problem(cron_text)
        if problem is not None:
            issues.append(Issue(file, cron_path, problem))

    for key in ("timeout", "jitter", "misfire_grace", "expect_success_within"):
        check_duration(getattr(spec, key), file, where(key), issues)
    check_duration(
        spec.history_retention, file, where("history_retention"), issues, maximum=MAX_RETENTION
    )
    if spec.history_max_runs is not None and spec.history_max_runs < 1:
        # 0 would otherwise fall back to the [daemon] default unnoticed (or prune everything).
        issues.append(Issue(file, where("history_max_runs"), "must be at least 1"))
    if spec.retry is not None:
        retry_path = where("retry")
        if spec.retry.max_attempts < 1:
            issues.append(Issue(file, join_path(retry_path, "max_attempts"), "must be at least 1"))
        initial = check_duration(
            spec.retry.initial_delay, file, join_path(retry_path, "initial_delay"), issues
        )
        ceiling = check_duration(
            spec.retry.max_delay, file, join_path(retry_path, "max_delay"), issues
        )
        if initial is not None and ceiling is not None and initial > ceiling:
            issues.append(
                Issue(
                    file, join_path(retry_path, "max_delay"), "must not be less than initial_delay"
                )
            )
    if isinstance(value, dict) and "name" in value and not isinstance(value["name"], str):
        # `name = 5`, a list, null: without a usable name the task cannot be told apart from
        # others (duplicates, history), so it goes no further.
        if value["name"] is None:  # `str | None` let it through: the loaders give the default
            issues.append(Issue(file, where("name"), "expected a string, got null"))
        return None, issues
    if spec.name is not None:
        problem = name_problem(spec.name)
        if problem is not None:
            issues.append(Issue(file, where("name"), problem))
    return spec, issues


def build_events(specs: list[EventSpec]) -> list[Event]:
    """The events of a validated spec (raises ValueError on an invalid one)."""
    return [
        Event(
            parse_instant(e.starts_on),
            e.freq,
            parse_instant(e.ends_on) if e.ends_on is not None else None,
        )
        for e in specs
    ]


def check_events(specs: list[EventSpec], file: str, path: str, issues: list[Issue]) -> None:
    """Report every invalid event time, freq or range at its own path."""
    for i, spec in enumerate(specs):
        where = join_path(path, i)
        times = []
        for key in ("starts_on", "ends_on"):
            value = getattr(spec, key)
            if value is None:
                continue
            try:
                times.append(parse_instant(value))
            except ValueError as exc:
                issues.append(Issue(file, join_path(where, key), str(exc)))
        if len(times) != (1 if spec.ends_on is None else 2):
            continue
        try:
            Event(times[0], spec.freq, times[1] if len(times) > 1 else None)
        except ValueError as exc:
            key = "freq" if "freq" in str(exc) else "ends_on"
            issues.append(Issue(file, join_path(where, key), str(exc)))


def _is_step(value: Any) -> bool:
    return isinstance(value, dict) and "function" in value


class _LazyLine:
    """An item's start line, found when a message first asks for it (see jsonc.ItemLines)."""

    __slots__ = ("index", "lines")

    def __init__(self, lines: Sequence[int], index: int) -> None:
        self.lines, self.index = lines, index

    def get(self) -> int:
        return self.lines[self.index]


# (raw task value, start line) pairs, and whether they come from a list (indexed) file.
_Located = list[tuple[Any, "int | _LazyLine | None"]]


def _shape(
    values: list[tuple[Any, int | None, Sequence[int]]], file: str
) -> tuple[_Located, bool, str]:
    """Decide what a file's top-level values are: the raw tasks with their lines, is-a-list,
    and the shape's name (how Issue paths map back to the file: see `_in_file`).

    A file holds one task, a list of tasks, several concatenated tasks, or (seed snippets pasted
    verbatim) one or several step objects, which become one task whose function_stack they are.
    """
    if len(values) == 1 and isinstance(values[0][0], list):
        items, line, item_lines = values[0]
        if items and all(_is_step(v) for v in items):
            return [({"function_stack": items}, line)], False, "steps-list"
        if len(item_lines) != len(items):
            return [(item, None) for item in items], True, "tasks-list"
        return (
            [(item, _LazyLine(item_lines, i)) for i, item in enumerate(items)],
            True,
            "tasks-list",
        )
    if all(_is_step(v) for v, _, _ in values):
        steps = [v for v, _, _ in values]
        return [({"function_stack": steps}, values[0][1])], False, "steps-values"
    if len(values) > 1:
        return [(v, line) for v, line, _ in values], True, "tasks-values"
    return [(v, line) for v, line, _ in values], False, "task"


_INDEX = re.compile(r"\[(\d+)\]")
_LAST = re.compile(r"(\.[^.\[]*|\[\d+\])$")


def _in_file(shape: str, path: str) -> tuple[int, str]:
    """An Issue path of a task -> (which top-level value of the file, the path inside it)."""
    prefix = "function_stack" if shape.startswith("steps") else ""
    if prefix and not path.startswith(prefix):
        return 0, ""  # a key the loader added (the name): not in the file
    rest = path[len(prefix) :]
    if shape in ("steps-values", "tasks-values"):
        match = _INDEX.match(rest)
        if match is None:
            return 0, ""
        return int(match.group(1)), rest[match.end() :].lstrip(".")
    return 0, rest


Locator = Callable[[str, int | None], tuple[int, int, bool] | None]


def json_locator(text: str, shape: str) -> Locator:
    """locate(path, expression column) -> (line, column, exact) where an Issue path of a task
    from this JSON text is written: the character of an expression's column inside a string
    (exact), else the path's key or the nearest enclosing one. Positions are found on the
    first call only (most files have no issue)."""
    found: list[JsonPositions] = []

    def locate(path: str, column: int | None) -> tuple[int, int, bool] | None:
        if not found:
            found.append(JsonPositions(text))
        positions = found[0]
        index, inner = _in_file(shape, path)
        if column is not None:
            spot = positions.in_string(index, inner, column)
            if spot is not None:
                return spot[0], spot[1], True
        while inner:
            spot = positions.key(index, inner)
            if spot is not None:
                return spot[0], spot[1], False
            parent = _LAST.sub("", inner)
            inner = parent if parent != inner else ""  # `name` has no parent but the root
        return None

    return locate


def place_issues(issues: list[Issue], display: str, locate: Locator | None) -> list[Issue]:
    """Give each issue of this file that has no line the position of its path in the file.
    An expression's column (counted inside its template) becomes the file position of that
    character; where that cannot be told, the key's, with the column kept in the message."""
    if locate is None:
        return issues
    placed: list[Issue] = []
    for issue in issues:
        if issue.line is None and issue.file == display and issue.path:
            spot = locate(issue.path, issue.column)
            if spot is not None:
                line, column, exact = spot
                message = issue.message
                if issue.column is not None and not exact:
                    message += f" (column {issue.column} of the expression)"
                issue = dataclasses.replace(issue, line=line, column=column, message=message)
        placed.append(issue)
    return placed


_Values = list[tuple[Any, int | None, Sequence[int]]]


def _read_values(path: Path, display: str) -> tuple[_Values, list[Issue], str | None]:
    """Parse a task file into its top-level values (with start lines where the format has
    them), and the JSON text for placing issues later (None for TOML: tomllib keeps no
    positions, so only TOML syntax errors carry a line)."""
    try:
        # utf-8-sig: a byte-order mark (some Windows editors write one) is not content.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Issue(display, "", f"cannot read the file: {exc}")], None
    if path.suffix.lower() == ".toml":
        values, issues = _toml_values(text, display)
        return values, issues, None
    try:
        located = loads_jsonc_located(text)
    except JsoncError as exc:
        issue = Issue(display, "", f"invalid JSON: {exc.message}", exc.line, exc.column)
        return [], [issue], None
    # Deep nesting was refused by the parser (jsonc.MAX_NESTING), at C speed.
    return [(v, line, items) for v, line, items in located], [], text


def _toml_values(text: str, display: str) -> tuple[_Values, list[Issue]]:
    data, problem = parse_toml(text, display)
    if problem is not None:
        return [], [problem]
    deep = nesting_problem(data)
    if deep is not None:
        return [], [Issue(display, deep[0], deep[1])]
    if not data:
        return [], []  # an empty file: "holds no task", like an empty JSON file
    # `[[task]]` (or `[task]`, or `[[tasks]]`) holds the tasks; otherwise the whole file is
    # one task (which has no `task`/`tasks` key of its own).
    key = next(iter(data)) if len(data) == 1 else None
    if key in ("task", "tasks") and isinstance(data[key], list | dict):
        return [(data[key], None, [])], []
    return [(data, None, [])], []


def parse_toml(text: str, display: str) -> tuple[dict[str, Any], Issue | None]:
    """tomllib.loads with every failure as an Issue: syntax errors with their position, and
    nesting so deep that the parser itself runs out of stack."""
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as exc:
        message, line, column = split_toml_error(exc)
        return {}, Issue(display, "", message, line, column)
    except RecursionError:
        return {}, Issue(display, "", "invalid TOML: nested too deeply")


def split_toml_error(exc: tomllib.TOMLDecodeError) -> tuple[str, int | None, int | None]:
    """tomllib puts the position in the message: "Invalid value (at line 3, column 9)"."""
    message = str(exc)
    match = _TOML_AT.search(message)
    if match is None:
        return f"invalid TOML: {message}", None, None
    text = message[: match.start()].rstrip()
    return f"invalid TOML: {text}", int(match.group(1)), int(match.group(2))


_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_task_file(
    path: Path, display_name: str, *, file: str | None = None
) -> tuple[list[LoadedTask], list[Issue]]:
    """Load and validate every task of one file.

    `display_name` names the file in issues (as the user would type it); `file` is the name
    relative to the config folder kept on each LoadedTask (defaults to `display_name`). Every
    problem of every task is reported; tasks with errors are left out of the result.
    """
    values, issues, text = _read_values(path, display_name)
    if issues:
        return [], issues
    if not values:
        return [], [Issue(display_name, "", "the file holds no task")]
    located, is_list, shape = _shape(values, display_name)
    locate = json_locator(text, shape) if text is not None else None
    stem = path.stem
    tasks: list[LoadedTask] = []
    for index, (raw, line) in enumerate(located):
        base = f"[{index}]" if is_list else ""
        if isinstance(raw, dict) and "name" not in raw:
            # A nameless task takes the file's name (stem[i] in a list file).
            raw = {"name": f"{stem}[{index}]" if is_list else stem, **raw}
        spec, problems = task_from_value(raw, display_name, base)
        issues.extend(problems)
        if spec is not None:
            tasks.append(
                LoadedTask(
                    spec=spec,
                    file=file or display_name,
                    index=index if is_list else None,
                    base_path=base,
                    located=line,
                    display=display_name,
                    locate=locate,
                )
            )
    return tasks, place_issues(issues, display_name, locate)
