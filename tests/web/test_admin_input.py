"""Hostile identifiers at the admin listener: 400 when malformed, 404 when unknown, never 500."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.web.admin_harness import TOKEN, harness, write_config

LONG = "a" * 5000
# (method, path with query, status, fragment of the error). Percent-escapes reach the handlers
# decoded: %00 is a NUL in the run id, %FF%FE bytes that are not UTF-8.
CASES: list[tuple[str, str, int, str]] = [
    ("GET", "/api/runs/%00", 400, "malformed run id"),
    ("GET", "/api/runs/abc%00def", 400, "malformed run id"),
    ("GET", "/api/runs/%01", 400, "malformed run id"),
    ("GET", "/api/runs/a%0Ab", 400, "malformed run id"),
    ("GET", "/api/runs/%7F", 400, "malformed run id"),
    ("GET", "/api/runs/%FF%FE", 400, "malformed run id"),
    ("GET", "/api/runs/%C3%A9t%C3%A9", 400, "malformed run id"),
    ("GET", "/api/runs/a%20b", 400, "malformed run id"),
    ("GET", "/api/runs/" + LONG, 400, "malformed run id"),
    ("GET", "/api/runs/" + "a" * 65, 400, "malformed run id"),
    ("GET", "/api/runs/0123abcd", 404, 'unknown run "0123abcd"'),
    ("GET", "/api/runs/" + "f" * 32, 404, "unknown run"),
    ("GET", "/api/runs/" + "a" * 64, 404, "unknown run"),
    ("GET", "/api/runs/some-legacy_id", 404, "unknown run"),
    ("GET", "/api/runs?task=%00", 400, "malformed task name"),
    ("GET", "/api/runs?task=a%09b", 400, "malformed task name"),
    ("GET", "/api/runs?task=" + LONG, 400, "malformed task name"),
    ("GET", "/api/runs?task=%20", 400, "malformed task name"),
    ("GET", "/api/runs?task=nope", 404, 'unknown task "nope"'),
    ("GET", "/api/runs?task=%C3%A9t%C3%A9", 404, 'unknown task "été"'),
    ("GET", "/api/runs?status=%00", 400, 'unknown status "\\x00"'),
    ("GET", "/api/runs?status=" + LONG, 400, "unknown status"),
    ("GET", "/api/runs?limit=%00", 400, "limit must be"),
    ("GET", "/api/runs?limit=%C2%B2", 400, "limit must be"),
    ("GET", "/api/runs?limit=-1", 400, "limit must be"),
    ("GET", "/api/runs?limit=99999999999999999999999999", 400, "limit must be"),
    ("GET", "/api/runs?limit=1001", 400, "limit must be"),
    ("POST", "/api/tasks/%00/run", 400, "malformed task name"),
    ("POST", "/api/tasks/a%0Ab/pause", 400, "malformed task name"),
    ("POST", "/api/tasks/" + LONG + "/resume", 400, "malformed task name"),
    ("POST", "/api/tasks/nope/run", 404, 'unknown task "nope"'),
    ("GET", "/runs/%00", 400, "malformed run id"),
    ("GET", "/runs?task=%00", 400, "malformed task name"),
    ("GET", "/runs/0123abcd", 404, "unknown run"),
]


@pytest.mark.parametrize("store", ["postgresql", "sqlite"])
async def test_identifiers_are_validated_before_any_query(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    """Every row answers its status with its message, on a PostgreSQL and a SQLite store; the
    API answers JSON, the dashboard HTML; nothing reaches the database malformed."""
    state_url = request.getfixturevalue("pg_url") if store == "postgresql" else None
    async with harness(tmp_path, state_url=state_url) as h:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        failures = []
        for method, path, status, fragment in CASES:
            async with h.session.request(method, h.url + path, headers=headers) as resp:
                text = await resp.text()
                body = await resp.json() if resp.content_type == "application/json" else None
            got = body["error"] if body is not None else text
            if resp.status != status or fragment not in got:
                failures.append(f"{method} {path[:60]}: {resp.status} {got[:200]}")
            elif path.startswith("/api/") and body != {"error": body["error"], "status": status}:
                failures.append(f"{method} {path[:60]}: not the API's error shape: {body}")
        assert not failures, "\n".join(failures)
        # The store still answers (nothing left a connection in a failed state).
        status, runs = await h.get("/api/runs?limit=5")
        assert status == 200 and runs == {"runs": []}


@pytest.mark.parametrize("store", ["postgresql", "sqlite"])
@pytest.mark.parametrize("task", ["a\x00b", "tab\there", "x" * 201])
def test_history_refuses_a_malformed_task_name(
    cli: Any, tmp_path: Path, store: str, task: str, request: pytest.FixtureRequest
) -> None:
    """`cronstack history TASK` checks the name before querying: exit 2, no traceback."""
    url = request.getfixturevalue("pg_url") if store == "postgresql" else None
    config = write_config(tmp_path, state_url=url)
    code, out, err = cli("history", task, "-c", str(config), "--json")
    assert code == 2 and out == "" and "Traceback" not in err
    assert "task name" in err
    code, out, _err = cli("history", "unknown-task", "-c", str(config), "--json")
    assert code == 0 and json.loads(out) == []
