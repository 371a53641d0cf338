"""The read side of run history: runs by task and status, one run, recent runs, as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from daemon.core.secrets import mask_value
from daemon.resources.db.base import DataSource
from daemon.resources.db.values import decode_json_text
from daemon.state.sql import Dialect


def rfc3339(ms: int | None, tz: ZoneInfo) -> str | None:
    """A stored time (ms since the epoch) as RFC 3339 with milliseconds, in `tz`."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")


def run_json(row: Mapping[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """A run row as the CLI (`history --json`), the API and the dashboard show it: the
    contract's keys first, times in the task's timezone, the error masked once more."""
    return {
        "run_id": row["run_id"],
        "task": row["task"],
        "status": row["status"],
        "trigger": row.get("trigger"),
        "attempt": row.get("attempt"),
        "scheduled_at": rfc3339(row.get("scheduled_at"), tz),
        "started_at": rfc3339(row.get("started_at"), tz),
        "finished_at": rfc3339(row.get("finished_at"), tz),
        "error": mask_value(row.get("error")),
        "reason": row.get("reason"),
        "duration_ms": row.get("duration_ms"),
        "slot_id": row.get("slot_id"),
        "instance": row.get("instance"),
    }


class RunQueries:
    """Reads of `cronstack_runs` for `history`, the admin API and the dashboard.

    Rows come back as dicts with `error` (and `trace`, for one run) decoded from JSON text;
    `run_json` turns one into what users see."""

    def __init__(self, ds: DataSource, dialect: Dialect, queries: Mapping[str, str]) -> None:
        self.ds = ds
        self.dialect = dialect
        self.q = queries

    async def runs(
        self, task: str | None = None, status: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """Recent runs, newest first (by slot, then attempt), optionally of one task/status."""
        if task is not None and status is not None:
            name, params = "runs_of_task_with_status", [limit, task, status]
        elif task is not None:
            name, params = "runs_of_task", [limit, task]
        elif status is not None:
            name, params = "runs_with_status", [limit, status]
        else:
            name, params = "runs", [limit]
        rows = await self.ds.fetch(self.q[name], params)
        for row in rows:
            row["error"] = decode_json_text(row["error"])
        return rows

    async def run(self, run_id: str) -> dict[str, Any] | None:
        """One run with its step trace, or None."""
        rows = await self.ds.fetch(self.q["run"], [run_id])
        if not rows:
            return None
        row = rows[0]
        row["error"] = decode_json_text(row["error"])
        row["trace"] = decode_json_text(row["trace"])
        return row

    async def recent(self, tasks: list[str], n: int) -> dict[str, list[dict[str, Any]]]:
        """The last `n` runs of each task, newest first, in one statement."""
        if not tasks:
            return {}
        rows = await self.ds.fetch(self.q["recent_runs"], [self.dialect.array(tasks), n])
        out: dict[str, list[dict[str, Any]]] = {name: [] for name in tasks}
        for row in rows:
            row["error"] = decode_json_text(row["error"])
            out.setdefault(row["task"], []).append(row)
        for runs in out.values():
            # Neither join promises an order across its output: newest first, per task, with
            # run_id breaking ties as in every other read (manual runs of one instant).
            runs.sort(
                key=lambda r: (r["scheduled_at"], r["attempt"] or 0, r["run_id"]), reverse=True
            )
        return out

    async def last_success(self, tasks: list[str]) -> dict[str, int]:
        """When each of `tasks` last succeeded: the finished_at (ms) of its newest successful
        slot. Tasks that never did are not in the answer."""
        if not tasks:
            return {}
        rows = await self.ds.fetch(self.q["last_success"], [self.dialect.array(tasks)])
        return {r["task"]: int(r["at"]) for r in rows if r["at"] is not None}

    async def ping(self) -> None:
        await self.ds.fetch(self.q["ping"], [])
