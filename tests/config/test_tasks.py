"""Task files: shapes (task, list, seed step snippets), defaults, and every issue with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config.tasks import LoadedTask, ScheduleSpec, load_task_file, task_from_value

SEED = Path(__file__).parent.parent / "data" / "seed"


def load(tmp_path: Path, name: str, text: str) -> tuple[list[LoadedTask], list[str]]:
    path = tmp_path / name
    path.write_text(text)
    tasks, issues = load_task_file(path, f"tasks/{name}")
    return tasks, [str(i) for i in issues]


@pytest.mark.parametrize("path", sorted(SEED.glob("*.json")), ids=lambda p: p.name)
def test_every_seed_snippet_loads_as_a_task(path: Path) -> None:
    """Each seed snippet, verbatim, is a valid task file."""
    tasks, issues = load_task_file(path, path.name)
    assert issues == []
    assert len(tasks) == 1


def test_seed_shapes() -> None:
    """Seed step snippets become one task whose function_stack holds them; names default."""
    (monitoring,) = load_task_file(SEED / "monitoring_alerting.json", "m.json")[0]
    assert monitoring.name == "monitoring_alerting"
    assert [s["function"] for s in monitoring.spec.function_stack] == ["Add Record", "Conditional"]
    (config,) = load_task_file(SEED / "step2_config.json", "s.json")[0]
    assert config.name == "Daily Report Generation"
    assert config.spec.status == "inactive"
    assert config.spec.data_source == "primary_database"
    assert config.spec.cron_expression is None  # manual trigger only
    (schedule,) = load_task_file(SEED / "daily_report_schedule.json", "d.json")[0]
    assert isinstance(schedule.spec.schedule, ScheduleSpec)
    assert schedule.spec.timezone_name("UTC") == "America/New_York"
    assert schedule.spec.effective_overlap() == "skip"
    (cache,) = load_task_file(SEED / "cache_warming.json", "c.json")[0]
    assert cache.spec.cron_expression == "*/30 * * * *"


def test_defaults() -> None:
    """Unset fields take docs/contract.md's defaults."""
    spec, issues = task_from_value({"name": "t"}, "t.json", "")
    assert issues == []
    assert spec is not None
    assert (spec.status, spec.request_history, spec.function_stack) == ("active", True, [])
    assert spec.retry is None
    assert spec.effective_overlap() == "skip"
    assert spec.effective_catch_up() == "none"
    assert spec.misfire_grace_seconds() == 60
    assert spec.jitter_seconds() == 0
    assert spec.timeout_seconds() is None
    assert spec.timezone_name("Europe/Berlin") == "Europe/Berlin"


def test_schedule_level_policy_wins_over_task_level() -> None:
    """jitter / misfire_grace / catch_up may sit at either level; the schedule's wins."""
    value = {
        "jitter": "10s",
        "catch_up": "all",
        "misfire_grace": "5m",
        "schedule": {"cron_expression": "* * * * *", "jitter": "2s", "catch_up": "latest"},
        "timeout": "1m",
        "overlap": "queue",
    }
    spec, issues = task_from_value(value, "t.json", "")
    assert issues == []
    assert spec is not None
    assert spec.jitter_seconds() == 2
    assert spec.effective_catch_up() == "latest"
    assert spec.misfire_grace_seconds() == 300
    assert spec.timeout_seconds() == 60
    assert spec.effective_overlap() == "queue"


def test_skip_if_running_false_allows_overlap() -> None:
    """skip_if_running: false means overlap "allow"."""
    spec, _ = task_from_value(
        {"schedule": {"cron_expression": "* * * * *", "skip_if_running": False}}, "t.json", ""
    )
    assert spec is not None
    assert spec.effective_overlap() == "allow"


def test_list_file_names_and_paths(tmp_path: Path) -> None:
    """A list file: nameless tasks get stem[i]; issues carry the [i] prefix."""
    tasks, issues = load(
        tmp_path,
        "jobs.json",
        '[\n  {"schedule": "0 9 * * *"},\n  {"schedule": "@daily"},\n'
        '  {"name": "x", "schedule": {"cron_expression": "bad"}}\n]',
    )
    # A task with envelope errors is still returned, so its steps get checked too.
    assert [t.name for t in tasks] == ["jobs[0]", "jobs[1]", "x"]
    assert [(t.index, t.base_path, t.line) for t in tasks[:2]] == [(0, "[0]", 2), (1, "[1]", 3)]
    assert len(issues) == 1
    assert issues[0].startswith("tasks/jobs.json:4:30: [2].schedule.cron_expression: invalid cron")


def test_every_issue_of_a_task_is_reported(tmp_path: Path) -> None:
    """Unknown keys, bad types, bad cron, timezone and durations are all reported at once."""
    _, issues = load(
        tmp_path,
        "report.json",
        """{
          "name": "report",
          "schedule": {"cron_expression": "61 * * * *", "timezone": "Mars/Olympus", "foo": 1},
          "retry": {"max_attempts": "3", "initial_delay": "soon"},
          "timeout": "-5s",
          "status": "paused",
          "bogus": true,
          "function_stack": [{"function": "Nope", "whatever": 1}]
        }""",
    )
    assert sorted(issues) == sorted(
        [
            'tasks/report.json:3:85: schedule.foo: unknown key "foo"',
            "tasks/report.json:4:21: retry.max_attempts: expected int, got str",
            'tasks/report.json:6:11: status: must be one of "active", "inactive", got "paused"',
            'tasks/report.json:7:11: bogus: unknown key "bogus"',
            'tasks/report.json:3:57: schedule.timezone: unknown timezone "Mars/Olympus"',
            "tasks/report.json:3:24: schedule.cron_expression: invalid cron expression"
            ' "61 * * * *": bad minute field "61"',
            'tasks/report.json:4:42: retry.initial_delay: invalid duration "soon": expected a'
            ' duration like "500ms", "30s", "5m", "1h30m", "7d" or a number of seconds',
            'tasks/report.json:5:11: timeout: invalid duration "-5s": must not be negative',
        ]
    )


def test_one_bad_task_does_not_hide_others(tmp_path: Path) -> None:
    """In a list file each task is decoded on its own; each one's unknown keys are reported."""
    tasks, issues = load(
        tmp_path, "many.json", '[{"name": "a", "x": 1}, {"name": "b"}, {"name": "c", "y": 2}]'
    )
    assert [t.name for t in tasks] == ["a", "b", "c"]
    assert issues == [
        'tasks/many.json:1:16: [0].x: unknown key "x"',
        'tasks/many.json:1:54: [2].y: unknown key "y"',
    ]


def test_missing_cron_expression(tmp_path: Path) -> None:
    """A schedule object needs cron_expression."""
    _, issues = load(tmp_path, "t.json", '{"schedule": {"timezone": "UTC"}}')
    assert issues == [
        # A missing key is placed at the object that lacks it.
        'tasks/t.json:1:2: schedule.cron_expression: missing required key "cron_expression"'
    ]


def test_conflicting_overlap(tmp_path: Path) -> None:
    """overlap and skip_if_running must agree."""
    _, issues = load(
        tmp_path,
        "t.json",
        '{"overlap": "allow",'
        ' "schedule": {"cron_expression": "* * * * *", "skip_if_running": true}}',
    )
    assert len(issues) == 1
    assert "overlap" in issues[0]
    assert "contradicts" in issues[0]


def test_invalid_json_has_line_and_column(tmp_path: Path) -> None:
    """A syntax error reports line and column."""
    path = tmp_path / "bad.json"
    path.write_text('{\n  "name": "x",\n  "schedule" "0 9 * * *"\n}')
    tasks, issues = load_task_file(path, "tasks/bad.json")
    assert tasks == []
    assert [(i.line, i.column) for i in issues] == [(3, 14)]
    assert str(issues[0]).startswith("tasks/bad.json:3:14: invalid JSON: ")


def test_toml_one_task_and_array(tmp_path: Path) -> None:
    """TOML: a table is one task; [[task]] is many."""
    tasks, issues = load(
        tmp_path,
        "one.toml",
        'schedule = "0 9 * * *"\n[retry]\nmax_attempts = 2\n'
        '[[function_stack]]\nfunction = "Log"\nmessage = "hi"\n',
    )
    assert issues == []
    assert tasks[0].name == "one"
    assert tasks[0].spec.retry is not None
    assert tasks[0].spec.retry.max_attempts == 2
    tasks, issues = load(
        tmp_path,
        "many.toml",
        '[[task]]\nname = "a"\nschedule = "@hourly"\n[[task]]\nname = "b"\n[task.schedule]\n'
        'cron_expression = "0 9 * * MON"\ntimezone = "Europe/Berlin"\n',
    )
    assert issues == []
    assert [(t.name, t.base_path) for t in tasks] == [("a", "[0]"), ("b", "[1]")]


def test_toml_syntax_error_has_position(tmp_path: Path) -> None:
    """A TOML syntax error reports tomllib's line and column."""
    _, issues = load(tmp_path, "bad.toml", 'name = "t"\nschedule = \n')
    assert issues == ["tasks/bad.toml:2:12: invalid TOML: Invalid value"]


def test_empty_file(tmp_path: Path) -> None:
    """A file with nothing but comments is an error."""
    _, issues = load(tmp_path, "e.json", "// nothing yet\n")
    assert issues == ["tasks/e.json: the file holds no task"]


def test_non_object_task(tmp_path: Path) -> None:
    """A list item that is not an object is reported with its index."""
    _, issues = load(tmp_path, "l.json", '[{"name": "a"}, 3]')
    assert issues == ["tasks/l.json:1:17: [1]: expected an object, got number"]


def test_retry_validation() -> None:
    """max_attempts >= 1 and max_delay >= initial_delay."""
    _, issues = task_from_value(
        {"retry": {"max_attempts": 0, "initial_delay": "1m", "max_delay": "1s"}}, "t.json", "[3]"
    )
    assert [i.path for i in issues] == ["[3].retry.max_attempts", "[3].retry.max_delay"]
