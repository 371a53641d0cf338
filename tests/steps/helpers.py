"""Test helpers for step types: compile a raw function stack and run it with the real runner."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from daemon.core.errors import ConfigError, Issue
from daemon.core.runs import RunResult
from daemon.engine.compiler import compile_stack
from daemon.engine.runner import run_stack
from daemon.resources.bundle import Resources
from steps import build_registry
from steps.base import Registry, Step

REGISTRY: Registry = build_registry()


def compile_steps(raw: list[Any], *, defined: Iterable[str] = ()) -> list[Step]:
    """Compile a function stack; raises ConfigError when it has errors."""
    return compile_stack(raw, registry=REGISTRY, defined=defined).steps


def compile_issues(raw: list[Any]) -> list[Issue]:
    """The errors compiling `raw` reports (empty when it compiles)."""
    try:
        compile_steps(raw)
    except ConfigError as exc:
        return [i for i in exc.issues if i.severity == "error"]
    return []


def compile_warnings(raw: list[Any]) -> list[Issue]:
    """The warnings of a stack that compiles."""
    return compile_stack(raw, registry=REGISTRY).warnings


async def run(
    raw: list[Any], *, resources: Resources | None = None, timeout: float | None = None
) -> RunResult:
    """Compile and run a stack with the real runner."""
    steps = compile_steps(raw)
    return await run_stack(steps, resources=resources or Resources(), timeout=timeout)


def step(function: str, **fields: Any) -> dict[str, Any]:
    """A raw step object, e.g. `step("Math", operation="sum", values=[1, 2])`."""
    return {"function": function, **fields}
