"""The run context: one per run; holds variables, built-ins, resources and the step trace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from daemon.core.errors import ExpressionError, ReturnSignal, RunError, StepError
from daemon.core.runs import StepRecord
from daemon.core.secrets import SecretEnv

if TYPE_CHECKING:
    from daemon.resources.bundle import Resources
    from daemon.resources.cache import Cache
    from daemon.resources.db.base import DataSource
    from daemon.resources.http.client import HttpClient
    from steps.base import Step


@dataclass(slots=True)
class TaskInfo:
    """What `{{task.*}}` shows: identity of this run and of its slot."""

    name: str
    run_id: str
    slot_id: str
    scheduled_at: int  # ms since epoch: the slot, or the trigger moment for manual runs
    attempt: int = 1
    trigger: str = "manual"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "run_id": self.run_id,
            "slot_id": self.slot_id,
            "scheduled_at": self.scheduled_at,
            "attempt": self.attempt,
            "trigger": self.trigger,
        }


_MISSING = object()


class RunContext:
    """State of one run. Steps read resources through it and compiled expressions read names.

    `vars` is the run's single variable scope (docs/contract.md "Variables"); loop iterations
    that run
    concurrently get a child context whose `vars` overlays the item variable on the shared scope.
    """

    __slots__ = (
        "_builtins",
        "data_source",
        "error",
        "resources",
        "scope",
        "started_mono",
        "started_ms",
        "task",
        "trace",
        "tz",
        "vars",
    )

    def __init__(
        self,
        *,
        task: TaskInfo,
        resources: Resources,
        tz: ZoneInfo,
        data_source: str | None = None,
        started_ms: int | None = None,
    ) -> None:
        self.task = task
        self.resources = resources
        self.tz = tz
        self.data_source = data_source or resources.default_datasource
        self.scope: dict[str, Any] = {}
        self.vars: Mapping[str, Any] = self.scope
        self.trace: list[StepRecord] = []
        self.error: dict[str, Any] | None = None
        self.started_ms = int(time.time() * 1000) if started_ms is None else started_ms
        self.started_mono = time.monotonic()
        self._builtins: dict[str, Any] = {}

    # --- names --------------------------------------------------------------------------------

    def set_var(self, name: str, value: Any) -> None:
        self.scope[name] = value

    def lookup(self, name: str) -> Any:
        """Resolve a root name: variables first, then built-ins; unknown names are an error."""
        value = self.vars.get(name, _MISSING)
        if value is not _MISSING:
            return value
        return self.builtin(name)

    def builtin(self, name: str) -> Any:
        if name == "execution_duration":
            return int((time.monotonic() - self.started_mono) * 1000)
        if name == "error":
            return self.error
        cached = self._builtins.get(name, _MISSING)
        if cached is not _MISSING:
            return cached
        value = self._compute_builtin(name)
        self._builtins[name] = value
        return value

    def _compute_builtin(self, name: str) -> Any:
        if name == "timestamp":
            return self.started_ms
        if name == "task":
            return self.task.as_dict()
        if name == "env":
            # Values read through `env` become secrets: masked in logs, traces and errors.
            return SecretEnv(self.resources.env)
        if name in ("current_date", "start_of_day", "end_of_day"):
            local = datetime.fromtimestamp(self.started_ms / 1000, self.tz)
            if name == "current_date":
                return local.date().isoformat()
            midnight = datetime(local.year, local.month, local.day, tzinfo=self.tz)
            if name == "end_of_day":
                # The next local midnight, built on the calendar (not +24h) so DST days are exact.
                nxt = local.date() + timedelta(days=1)
                midnight = datetime(nxt.year, nxt.month, nxt.day, tzinfo=self.tz)
            return int(midnight.timestamp() * 1000)
        raise ExpressionError(f'undefined variable "{name}"', variable=name)

    # --- resources ----------------------------------------------------------------------------

    def db(self, name: str | None = None) -> DataSource:
        key = name or self.data_source
        if key is None or key not in self.resources.datasources:
            raise StepError(f'data source "{key}" is not configured')
        return self.resources.datasources[key]

    def endpoint(self, name: str) -> str | None:
        return self.resources.endpoints.get(name)

    @property
    def http(self) -> HttpClient:
        if self.resources.http is None:
            raise StepError("HTTP client is not available")
        return self.resources.http

    @property
    def cache(self) -> Cache:
        if self.resources.cache is None:
            raise StepError("cache is not configured")
        return self.resources.cache

    # --- executing steps ----------------------------------------------------------------------

    def child(self, overlay: dict[str, Any]) -> RunContext:
        """A context for one concurrent loop iteration: same run, item variable overlaid."""
        other = object.__new__(RunContext)
        for slot in RunContext.__slots__:
            setattr(other, slot, getattr(self, slot))
        other.vars = _Overlay(overlay, self.vars)
        return other

    def function_scope(self, variables: dict[str, Any]) -> RunContext:
        """A context for a called function: same run, trace and resources; its own scope."""
        other = object.__new__(RunContext)
        for slot in RunContext.__slots__:
            setattr(other, slot, getattr(self, slot))
        other.scope = dict(variables)
        other.vars = other.scope
        other.error = None
        return other

    async def run_steps(self, steps: Sequence[Step]) -> None:
        for step in steps:
            await self.run_step(step)

    async def run_step(self, step: Step) -> Any:
        record = StepRecord(step.path, step.label)
        self.trace.append(record)
        start = time.perf_counter()
        try:
            value = await step.run(self)
        except ReturnSignal:
            record.status = "succeeded"
            raise
        except asyncio.CancelledError:
            record.status = "cancelled"
            raise
        except RunError as exc:
            record.status = "failed"
            if exc.step is None:
                exc.step = step.path
            raise
        except Exception as exc:
            # A bug or an unexpected library error: still a recorded, typed step failure.
            record.status = "failed"
            raise StepError(f"{type(exc).__name__}: {exc}", step=step.path) from exc
        finally:
            record.duration_ms = (time.perf_counter() - start) * 1000
        record.status = "succeeded"
        record._output = value
        if step.return_variable:
            self.scope[step.return_variable] = value
        return value


class _Overlay(Mapping[str, Any]):
    """Read view: loop-local names first, then the run scope (writes always go to the scope)."""

    __slots__ = ("_local", "_shared")

    def __init__(self, local: dict[str, Any], shared: Mapping[str, Any]) -> None:
        self._local = local
        self._shared = shared

    def __getitem__(self, key: str) -> Any:
        if key in self._local:
            return self._local[key]
        return self._shared[key]

    def get(self, key: str, default: Any = None) -> Any:
        local = self._local.get(key, _MISSING)
        if local is not _MISSING:
            return local
        return self._shared.get(key, default)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter({**self._shared, **self._local})

    def __len__(self) -> int:
        return len({**self._shared, **self._local})
