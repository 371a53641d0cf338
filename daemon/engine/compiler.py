"""Compiles task specs into runnable tasks (their stacks through daemon.engine.stacks)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from daemon.config.tasks import build_events, check_events, place_issues
from daemon.core.cron import shared_schedule
from daemon.core.durations import MAX_DURATION, parse_duration
from daemon.core.errors import Issue
from daemon.core.events import EventSchedule
from daemon.core.text import did_you_mean
from daemon.engine.stacks import (
    CompiledStack,
    FunctionLibrary,
    StackCompiler,
    compile_stack,
)
from steps.base import Registry, Step

if TYPE_CHECKING:
    from daemon.config.tasks import LoadedFunction, LoadedTask, RetrySpec
    from daemon.core.abc import Schedule
    from daemon.resources.db.base import DataSource

__all__ = [
    "CompiledStack",
    "CompiledTask",
    "FunctionLibrary",
    "RetryPolicy",
    "StackCompiler",
    "compile_stack",
    "compile_task",
    "compile_tasks",
]


@dataclass(slots=True)
class RetryPolicy:
    max_attempts: int
    initial_delay: float
    max_delay: float


@dataclass(slots=True)
class CompiledTask:
    """Everything the scheduler and runner need about one task, built once at load time."""

    name: str
    file: str
    status: str
    description: str
    tags: list[str]
    request_history: bool
    data_source: str | None
    tz: ZoneInfo
    cron: str | None  # None for event schedules (and manual-only tasks)
    schedule: Schedule | None  # CronSchedule or EventSchedule
    steps: list[Step]
    on_failure: list[Step] | None
    timeout: float | None
    retry: RetryPolicy | None
    overlap: str
    jitter: float
    misfire_grace: float
    catch_up: str
    expect_success_within: float | None
    fingerprint: bytes = b""
    warnings: list[Issue] = field(default_factory=list)
    # No timeout and no step that may wait: the scheduler runs it to its end inside its batch,
    # without an asyncio task of its own (see `Step.waits`).
    inline: bool = False


# --- tasks ------------------------------------------------------------------------------------


def compile_task(
    loaded: LoadedTask,
    *,
    registry: Registry,
    default_timezone: str,
    datasources: Mapping[str, DataSource],
    configured_datasources: Iterable[str],
    default_datasource: str | None,
    functions: FunctionLibrary | None = None,
) -> tuple[CompiledTask | None, list[Issue]]:
    """Compile one loaded task; returns the task (None if it has errors) and all its issues."""
    spec = loaded.spec
    file = loaded.display or loaded.file
    base = loaded.base_path
    issues: list[Issue] = []

    def at(p: str) -> str:
        return f"{base}.{p}" if base else p

    configured = list(configured_datasources)
    ds_name = spec.data_source
    if ds_name is not None and ds_name not in configured:
        if len(configured) == 1:
            # The seed's examples name "primary_database"; with one data source the intent is clear.
            issues.append(
                Issue(
                    file,
                    at("data_source"),
                    f'data source "{ds_name}" is not configured; using "{configured[0]}", '
                    "the only one",
                    # XanoScript: the task's line (its `datasource`, or Xano's default "live")
                    loaded.line if loaded.stack_name != "function_stack" else None,
                    severity="warning",
                )
            )
            ds_name = configured[0]
        else:
            hint = did_you_mean(ds_name, configured)
            issues.append(Issue(file, at("data_source"), f'unknown data source "{ds_name}"{hint}'))
            ds_name = None
    elif ds_name is None:
        ds_name = default_datasource or (configured[0] if len(configured) == 1 else None)

    schedule = spec.schedule
    cron_expr: str | None = None
    tz_name = default_timezone
    overlap = spec.overlap
    jitter = spec.jitter
    misfire_grace = spec.misfire_grace
    catch_up = spec.catch_up
    if isinstance(schedule, str):
        cron_expr = schedule
    elif isinstance(schedule, list):
        pass  # events alone: read below
    elif schedule is not None:
        cron_expr = schedule.cron_expression
        tz_name = schedule.timezone or default_timezone
        if schedule.skip_if_running is not None and overlap is None:
            overlap = "skip" if schedule.skip_if_running else "allow"
        jitter = schedule.jitter if schedule.jitter is not None else jitter
        if schedule.misfire_grace is not None:
            misfire_grace = schedule.misfire_grace
        catch_up = schedule.catch_up or catch_up

    tz: ZoneInfo | None
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        tz = None
        issues.append(Issue(file, at("schedule.timezone"), f'unknown timezone "{tz_name}"'))

    cron: Schedule | None = None
    if cron_expr is not None and tz is not None:
        try:
            cron = shared_schedule(cron_expr, tz)
        except ValueError as exc:
            where = "schedule" if isinstance(schedule, str) else "schedule.cron_expression"
            issues.append(Issue(file, at(where), str(exc)))
    elif spec.event_specs:
        where = "schedule" if isinstance(schedule, list) else "schedule.events"
        problems: list[Issue] = []
        check_events(spec.event_specs, file, at(where), problems)
        issues.extend(problems)  # the loader's own issues: reported once (see bootstrap)
        if not problems:
            cron = EventSchedule(build_events(spec.event_specs))

    def duration(value: Any, default: float | None) -> float | None:
        # The loader (daemon.config.tasks) checked every duration against its bounds and
        # reported the bad ones at their own path; reporting here again would list them twice.
        if value is None:
            return default
        try:
            return parse_duration(value, MAX_DURATION)
        except ValueError:
            return default

    timeout = duration(spec.timeout, None)
    jitter_s = duration(jitter, 0.0) or 0.0
    grace_s = duration(misfire_grace, 60.0) or 60.0
    expect = duration(spec.expect_success_within, None)
    retry = _retry_policy(spec.retry)

    comp = StackCompiler(
        registry=registry,
        file=file,
        datasources=datasources,
        configured_datasources=configured,
        default_datasource=ds_name,
        issue_prefix=base,
        functions=functions,
    )
    stack_name = loaded.stack_name
    steps = comp.compile_list(spec.function_stack, stack_name)
    if not spec.function_stack:
        comp.issues.append(
            Issue(
                file,
                at(stack_name),
                f"empty {stack_name}: the task does nothing",
                loaded.line if stack_name != "function_stack" else None,
                severity="warning",
            )
        )
    on_failure = None
    if spec.on_failure is not None:
        comp.define("error")
        on_failure = comp.compile_list(spec.on_failure, "on_failure")
    issues.extend(comp.issues)

    name = spec.name or ""
    if any(i.severity == "error" for i in issues) or tz is None:
        return None, issues
    task = CompiledTask(
        name=name,
        file=loaded.file,
        status=spec.status,
        description=spec.description,
        tags=list(spec.tags),
        request_history=spec.request_history,
        data_source=ds_name,
        tz=tz,
        cron=cron_expr,
        schedule=cron,
        steps=steps,
        on_failure=on_failure,
        timeout=timeout,
        retry=retry,
        overlap=overlap or "skip",
        jitter=jitter_s,
        misfire_grace=grace_s,
        catch_up=catch_up or "none",
        expect_success_within=expect,
        # A digest, not the encoded spec: reloads only compare it (10,000 tasks: 4.5 MB less).
        fingerprint=hashlib.blake2b(
            msgspec.json.encode(spec, enc_hook=_fingerprint_part), digest_size=16
        ).digest(),
        warnings=[i for i in issues if i.severity == "warning"],
        inline=timeout is None and not any(s.may_wait() for s in [*steps, *(on_failure or ())]),
    )
    return task, issues


def _fingerprint_part(value: Any) -> Any:
    """What msgspec cannot encode itself contributes to a fingerprint. Pre-compiled values
    (XanoScript's Templates, dataclasses msgspec encodes) hold closures: those count by
    nothing but being there; their source text and each step's `StepSource.digest` carry
    what was written."""
    if callable(value):
        return "<compiled>"
    return repr(value)


def _retry_policy(spec: RetrySpec | None) -> RetryPolicy | None:
    """The retry policy; None when absent or invalid (the loader reported what is wrong)."""
    if spec is None:
        return None
    try:
        return RetryPolicy(
            max_attempts=max(1, int(spec.max_attempts)),
            initial_delay=parse_duration(spec.initial_delay, MAX_DURATION),
            max_delay=parse_duration(spec.max_delay, MAX_DURATION),
        )
    except ValueError:
        return None


def compile_tasks(
    loaded: Iterable[LoadedTask],
    *,
    registry: Registry,
    default_timezone: str,
    datasources: Mapping[str, DataSource],
    configured_datasources: Iterable[str],
    default_datasource: str | None,
    functions: Iterable[LoadedFunction] = (),
) -> tuple[list[CompiledTask], list[Issue]]:
    """Compile every task and every function, collecting every issue (duplicate names were
    refused when loading)."""
    tasks: list[CompiledTask] = []
    issues: list[Issue] = []
    configured = list(configured_datasources)
    library = FunctionLibrary(
        functions,
        registry=registry,
        datasources=datasources,
        configured_datasources=configured,
        default_datasource=default_datasource,
    )
    for item in loaded:
        task, found = compile_task(
            item,
            registry=registry,
            default_timezone=default_timezone,
            datasources=datasources,
            configured_datasources=configured,
            default_datasource=default_datasource,
            functions=library,
        )
        # Compile errors name a path; a JSON file also tells where that path is written.
        issues.extend(place_issues(found, item.display, item.locate))
        if task is not None:
            tasks.append(task)
    issues.extend(library.compile_all())
    return tasks, issues
