"""Error types: config problems carrying file/path/position, and the run-time errors steps raise."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import msgspec


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found while loading or checking: where it is and what is wrong."""

    file: str
    path: str
    message: str
    line: int | None = None
    column: int | None = None
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.path:
            where += f": {self.path}"
        if self.line is None and self.column is not None:
            return f"{where}: {self.message} (column {self.column} of the expression)"
        return f"{where}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


class ConfigError(ValueError):
    """Invalid configuration or task definition; carries every issue found, not just the first."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class TaskLookupError(LookupError):
    """A task name the scheduler (or the admin API, or the CLI) does not know."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f'unknown task "{name}"')


def join_path(base: str, key: str | int) -> str:
    """Append a key or index to a dotted step path: `function_stack[2]` + `table`."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    if not base:
        return key
    return f"{base}.{key}"


# --- msgspec's validation messages as issues ---------------------------------------------------

_AT = re.compile(r" - at `\$(.*)`$")
_TICKS = re.compile(r"`([^`]*)`")


def join_msgspec_path(base: str, suffix: str) -> str:
    """`function_stack` + msgspec's `[3].table` -> `function_stack[3].table`."""
    if not suffix:
        return base
    if suffix.startswith("."):
        return join_path(base, suffix[1:]) if base else suffix[1:]
    return base + suffix


def issue_from_validation(error: msgspec.ValidationError, file: str, path: str) -> Issue:
    """Turn msgspec's "Expected `int`, got `str` - at `$.retry.max_attempts`" into our Issue:
    the one converter for config files and step fields alike."""
    message = str(error)
    match = _AT.search(message)
    if match:
        path = join_msgspec_path(path, match.group(1))
        message = message[: match.start()]
    unknown = re.fullmatch(r"Object contains unknown field `([^`]*)`", message)
    if unknown:
        return Issue(file, join_path(path, unknown.group(1)), f'unknown key "{unknown.group(1)}"')
    missing = re.fullmatch(r"Object missing required field `([^`]*)`", message)
    if missing:
        key = missing.group(1)
        return Issue(file, join_path(path, key), f'missing required key "{key}"')
    message = _TICKS.sub(r"\1", message)
    message = message.replace("Expected", "expected", 1)
    return Issue(file, path, message)


# --- run-time errors -------------------------------------------------------------------------
# Each carries the contract's `type` name (docs/contract.md "Errors") and the path of the step that
# raised it, so `error.step` and the run record can point at it.


class RunError(Exception):
    """Base of every error a step can raise; `type_name` is what `error.type` shows."""

    type_name = "StepError"

    def __init__(self, message: str, *, step: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.extra: dict[str, Any] = extra

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type_name, "message": self.message, "step": self.step}
        data.update(self.extra)
        return data


class ExpressionError(RunError, ValueError):
    """An expression failed to parse or evaluate (undefined variable, bad operand, limits)."""

    type_name = "ExpressionError"

    def __init__(
        self, message: str, *, step: str | None = None, column: int | None = None, **extra: Any
    ) -> None:
        super().__init__(message, step=step, **extra)
        self.column = column


class DatabaseError(RunError):
    """A database step failed: unknown column in dynamic data, constraint, connection loss."""

    type_name = "DatabaseError"


class HttpError(RunError):
    """An External API Request failed: non-2xx status, connection error, blocked address."""

    type_name = "HttpError"


class CacheError(RunError):
    """The cache backend is unavailable or the operation is invalid for the stored value."""

    type_name = "CacheError"


class CommandError(RunError):
    """A Run Command step failed: an exit code outside `ok_exit_codes`, or it could not start.

    Carries `exit_code` (None when it never ran; negative: killed by that signal) and `stderr`,
    the last 1 KiB of its standard error.
    """

    type_name = "CommandError"

    def __init__(
        self,
        message: str,
        *,
        exit_code: int | None = None,
        stderr: str = "",
        step: str | None = None,
    ) -> None:
        super().__init__(message, step=step, exit_code=exit_code, stderr=stderr)
        self.exit_code = exit_code
        self.stderr = stderr


class PythonError(RunError):
    """A Call Python step failed: the function raised, or returned a value that is not JSON."""

    type_name = "PythonError"


class StepTimeoutError(RunError, TimeoutError):
    """A step or the whole run exceeded its timeout."""

    type_name = "TimeoutError"


class StepError(RunError):
    """Raised by Throw Error (with its own `type`) and by steps for invalid run-time input."""

    def __init__(
        self, message: str, *, type_name: str = "StepError", step: str | None = None
    ) -> None:
        super().__init__(message, step=step)
        self.type_name = type_name


class ReturnSignal(Exception):  # a control-flow signal, not an error
    """Raised by the Return step to end the stack with a value (not an error)."""

    def __init__(self, value: Any = None) -> None:
        super().__init__("return")
        self.value = value


class BreakSignal(ReturnSignal):
    """Break Out: ends the innermost loop (For Each, For, While). A Return subclass, so every
    block that lets a Return through (try/finally, transactions, functions) treats it alike."""

    def __init__(self) -> None:
        super().__init__(None)


class ContinueSignal(ReturnSignal):
    """Continue: ends this iteration of the innermost loop (see BreakSignal)."""

    def __init__(self) -> None:
        super().__init__(None)
