"""The words runs are described in: statuses, triggers, claim answers, run ids, outcomes.

Glossary (used the same way in every part):

- *task*: a named function stack with a schedule. A *slot* is one instant its schedule names
  (`scheduled_at`, ms since the epoch); `slot_id` is `"<task>@<ms>"`, the same on every replica
  and every retry of that slot.
- *fire*: the scheduler deciding that a slot is due. One fire has one or more *attempts* (task
  retry); each attempt is a *run* with its own `run_id` and its own history row.
- *claim*: an attempt asking the state store to own its (task, slot, attempt) before it has
  any side effect; the store answers WON, LOST, BUSY or EARLY.
- *outcome*: how a fire or an attempt ended (a `RunResult` for runs that ran, or a fire that
  never ran: `skipped`, `missed`). Outcomes go to a `RunRecorder` (logs, history).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

from daemon.core.secrets import mask_value

log = structlog.get_logger("cronstack.runs")

# --- run statuses (docs/contract.md "Runs and history") ---------------------------------------
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
TIMED_OUT: Final = "timed_out"
CANCELLED: Final = "cancelled"
INTERRUPTED: Final = "interrupted"  # its process died or lost the store (lease expired)
SKIPPED: Final = "skipped"  # overlap: never ran
MISSED: Final = "missed"  # misfire, pause, store unavailable: never ran
RUN_STATUSES: Final = frozenset(
    {RUNNING, SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, INTERRUPTED, SKIPPED, MISSED}
)

# --- what started a run -----------------------------------------------------------------------
SCHEDULE: Final = "schedule"
MANUAL: Final = "manual"
CATCH_UP: Final = "catch_up"
RETRY: Final = "retry"
DEADMAN: Final = "deadman"  # the dead-man's switch running an on_failure stack (no run row)
TRIGGERS: Final = frozenset({SCHEDULE, MANUAL, CATCH_UP, RETRY})

# --- the state store's answers to a claim -----------------------------------------------------
WON: Final = "won"  # the `running` row is written: run it
LOST: Final = "lost"  # another process owns the slot
BUSY: Final = "busy"  # skip overlap: a live run of the task elsewhere; recorded skipped
EARLY: Final = "early"  # not due yet by the store's (database) clock; nothing written

# --- the run a log line belongs to -------------------------------------------------------------
# (task, run_id) while a run executes: log lines carry them (`task` and `run_id` keys). One
# context variable set once per run; structlog's bind_contextvars cost a tenth of a fire.
CURRENT_RUN: Final[ContextVar[tuple[str, str] | None]] = ContextVar("cronstack_run", default=None)

# --- run ids ----------------------------------------------------------------------------------
_ID_PREFIX: Final = os.urandom(8).hex()
# The top bit set: every value below 2**64 prints as exactly 16 hex digits without a format
# spec (2**63 ids before it could grow a digit).
_ID_COUNTER: Final = itertools.count((1 << 63) | int.from_bytes(os.urandom(4), "big"))


def new_run_id() -> str:
    """32 hex digits like a uuid4 hex: a random per-process prefix and a counter. Unique across
    processes by the prefix; os.urandom per id was the largest cost of 10,000 fires at once."""
    return _ID_PREFIX + format(next(_ID_COUNTER), "x")


def slot_id_for(task: str, scheduled_at_ms: int) -> str:
    """Stable across replicas and retries of one slot: the task name and the slot's instant."""
    return f"{task}@{scheduled_at_ms}"


# --- what a run did ---------------------------------------------------------------------------


class StepRecord:
    """One entry of the step trace, appended when the step starts and completed when it ends."""

    __slots__ = ("_output", "duration_ms", "function", "path", "status")

    def __init__(self, path: str, function: str) -> None:
        self.path = path
        self.function = function
        self.status = RUNNING
        self.duration_ms = 0.0
        self._output: Any = None

    @property
    def output(self) -> Any:
        """The step's result with secrets masked: masked when read (history, summaries), not
        when set, so the hot path stays free and secrets seen later in the run count too."""
        return mask_value(self._output)

    @output.setter
    def output(self, value: Any) -> None:
        self._output = value

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "function": self.function,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 3),
        }


@dataclass(slots=True)
class RunResult:
    """What one run did: its outcome, returned value, error and step trace."""

    task: str
    run_id: str
    slot_id: str
    status: str
    trigger: str
    attempt: int
    scheduled_at: int  # ms
    started_at: int  # ms
    finished_at: int  # ms
    value: Any = None
    error: dict[str, Any] | None = None
    trace: list[StepRecord] = field(default_factory=list)

    @property
    def duration_ms(self) -> int:
        return self.finished_at - self.started_at


# A cancelled run (shutdown, overlap `replace`) re-raises asyncio.CancelledError, as it must;
# the runner hangs what the run did so far on that exception for the caller to record.
_PARTIAL: Final = "_cronstack_partial_result"


def attach_partial(exc: BaseException, result: RunResult) -> None:
    """Hang a cancelled run's result (status, error, the trace so far) on its CancelledError."""
    setattr(exc, _PARTIAL, result)


def partial_result(exc: BaseException) -> RunResult | None:
    """The result `attach_partial` hung on `exc`, if any."""
    result = getattr(exc, _PARTIAL, None)
    return result if isinstance(result, RunResult) else None


@dataclass(slots=True)
class Outcome:
    """How one fire (or one attempt of it) ended. `final` is false for attempts a retry follows."""

    task: str
    run_id: str
    slot_id: str
    status: str  # succeeded failed timed_out cancelled skipped missed
    trigger: str  # schedule manual catch_up retry
    attempt: int
    scheduled_at: int  # ms since epoch
    started_at: int | None  # ms; None when the fire never ran
    finished_at: int | None
    error: dict[str, Any] | None = None
    reason: str | None = None
    final: bool = True
    result: RunResult | None = None  # the trace, for the history store

    @classmethod
    def from_result(cls, result: RunResult, final: bool = True) -> Outcome:
        """The outcome of a run that ran (the runner's result, with its trace)."""
        return cls(
            task=result.task,
            run_id=result.run_id,
            slot_id=result.slot_id,
            status=result.status,
            trigger=result.trigger,
            attempt=result.attempt,
            scheduled_at=result.scheduled_at,
            started_at=result.started_at,
            finished_at=result.finished_at,
            error=result.error,
            final=final,
            result=result,
        )

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def fields(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "run_id": self.run_id,
            "slot_id": self.slot_id,
            "status": self.status,
            "trigger": self.trigger,
            "attempt": self.attempt,
            "scheduled_at": self.scheduled_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "reason": self.reason,
        }


@dataclass(slots=True)
class Claim:
    """A fire asking to own its (task, slot, attempt); `skip_overlap` checks other processes."""

    run_id: str
    task: str
    slot_id: str
    scheduled_at: int
    trigger: str
    attempt: int
    skip_overlap: bool = False


def log_outcome(outcome: Outcome) -> None:
    """One log event per outcome (`daemon.ops.logs.log_outcome` writes the same line faster)."""
    if outcome.status == SKIPPED:
        log.info("run_skipped", **outcome.fields())
    elif outcome.status == MISSED:
        log.warning("run_missed", **outcome.fields())
    elif outcome.status == SUCCEEDED:
        log.info("run_finished", **outcome.fields())
    else:
        # The failing step as the stable top-level `step` log key (docs/contract.md "Logs").
        step = outcome.error.get("step") if outcome.error else None
        log.warning("run_finished", **outcome.fields(), step=step)


class LogRecorder:
    """The default RunRecorder: one log event per outcome."""

    def __init__(self, log: Callable[[Outcome], None] = log_outcome) -> None:
        self.log = log

    async def record(self, outcome: Outcome) -> None:
        self.log(outcome)
