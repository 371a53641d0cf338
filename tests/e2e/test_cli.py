"""`cronstack check` and `cronstack trigger` from the command line: output, exits, errors."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import CliRun, run_sync

REPO = Path(__file__).resolve().parents[2]
HOSTILE = 'orders"; DROP TABLE orders; --'


def check_json(cli: CliRun, config: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli("check", "-c", str(config), "--json", *extra)
    return code, json.loads(out)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def repo_copy(dest: Path) -> Path:
    """The repo's example config, tasks and SQL, copied so the demo database lands in `dest`."""
    shutil.copy(REPO / "config.toml", dest / "config.toml")
    shutil.copytree(REPO / "tasks", dest / "tasks")
    shutil.copytree(REPO / "sql", dest / "sql")
    return dest / "config.toml"


def example_task_names() -> list[str]:
    """Names of the example tasks, read from the task files themselves (JSON with comments)."""
    names = []
    for path in sorted((REPO / "tasks").iterdir()):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(('"name":', "name =")):
                names.append(stripped.split(":" if ":" in stripped else "=", 1)[1].strip(' ",'))
                break
    return names


def sqlite_rows(path: Path | str, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [tuple(row) for row in conn.execute(sql)]


def config_for(folder: Path, db_url: str = "", *, extra: str = "") -> Path:
    """A config in `folder` on the given database (demo tables created by init_sql)."""
    text = '[daemon]\ntimezone = "UTC"\n\n[admin]\nlisten = ""\n\n'
    text += '[http]\nallow_hosts = ["127.0.0.0/8", "localhost"]\n\n'
    if db_url:
        flavour = "postgres" if db_url.startswith("postgresql") else "sqlite"
        shutil.copytree(REPO / "sql", folder / "sql", dirs_exist_ok=True)
        text += f'[datasources.primary]\nurl = "{db_url}"\ninit_sql = ["sql/demo_{flavour}.sql"]\n'
    return write(folder / "config.toml", text + extra)


def task_file(folder: Path, name: str, task: dict[str, Any]) -> Path:
    return write(folder / "tasks" / f"{name}.json", json.dumps(task))


def log_task(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "function_stack": [{"function": "Log", "message": "x"}], **fields}


# --- check on the example config ----------------------------------------------------------------


def test_check_example_config_lists_every_task(
    cli: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check -c config.toml` on the example config exits 0 and lists every task with fires."""
    monkeypatch.chdir(tmp_path)
    config = repo_copy(tmp_path)
    code, out, err = cli("check", "-c", str(config), "--next", "3")
    assert code == 0, err
    names = example_task_names()
    assert len(names) == len(list((REPO / "tasks").iterdir()))
    for name in names:
        assert name in out
    assert out.count("next: ") == 3 * len(names)
    assert (tmp_path / "var" / "cronstack.db").is_file()  # the demo db landed in the copy


def test_check_json_document_shape(
    cli: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check --json` prints one document with the keys and types docs/contract.md fixes."""
    monkeypatch.chdir(tmp_path)
    code, doc = check_json(cli, repo_copy(tmp_path), "--next", "2")
    assert code == 0
    assert set(doc) == {"valid", "errors", "warnings", "tasks"}
    assert doc["valid"] is True and doc["errors"] == [] and doc["warnings"] == []
    assert sorted(t["name"] for t in doc["tasks"]) == sorted(example_task_names())
    for task in doc["tasks"]:
        assert {"name", "status", "cron", "timezone", "next"} <= set(task)
        assert task["status"] in ("active", "inactive")
        assert isinstance(task["cron"], str) and isinstance(task["timezone"], str)
        assert len(task["next"]) == 2
        for fire in task["next"]:
            assert fire[-6] in "+-" and fire[-3] == ":"  # RFC 3339 with an offset


def test_check_json_issue_shape(cli: CliRun, tmp_path: Path) -> None:
    """Errors and warnings carry exactly file, path, line, column and message."""
    config = config_for(tmp_path)
    task_file(tmp_path, "bad", log_task("bad", schedule="61 * * * *"))
    stack = [{"function": "Create Variable", "name": "a", "value": "{{ nope }}"}]
    task_file(tmp_path, "warn", {"name": "warn", "function_stack": stack})
    code, doc = check_json(cli, config)
    assert code == 2 and doc["valid"] is False
    for issue in doc["errors"] + doc["warnings"]:
        assert set(issue) == {"file", "path", "line", "column", "message"}
    assert len(doc["errors"]) == 1 and len(doc["warnings"]) == 1


def test_check_lists_inactive_task_with_would_be_fires(
    cli: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inactive task is listed with status inactive and its would-be fire times."""
    monkeypatch.chdir(tmp_path)
    _, doc = check_json(cli, repo_copy(tmp_path), "--from", "2026-03-01T00:00:00Z", "--next", "2")
    (task,) = [t for t in doc["tasks"] if t["name"] == "Subscription Reminders"]
    assert task["status"] == "inactive"
    assert task["next"] == ["2026-03-01T10:00:00+00:00", "2026-03-02T10:00:00+00:00"]


def test_check_json_stdout_is_one_document_in_a_subprocess(tmp_path: Path) -> None:
    """The installed `cronstack` script prints only the JSON document on stdout."""
    config = config_for(tmp_path)
    task_file(tmp_path, "a", log_task("a", schedule="@hourly"))
    cmd = [sys.executable, "-m", "daemon.cli", "check", "-c", str(config), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tasks"][0]["cron"] == "@hourly"


# --- DST through the CLI ------------------------------------------------------------------------

DST_TABLE = [
    # America/New_York: spring forward 2026-03-08 02:00 -> 03:00; back 2026-11-01 02:00 -> 01:00
    (
        "America/New_York",
        "30 2 * * *",
        "2026-03-07T12:00:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"],
    ),
    (
        "America/New_York",
        "0 * * * *",
        "2026-03-08T00:30:00",
        ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"],
    ),
    (
        "America/New_York",
        "0 8 * * *",
        "2026-03-07T12:00:00",
        ["2026-03-08T08:00:00-04:00", "2026-03-09T08:00:00-04:00"],
    ),
    (
        "America/New_York",
        "30 1 * * *",
        "2026-10-31T12:00:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"],
    ),
    (
        "America/New_York",
        "*/30 * * * *",
        "2026-11-01T00:45:00",
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    ),
    # an offset in --from is taken as given (00:00 EST), not re-read in the task's zone
    (
        "America/New_York",
        "30 2 * * *",
        "2026-03-08T05:00:00Z",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    # Europe/Berlin: spring forward 2026-03-29 02:00 -> 03:00; back 2026-10-25 03:00 -> 02:00
    (
        "Europe/Berlin",
        "30 2 * * *",
        "2026-03-28T12:00:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"],
    ),
    (
        "Europe/Berlin",
        "0 * * * *",
        "2026-03-29T00:30:00",
        ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"],
    ),
    (
        "Europe/Berlin",
        "0 0 2 * * *",  # six fields, leading seconds
        "2026-03-28T12:00:00",
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"],
    ),
    (
        "Europe/Berlin",
        "30 2 * * *",
        "2026-10-24T12:00:00",
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00"],
    ),
    (
        "Europe/Berlin",
        "0 * * * *",
        "2026-10-25T01:30:00",
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
            "2026-10-25T04:00:00+01:00",
        ],
    ),
    (
        "Europe/Berlin",
        "@daily",
        "2026-10-24T12:00:00",
        ["2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"],
    ),
]


@pytest.mark.parametrize(("tz", "cron", "start", "expected"), DST_TABLE)
def test_check_next_across_dst(
    cli: CliRun, tmp_path: Path, tz: str, cron: str, start: str, expected: list[str]
) -> None:
    """`check --next N --from TIME` follows docs/contract.md's DST rules in the task's timezone."""
    config = config_for(tmp_path)
    schedule = {"cron_expression": cron, "timezone": tz}
    task_file(tmp_path, "t", log_task("t", schedule=schedule))
    code, doc = check_json(cli, config, "--next", str(len(expected)), "--from", start)
    assert code == 0
    (task,) = doc["tasks"]
    assert (task["timezone"], task["cron"], task["next"]) == (tz, cron, expected)


def test_from_without_offset_is_read_in_each_tasks_timezone(cli: CliRun, tmp_path: Path) -> None:
    """One offset-less `--from` is 08:00 New York time for one task and 08:00 Berlin for another."""
    config = config_for(tmp_path)
    for name, tz in (("ny", "America/New_York"), ("berlin", "Europe/Berlin")):
        task_file(
            tmp_path,
            name,
            log_task(name, schedule={"cron_expression": "0 9 * * *", "timezone": tz}),
        )
    _, doc = check_json(cli, config, "--next", "1", "--from", "2026-06-01T08:00:00")
    fires = {t["name"]: t["next"] for t in doc["tasks"]}
    assert fires == {"ny": ["2026-06-01T09:00:00-04:00"], "berlin": ["2026-06-01T09:00:00+02:00"]}


# --- trigger ------------------------------------------------------------------------------------


def test_trigger_json_shape(cli: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`trigger --json` prints task, run_id, status, error and a step trace; exit 0 on success."""
    monkeypatch.chdir(tmp_path)
    config = repo_copy(tmp_path)
    code, out, _ = cli("trigger", "Task Metrics", "-c", str(config), "--json")
    doc = json.loads(out)
    assert code == 0
    assert set(doc) == {"task", "run_id", "status", "error", "steps"}
    assert (doc["task"], doc["status"], doc["error"]) == ("Task Metrics", "succeeded", None)
    assert isinstance(doc["run_id"], str) and doc["run_id"]
    assert [(s["path"], s["function"], s["status"]) for s in doc["steps"]] == [
        ("function_stack[0]", "query_all_records", "succeeded"),
        ("function_stack[1]", "add_record", "succeeded"),
        ("function_stack[2]", "conditional", "succeeded"),
    ]
    for step in doc["steps"]:
        assert set(step) == {"path", "function", "status", "duration_ms"}
        assert isinstance(step["duration_ms"], int | float) and step["duration_ms"] >= 0
    rows = sqlite_rows(
        tmp_path / "var" / "cronstack.db", "SELECT task_name, records_processed FROM task_metrics"
    )
    assert rows == [("Task Metrics", 3)]


def trigger_config(folder: Path) -> Path:
    config = config_for(folder)
    task_file(folder, "ok", log_task("ok", schedule="@daily"))
    task_file(folder, "off", log_task("off", status="inactive", schedule="@daily"))
    throw = [{"function": "Throw Error", "message": "boom {{1 + 1}}", "type": "QuotaError"}]
    task_file(folder, "fails", {"name": "fails", "function_stack": throw})
    return config


def invalid_config(folder: Path) -> Path:
    config = trigger_config(folder)
    task_file(folder, "broken", log_task("broken", schedule="not a cron"))
    return config


@pytest.mark.parametrize(
    ("make", "task", "code", "status"),
    [
        (trigger_config, "ok", 0, "succeeded"),
        (trigger_config, "off", 0, "succeeded"),  # trigger runs inactive tasks
        (trigger_config, "fails", 1, "failed"),
        (trigger_config, "nope", 2, None),  # unknown task
        (invalid_config, "ok", 2, None),  # another task is invalid: nothing runs
    ],
)
def test_trigger_exit_codes(
    cli: CliRun,
    tmp_path: Path,
    make: Callable[[Path], Path],
    task: str,
    code: int,
    status: str | None,
) -> None:
    """trigger exits 0 succeeded, 1 failed, 2 unknown task or invalid config."""
    config = make(tmp_path)
    got, out, err = cli("trigger", task, "-c", str(config), "--json")
    assert got == code, err
    if status is None:
        assert out == ""
        assert "unknown task" in err or "broken.json" in err
    else:
        assert json.loads(out)["status"] == status


def test_trigger_failed_reports_error_object(cli: CliRun, tmp_path: Path) -> None:
    """A failed run's error has its type, message and the failing step's path."""
    code, out, _ = cli("trigger", "fails", "-c", str(trigger_config(tmp_path)), "--json")
    doc = json.loads(out)
    assert code == 1
    assert doc["error"] == {"type": "QuotaError", "message": "boom 2", "step": "function_stack[0]"}
    assert [s["status"] for s in doc["steps"]] == ["failed"]


def test_trigger_applies_timeout_and_runs_on_failure(cli: CliRun, tmp_path: Path) -> None:
    """A Sleep past the task timeout ends timed_out (exit 1) and on_failure sees `error`."""
    config = config_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    on_failure = [
        {
            "function": "Add Record",
            "table": "error_logs",
            "data": {
                "task_name": "{{task.name}}",
                "error_message": "{{error.type}}: {{error.message}}",
            },
        }
    ]
    stack = [{"function": "Log", "message": "start"}, {"function": "Sleep", "duration": "30s"}]
    task = {"name": "slow", "timeout": "200ms", "function_stack": stack, "on_failure": on_failure}
    task_file(tmp_path, "slow", task)
    code, out, _ = cli("trigger", "slow", "-c", str(config), "--json")
    doc = json.loads(out)
    assert code == 1
    assert doc["status"] == "timed_out"
    assert doc["error"]["type"] == "TimeoutError" and doc["error"]["step"] == "function_stack[1]"
    assert [(s["path"], s["status"]) for s in doc["steps"][:2]] == [
        ("function_stack[0]", "succeeded"),
        ("function_stack[1]", "cancelled"),
    ]
    (row,) = sqlite_rows(tmp_path / "db.sqlite", "SELECT task_name, error_message FROM error_logs")
    assert row[0] == "slow" and row[1].startswith("TimeoutError: ") and "0.2s" in row[1]


# --- bad input ----------------------------------------------------------------------------------


class Bad:
    """One bad input: the files it writes and the error `check` must report for it."""

    def __init__(
        self,
        files: dict[str, str],
        file: str,
        path: str,
        message: str,
        line: int | None = None,
        column: int | None = None,
        config: str = "",
    ) -> None:
        self.files, self.file, self.path, self.message = files, file, path, message
        self.line, self.column, self.config = line, column, config

    def found_in(self, errors: list[dict[str, Any]]) -> bool:
        return any(
            e["file"] == self.file
            and e["path"] == self.path
            and self.message in e["message"]
            and (self.line is None or e["line"] == self.line)
            and (self.column is None or e["column"] == self.column)
            for e in errors
        )


def step_task(name: str, *steps: dict[str, Any]) -> str:
    return json.dumps({"name": name, "function_stack": list(steps)})


BAD = {
    "invalid_toml": Bad(
        {"tasks/bad_toml.toml": 'name = "bad_toml"\nschedule = "* * * * *\n'},
        "tasks/bad_toml.toml",
        "",
        "invalid TOML",
        line=2,
    ),
    "invalid_json": Bad(
        {"tasks/bad_json.json": '{\n  "name": "bad_json",\n  "schedule" "@daily"\n}\n'},
        "tasks/bad_json.json",
        "",
        "invalid JSON",
        line=3,
        column=14,
    ),
    "unknown_config_key": Bad(
        {}, "config.toml", "daemon.colour", 'unknown key "colour"', config='colour = "red"\n'
    ),
    "unknown_task_key": Bad(
        {"tasks/task_key.json": json.dumps({**log_task("task_key"), "colour": "red"})},
        "tasks/task_key.json",
        "colour",
        'unknown key "colour"',
    ),
    "unknown_step_key": Bad(
        {"tasks/step_key.json": step_task("step_key", {"function": "Log", "mesage": "x"})},
        "tasks/step_key.json",
        "function_stack[0].mesage",
        'unknown key "mesage"',
    ),
    "unknown_function": Bad(
        {"tasks/fn.json": step_task("fn", {"function": "Query All Record", "table": "orders"})},
        "tasks/fn.json",
        "function_stack[0].function",
        'unknown function "Query All Record" (did you mean "Query All Records"?)',
    ),
    "unknown_table": Bad(
        {
            "tasks/table.json": step_task(
                "table", {"function": "Query All Records", "table": "order"}
            )
        },
        "tasks/table.json",
        "function_stack[0].table",
        'unknown table "order" (did you mean "orders"?)',
    ),
    "unknown_column": Bad(
        {
            "tasks/column.json": step_task(
                "column",
                {"function": "Query All Records", "table": "orders", "filter": {"totl": 1}},
            )
        },
        "tasks/column.json",
        "function_stack[0].filter.totl",
        'unknown column "totl"',
    ),
    "hostile_identifier": Bad(
        {
            "tasks/hostile.json": step_task(
                "hostile", {"function": "Query All Records", "table": HOSTILE}
            )
        },
        "tasks/hostile.json",
        "function_stack[0].table",
        "unknown table",
    ),
    "dunder_attribute": Bad(
        {
            "tasks/dunder.json": step_task(
                "dunder", {"function": "Create Variable", "name": "a", "value": "{{''.__class__}}"}
            )
        },
        "tasks/dunder.json",
        "function_stack[0].value",
        "__class__",
    ),
    "dunder_import": Bad(
        {
            "tasks/import.json": step_task(
                "import",
                {"function": "Create Variable", "name": "a", "value": "{{__import__('os')}}"},
            )
        },
        "tasks/import.json",
        "function_stack[0].value",
        "__import__",
    ),
    "bad_timezone": Bad(
        {
            "tasks/tz.json": json.dumps(
                log_task("tz", schedule={"cron_expression": "@daily", "timezone": "Mars/Olympus"})
            )
        },
        "tasks/tz.json",
        "schedule.timezone",
        'unknown timezone "Mars/Olympus"',
    ),
    "invalid_cron": Bad(
        {"tasks/cron.json": json.dumps(log_task("cron", schedule="61 * * * *"))},
        "tasks/cron.json",
        "schedule",
        'invalid cron expression "61 * * * *"',
    ),
}


def write_bad(folder: Path, db_url: str, rows: list[Bad]) -> Path:
    config = config_for(folder, db_url)
    daemon_extra = "".join(r.config for r in rows)
    if daemon_extra:
        text = config.read_text().replace('timezone = "UTC"\n', f'timezone = "UTC"\n{daemon_extra}')
        config.write_text(text)
    for row in rows:
        for name, text in row.files.items():
            write(folder / name, text)
    return config


def count_orders(db_url: str) -> int:
    if db_url.startswith("sqlite"):
        return int(
            sqlite_rows(db_url.removeprefix("sqlite:///"), "SELECT count(*) FROM orders")[0][0]
        )

    async def count() -> int:
        conn = await asyncpg.connect(db_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM orders"))
        finally:
            await conn.close()

    return run_sync(count())


@pytest.mark.parametrize("row", list(BAD.values()), ids=list(BAD))
def test_bad_input_is_reported(
    cli: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str, row: Bad
) -> None:
    """Each bad input is an error naming its file and path, and check exits 2."""
    monkeypatch.chdir(tmp_path)
    write_bad(tmp_path, db_url, [row])
    code, doc = check_json(cli, Path("config.toml"))
    assert code == 2 and doc["valid"] is False
    assert row.found_in(doc["errors"]), doc["errors"]


def test_all_bad_inputs_reported_together(
    cli: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    """Every bad input in one config is reported in one check run, and the table survives."""
    monkeypatch.chdir(tmp_path)
    undefined = Bad(
        {"tasks/undef.json": step_task("undef", {"function": "Log", "message": "{{ ghost }}"})},
        "tasks/undef.json",
        "function_stack[0].message",
        'undefined variable "ghost"',
    )
    rows = {**BAD, "undefined_variable": undefined}
    write_bad(tmp_path, db_url, list(rows.values()))
    task_file(tmp_path, "good", log_task("good", schedule="@daily"))
    code, doc = check_json(cli, Path("config.toml"), "--strict")
    assert code == 2 and doc["valid"] is False
    missing = [name for name, row in rows.items() if not row.found_in(doc["errors"])]
    assert missing == [], doc["errors"]
    code, _, err = cli("check", "-c", "config.toml")
    assert code == 2
    for row in rows.values():
        assert f"{row.file}" in err
    assert "good" in [t["name"] for t in doc["tasks"]]  # the valid task is still listed
    assert count_orders(db_url) == 3


def test_hostile_identifier_leaves_the_table_intact(
    cli: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    """A table name carrying SQL is refused by check and trigger; `orders` keeps its rows."""
    monkeypatch.chdir(tmp_path)
    config = write_bad(tmp_path, db_url, [BAD["hostile_identifier"]])
    assert cli("check", "-c", str(config))[0] == 2
    assert cli("trigger", "hostile", "-c", str(config))[0] == 2
    assert count_orders(db_url) == 3


@pytest.mark.parametrize(("strict", "code"), [(False, 0), (True, 2)])
def test_undefined_variable_warns_or_fails_under_strict(
    cli: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strict: bool, code: int
) -> None:
    """An undefined variable is a warning (valid) and, under --strict, an error (exit 2)."""
    monkeypatch.chdir(tmp_path)
    config_for(tmp_path)
    steps = [
        {"function": "Create Variable", "name": "known", "value": 1},
        {"function": "Create Variable", "name": "b", "value": "{{ known + missing_var }}"},
    ]
    task_file(tmp_path, "undef", {"name": "undef", "function_stack": steps})
    got, doc = check_json(cli, Path("config.toml"), *(["--strict"] if strict else []))
    assert got == code
    assert doc["valid"] is (not strict)
    issues = doc["errors"] if strict else doc["warnings"]
    other = doc["warnings"] if strict else doc["errors"]
    assert other == []
    (issue,) = issues
    # Placed where the variable is written in the file (line and column of the file).
    text = (tmp_path / "tasks" / "undef.json").read_text()
    line = text.count("\n", 0, text.index("missing_var")) + 1
    column = text.index("missing_var") - text.rfind("\n", 0, text.index("missing_var"))
    assert (issue["file"], issue["path"], issue["line"], issue["column"]) == (
        "tasks/undef.json",
        "function_stack[1].value",
        line,
        column,
    )
    assert '"missing_var"' in issue["message"]


# --- check: the state store and per-task history settings --------------------------------------


def state_config(folder: Path, url: str) -> Path:
    """A config whose only data source (hence the state store) is `url`, with one valid task."""
    task_file(folder, "ok", log_task("ok", schedule="0 * * * *"))
    return write(
        folder / "config.toml",
        f'[daemon]\ntasks = ["tasks/*.json"]\n\n[admin]\nlisten = ""\n\n'
        f'[datasources.state]\nurl = "{url}"\n',
    )


@pytest.mark.parametrize(
    "url",
    ["postgresql://nobody@127.0.0.1:1/none", "sqlite:///not-a-folder/state.db"],
    ids=["postgresql", "sqlite"],
)
def test_check_reports_an_unreachable_state_store(cli: CliRun, tmp_path: Path, url: str) -> None:
    """An unreachable state store is an error of its data source: exit 2, nothing else wrong."""
    write(tmp_path / "not-a-folder", "a file where the database's folder should be")
    code, doc = check_json(cli, state_config(tmp_path, url))
    assert code == 2 and doc["valid"] is False
    (error,) = doc["errors"]
    assert error["path"] == "datasources.state"
    assert "unreachable" in error["message"]


def test_check_reports_a_state_store_that_cannot_be_set_up(cli: CliRun, tmp_path: Path) -> None:
    """A reachable state database where the tables cannot be created fails check, not `run`."""
    from tests.conftest import PG_ADMIN_URL, _admin

    suffix = tmp_path.name.lower().replace("-", "_")[-20:]
    role, database = f"cronstack_ro_{suffix}", f"cronstack_ro_{suffix}"
    try:
        run_sync(_admin(f'CREATE ROLE "{role}" LOGIN'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL not available at {PG_ADMIN_URL}: {exc}")
    try:
        # Not the database's owner: PostgreSQL 15 gives it no CREATE on schema public.
        run_sync(_admin(f'CREATE DATABASE "{database}"'))
        host = PG_ADMIN_URL.split("@", 1)[1].rsplit("/", 1)[0]
        code, doc = check_json(
            cli, state_config(tmp_path, f"postgresql://{role}@{host}/{database}")
        )
        assert code == 2 and doc["valid"] is False
        (error,) = doc["errors"]
        assert error["path"] == "datasources.state"
        assert "state store not usable" in error["message"]
        assert "permission denied" in error["message"]
    finally:
        run_sync(_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        run_sync(_admin(f'DROP ROLE IF EXISTS "{role}"'))


def test_check_accepts_a_usable_state_store(cli: CliRun, tmp_path: Path) -> None:
    """A SQLite state store that opens and migrates leaves check valid."""
    code, doc = check_json(cli, state_config(tmp_path, "sqlite:///state.db"))
    assert (code, doc["valid"], doc["errors"]) == (0, True, [])


def test_check_validates_task_history_settings(cli: CliRun, tmp_path: Path) -> None:
    """A task's history_max_runs below 1 and an unparsable history_retention are errors."""
    config = state_config(tmp_path, "sqlite:///state.db")
    task_file(tmp_path, "bad", log_task("bad", history_max_runs=0, history_retention="forever"))
    task_file(tmp_path, "fine", log_task("fine", history_max_runs=1, history_retention="2d"))
    code, doc = check_json(cli, config)
    assert code == 2
    found = {(Path(e["file"]).name, e["path"]) for e in doc["errors"]}
    assert found == {
        ("bad.json", "history_max_runs"),
        ("bad.json", "history_retention"),
    }, doc["errors"]
    messages = " ".join(e["message"] for e in doc["errors"])
    assert "must be at least 1" in messages and '"forever"' in messages
