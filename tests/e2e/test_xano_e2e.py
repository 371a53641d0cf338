"""An exported Xano workspace run as is: `[daemon] tasks = ["task/**/*.xs"]` on the two fixtures
checks, triggers and runs on PostgreSQL and SQLite, and reads in history, the API and the
dashboard."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import CliRun, run_sync
from tests.web.admin_harness import harness

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "xano" / "task"

SCHEMA = {
    "sqlite": """
CREATE TABLE IF NOT EXISTS session (
    id INTEGER PRIMARY KEY, user_id INTEGER, expires_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS "order" (
    id INTEGER PRIMARY KEY, status TEXT NOT NULL, total NUMERIC, created_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS hourly_stats (
    id INTEGER PRIMARY KEY, hour TEXT, order_count INTEGER, revenue NUMERIC,
    volume_bucket TEXT, computed_at TIMESTAMP);
""",
    "postgres": """
CREATE TABLE IF NOT EXISTS session (
    id serial PRIMARY KEY, user_id int, expires_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS "order" (
    id serial PRIMARY KEY, status text NOT NULL, total numeric(10, 2),
    created_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS hourly_stats (
    id serial PRIMARY KEY, hour text, order_count int, revenue numeric(12, 2),
    volume_bucket text, computed_at timestamptz);
""",
}


def workspace(folder: Path, db_url: str, *, tasks: str = '["task/**/*.xs"]') -> Path:
    """An export's task/ folder beside a config naming one data source (not "live")."""
    shutil.copytree(FIXTURES, folder / "task")
    flavour = "postgres" if db_url.startswith("postgresql") else "sqlite"
    (folder / "schema.sql").write_text(SCHEMA[flavour])
    config = folder / "config.toml"
    config.write_text(
        f'[daemon]\ntasks = {tasks}\n\n[admin]\nlisten = ""\n\n'
        f'[datasources.primary]\nurl = "{db_url}"\ninit_sql = ["schema.sql"]\n'
    )
    return config


def sql(db_url: str, statements: str) -> list[tuple[Any, ...]]:
    """Run SQL against the test database; the rows of the last statement."""
    if db_url.startswith("sqlite"):
        path = db_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as conn:
            rows: list[tuple[Any, ...]] = []
            for statement in statements.split(";"):
                if statement.strip():
                    rows = [tuple(r) for r in conn.execute(statement)]
            conn.commit()
            return rows

    async def go() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(db_url)
        try:
            out: list[tuple[Any, ...]] = []
            for statement in statements.split(";"):
                if statement.strip():
                    out = [tuple(r) for r in await conn.fetch(statement)]
            return out
        finally:
            await conn.close()

    return run_sync(go())


def ts(db_url: str, moment: datetime) -> str:
    """A timestamp literal both databases read (SQLite columns hold ISO text)."""
    if db_url.startswith("sqlite"):
        return "'" + moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "'"
    return f"'{moment.isoformat()}'"


def test_check_lists_both_fixtures(cli: CliRun, tmp_path: Path) -> None:
    """`check --json`: valid; each task with its events and next fires, `cron` null; the
    "live" data source falls back to the only one configured with a warning."""
    config = workspace(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    code, out, err = cli(
        "check", "-c", str(config), "--json", "--from", "2026-03-08T02:30:00Z", "--next", "2"
    )
    assert code == 0, err
    doc = json.loads(out)
    tasks = {t["name"]: t for t in doc["tasks"]}
    assert set(tasks) == {"daily_session_cleanup", "hourly_order_stats"}
    daily = tasks["daily_session_cleanup"]
    assert daily["cron"] is None and daily["timezone"] == "UTC"
    assert daily["next"] == ["2026-03-08T03:00:00+00:00", "2026-03-09T03:00:00+00:00"]
    assert daily["schedule"]["events"] == [
        {"starts_on": "2025-01-01T03:00:00+00:00", "freq": 86400, "ends_on": None}
    ]
    assert tasks["hourly_order_stats"]["next"] == [
        "2026-03-08T03:05:00+00:00",
        "2026-03-08T04:05:00+00:00",
    ]
    warnings = [w["message"] for w in doc["warnings"]]
    assert warnings == ['data source "live" is not configured; using "primary", the only one'] * 2


async def _orders(db_url: str) -> None:
    now = datetime.now(UTC)
    rows = [
        ("paid", "10.50", now - timedelta(minutes=10)),
        ("paid", "20", now - timedelta(minutes=20)),
        ("new", "5", now - timedelta(minutes=5)),
        ("paid", "7", now - timedelta(hours=2)),
    ]
    values = ", ".join(f"('{s}', {t}, {ts(db_url, c)})" for s, t, c in rows)
    sql(db_url, f'INSERT INTO "order" (status, total, created_at) VALUES {values}')


def test_fixtures_run_on_both_databases(cli: CliRun, tmp_path: Path, db_url: str) -> None:
    """Both tasks triggered: expired sessions deleted one by one, the hour's paid orders
    counted and summed into hourly_stats; traces read like the XanoScript; history has them."""
    config = workspace(tmp_path, db_url)
    assert cli("check", "-c", str(config))[0] == 0  # creates the tables (init_sql)
    now = datetime.now(UTC)
    sql(
        db_url,
        "INSERT INTO session (user_id, expires_at) VALUES "
        f"(1, {ts(db_url, now - timedelta(days=2))}), (2, {ts(db_url, now + timedelta(days=2))}),"
        f" (3, {ts(db_url, now - timedelta(minutes=1))})",
    )
    run_sync(_orders(db_url))

    code, out, err = cli("trigger", "daily_session_cleanup", "-c", str(config), "--json")
    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "succeeded", run
    assert [(s["path"], s["function"]) for s in run["steps"]] == [
        ("stack[0]", "db.query"),
        ("stack[1]", "var"),
        ("stack[2]", "foreach"),
        ("stack[2].foreach.each[0]", "db.del"),
        ("stack[2].foreach.each[1]", "math.add"),
        ("stack[2].foreach.each[0]", "db.del"),
        ("stack[2].foreach.each[1]", "math.add"),
        ("stack[3]", "debug.log"),
    ]
    assert sql(db_url, "SELECT user_id FROM session") == [(2,)]

    code, out, err = cli("trigger", "hourly_order_stats", "-c", str(config), "--json")
    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "succeeded", run
    functions = [s["function"] for s in run["steps"]]
    assert functions == [
        "var",
        "db.query",
        "db.query",
        "var",
        "var",
        "conditional",
        "elseif",
        "debug.log",
        "db.add",
    ]
    ((hour, count, revenue, bucket, computed),) = sql(
        db_url, "SELECT hour, order_count, revenue, volume_bucket, computed_at FROM hourly_stats"
    )
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert hour in {(hour_ago - timedelta(minutes=m)).strftime("%Y-%m-%d %H:00") for m in (0, 1)}
    assert (count, Decimal(str(revenue)), bucket) == (2, Decimal("30.5"), "low")
    assert computed is not None

    code, out, err = cli("history", "-c", str(config), "--json")
    assert code == 0, err
    history = json.loads(out)
    assert {(r["task"], r["status"], r["trigger"]) for r in history} == {
        ("daily_session_cleanup", "succeeded", "manual"),
        ("hourly_order_stats", "succeeded", "manual"),
    }


async def test_api_and_dashboard_show_a_xanoscript_run(tmp_path: Path) -> None:
    """Run now through the admin API: the run's trace has XanoScript paths and statement
    names, in /api/runs/{id} and on the dashboard's run page; /api/tasks shows the events."""
    config = workspace(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    async with harness(tmp_path, config=config) as h:
        status, body = await h.get("/api/tasks")
        assert status == 200
        daily = next(t for t in body["tasks"] if t["name"] == "daily_session_cleanup")
        assert daily["cron"] is None
        assert daily["schedule"] == "every day from 2025-01-01 03:00 UTC"
        assert daily["next"] and daily["next"][0].endswith("T03:00:00+00:00")
        status, started = await h.post("/api/tasks/hourly_order_stats/run")
        assert status == 202
        run = await h.wait_run(started["run_id"])
        assert run["status"] == "succeeded", run
        assert [s["path"] for s in run["steps"]][:3] == ["stack[0]", "stack[1]", "stack[2]"]
        assert run["steps"][1]["function"] == "db.query"
        status, page = await h.get(f"/runs/{started['run_id']}")
        assert status == 200
        assert "stack[5].else[0].else[0]" in page and "db.add" in page


def test_other_documents_are_skipped_with_a_note(cli: CliRun, tmp_path: Path) -> None:
    """A table or API document among the task files is a note, never an error; a function
    document there says where functions are loaded from."""
    config = workspace(
        tmp_path, f"sqlite:///{tmp_path / 'x.db'}", tasks='["task/**/*.xs", "other/*.xs"]'
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / "order.xs").write_text("table order {\n  schema {\n    int id\n  }\n}\n")
    (other / "list.xs").write_text("query orders verb=GET {\n  stack {\n  }\n}\n")
    (other / "helper.xs").write_text("function helper {\n  stack {\n  }\n}\n")
    code, out, err = cli("check", "-c", str(config), "--strict")
    assert code == 2, out  # --strict: the data source warnings; the notes stay notes
    code, out, err = cli("check", "-c", str(config), "--json")
    assert code == 0, err
    doc = json.loads(out)
    notes = sorted((n["file"].rsplit("/", 1)[-1], n["message"]) for n in doc["notes"])
    assert [n[0] for n in notes] == ["helper.xs", "list.xs", "order.xs"]
    assert "skipped" in notes[2][1] and 'table "order"' in notes[2][1]
    assert "[daemon] functions" in notes[0][1]
    assert len(doc["tasks"]) == 2


@pytest.mark.parametrize("name", ["daily_session_cleanup", "hourly_order_stats"])
def test_fixture_files_are_the_reference_examples(name: str) -> None:
    """The fixtures are XANOSCRIPT.md §1.6's examples verbatim (the reference is the spec)."""
    reference = (Path(__file__).resolve().parents[2] / "docs/xano/XANOSCRIPT.md").read_text()
    assert (FIXTURES / f"{name}.xs").read_text().strip() in reference


def test_functions_from_xs_and_json_files(cli: CliRun, tmp_path: Path) -> None:
    """`[daemon] functions` loads `.xs` function documents and JSON function files by their
    declared names; a task calls both; a duplicate name is an error naming both files."""
    config = workspace(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    text = config.read_text().replace(
        "[daemon]\n", '[daemon]\nfunctions = ["function/**/*.xs", "functions/*.json"]\n'
    )
    config.write_text(text)
    (tmp_path / "function").mkdir()
    (tmp_path / "function" / "tax.xs").write_text(
        'function "finance/tax" {\n  input {\n    decimal amount\n  }\n  stack {\n'
        "    var $t { value = $input.amount * 0.2 }\n  }\n  response = $t\n}\n"
    )
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "greet.json").write_text(
        json.dumps(
            {
                "name": "greet",
                "input": {"who": "world"},
                "function_stack": [],
                "response": "{{ 'hello ' + input.who }}",
            }
        )
    )
    (tmp_path / "task" / "calls.xs").write_text(
        "task calls {\n  stack {\n"
        '    function.run "finance/tax" { input = {amount: 50} } as $tax\n'
        "    function.run greet as $hi\n"
        "    return { value = [$tax, $hi] }\n  }\n}\n"
    )
    code, out, err = cli("trigger", "calls", "-c", str(config), "--json")
    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "succeeded", run
    assert [s["path"] for s in run["steps"]] == [
        "stack[0]",
        "function(finance/tax).stack[0]",
        "stack[1]",
        "stack[2]",
    ]
    (tmp_path / "function" / "dup.xs").write_text("function greet {\n  stack {\n  }\n}\n")
    code, out, _ = cli("check", "-c", str(config), "--json")
    assert code == 2
    (error,) = json.loads(out)["errors"]
    assert 'duplicate function name "greet"' in error["message"]


def test_edits_change_the_fingerprint(tmp_path: Path) -> None:
    """A changed value anywhere in a statement changes the task's fingerprint (so a reload
    picks it up); the same text gives the same one."""
    from daemon.engine.compiler import compile_task
    from daemon.xano.loader import read_xs_file
    from steps import build_registry

    def fingerprint(value: int) -> bytes:
        path = tmp_path / "t.xs"
        path.write_text(
            "task t {\n  stack {\n    var $n { value = 1 }\n"
            f"    math.add $n {{ value = {value} }}\n  }}\n}}\n"
        )
        (task,), _, issues = read_xs_file(path, "t.xs", "t.xs")
        assert not issues
        compiled, problems = compile_task(
            task,
            registry=build_registry(),
            default_timezone="UTC",
            datasources={},
            configured_datasources=["live"],
            default_datasource="live",
        )
        assert compiled is not None, problems
        return compiled.fingerprint

    assert fingerprint(2) == fingerprint(2)
    assert fingerprint(2) != fingerprint(3)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ("", {"status": "active", "history": True, "source": "live", "schedule": None}),
        (
            'active = false\n  history = false\n  datasource = "test"\n  schedule = []',
            {"status": "inactive", "history": False, "source": "test", "schedule": None},
        ),
        (
            "schedule {\n    events = [{starts_on: 2025-03-17 18:33:55+0000, freq: 172800}]\n  }",
            {"status": "active", "history": True, "source": "live", "schedule": 1},
        ),
        (
            'history = "all"\n  tags = ["a"]',
            {"status": "active", "history": True, "source": "live", "schedule": None},
        ),
    ],
)
def test_task_settings(tmp_path: Path, settings: str, expected: dict[str, Any]) -> None:
    """Task settings as the loader reads them: active (default true), history (false: no
    trace kept), datasource (default "live"), schedules in both forms, `[]` = manual only;
    leading comment lines are the description."""
    from daemon.xano.loader import read_xs_file

    path = tmp_path / "t.xs"
    path.write_text(f"// Line one\n// line two\ntask t {{\n  {settings}\n  stack {{\n  }}\n}}\n")
    (task,), functions, issues = read_xs_file(path, "t.xs", "t.xs")
    assert not functions and not [i for i in issues if i.severity == "error"], issues
    spec = task.spec
    events = spec.event_specs
    assert {
        "status": spec.status,
        "history": spec.request_history,
        "source": spec.data_source,
        "schedule": len(events) if events else None,
    } == expected
    assert spec.description == "Line one\nline two"
    assert task.stack_name == "stack" and task.line == 3
