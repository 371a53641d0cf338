"""config.toml loading: sections, env substitution, globs, and every issue reported together."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config.settings import load_config, resolve_config_path
from daemon.core.errors import ConfigError


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tasks").mkdir()
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def issues_of(path: Path | str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {})
    return [str(i) for i in info.value.issues]


def test_minimal_config_defaults(cwd: Path) -> None:
    """An empty config is valid; sections take their defaults; no data source is fine."""
    config = load_config(write(cwd / "config.toml", ""), {})
    assert config.spec.daemon.timezone == "UTC"
    assert config.spec.daemon.tasks == ["tasks/*.json", "tasks/*.toml"]
    assert config.spec.cache.url == "memory://"
    assert config.spec.http.block_private_networks is True
    assert config.spec.admin.listen == "127.0.0.1:8765"
    assert config.tasks == []
    assert config.state_source is None
    assert config.base_dir == cwd.resolve()


def test_full_config_and_tasks(cwd: Path) -> None:
    """Sections, data sources, inline and globbed tasks load; globs sorted and de-duplicated."""
    write(cwd / "sql" / "init.sql", "select 1;")
    write(
        cwd / "config.toml",
        """
[daemon]
timezone = "Europe/Berlin"
tasks = ["tasks/*.json", "tasks/a*.json", "tasks/*.toml", "nothing/*.json"]
state = "primary"
shutdown_timeout = "1m"

[datasources.primary]
url = "sqlite:///var/cronstack.db"
init_sql = ["sql/init.sql"]

[datasources.pg]
url = "postgresql://{{env.PGUSER}}@localhost/app"
statement_timeout = "5s"

[cache]
url = "redis://127.0.0.1:6379/0"
prefix = "cs:"

[http]
timeout = "{{ env.HTTP_TIMEOUT }}"
max_connections = "{{env.MAXC}}"
allow_hosts = ["127.0.0.0/8"]

[log]
level = "debug"
format = "console"
[log.ship]
url = "http://127.0.0.1:9000/logs"

[admin]
listen = ""

[[task]]
name = "inline"
schedule = "*/5 * * * *"
function_stack = [{function = "Log", message = "{{env.SECRET}}"}]
""",
    )
    write(cwd / "tasks" / "b.json", '{"schedule": "0 9 * * *", "data_source": "pg"}')
    write(cwd / "tasks" / "a.json", '[{"name": "a1"}, {"name": "a2"}]')
    write(cwd / "tasks" / "c.toml", 'schedule = "@daily"\n')
    config = load_config("config.toml", {"PGUSER": "app", "HTTP_TIMEOUT": "5s", "MAXC": "12"})
    assert config.spec.datasources["pg"].url == "postgresql://app@localhost/app"
    assert config.spec.http.timeout == "5s"
    assert config.spec.http.max_connections == 12
    assert config.spec.log.ship is not None
    assert [t.name for t in config.tasks] == ["inline", "a1", "a2", "b", "c"]
    assert [t.file for t in config.tasks] == [
        "config.toml",
        "tasks/a.json",
        "tasks/a.json",
        "tasks/b.json",
        "tasks/c.toml",
    ]
    # Inline task templates stay run-time templates (secrets are not baked in at load).
    assert config.tasks[0].spec.function_stack[0]["message"] == "{{env.SECRET}}"
    assert config.state_source == "primary"
    assert config.default_data_source is None  # two sources, no default named
    assert config.task_data_source(config.tasks[3]) == "pg"
    assert config.resolve("sql/init.sql") == (cwd / "sql" / "init.sql").resolve()


def test_unknown_keys_with_paths(cwd: Path) -> None:
    """Unknown keys are errors naming their path."""
    write(
        cwd / "config.toml",
        '[daemon]\ntimezon = "UTC"\n[datasources.main]\nurl = "sqlite:///x.db"\npool = 3\n'
        "[extra]\na = 1\n",
    )
    assert issues_of("config.toml") == [
        'config.toml: daemon.timezon: unknown key "timezon"',
        'config.toml: datasources.main.pool: unknown key "pool"',
        'config.toml: extra: unknown key "extra"',
    ]


def test_bad_toml_reports_line_and_column(cwd: Path) -> None:
    """A TOML syntax error names the line and column."""
    write(cwd / "config.toml", '[daemon]\ntimezone = "UTC"\nmax_concurrent_runs = = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config("config.toml", {})
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.column) == ("config.toml", 3, 23)
    assert issue.message.startswith("invalid TOML: ")


def test_missing_file(cwd: Path) -> None:
    """A missing config file is a ConfigError, not a traceback."""
    assert issues_of("nope.toml") == ["nope.toml: config file not found"]


def test_every_issue_reported_together(cwd: Path) -> None:
    """Config and task-file problems are all reported in one ConfigError."""
    write(
        cwd / "config.toml",
        """
[daemon]
timezone = "Mars/Olympus"
shutdown_timeout = "soon"
state = "nope"
default_data_source = "other"

[datasources.primary]
url = "mysql://{{env.DB_HOST}}/x"
init_sql = ["missing.sql"]

[log]
level = "loud"

[admin]
listen = "localhost"
""",
    )
    write(cwd / "tasks" / "bad_cron.json", '{"schedule": "61 * * * *"}')
    write(
        cwd / "tasks" / "bad_tz.json",
        '{"schedule": {"cron_expression": "@daily", "timezone": "X/Y"}}',
    )
    write(cwd / "tasks" / "bad_json.json", '{"name": "x",\n "a" 1}')
    write(cwd / "tasks" / "bad_ds.json", '{"data_source": "ghost"}')
    write(cwd / "tasks" / "dup.json", '{"name": "bad_ds"}')
    assert issues_of("config.toml") == [
        'config.toml: datasources.primary.url: environment variable "DB_HOST" is not set',
        'config.toml: log.level: must be one of "debug", "info", "warning", "error", got "loud"',
        'config.toml: daemon.timezone: unknown timezone "Mars/Olympus"',
        'config.toml: daemon.shutdown_timeout: invalid duration "soon": expected a duration like'
        ' "500ms", "30s", "5m", "1h30m", "7d" or a number of seconds',
        'config.toml: daemon.state: unknown data source "nope" (configured: "primary")',
        'config.toml: daemon.default_data_source: unknown data source "other"'
        ' (configured: "primary")',
        'config.toml: datasources.primary.url: unsupported data source URL scheme "mysql"'
        ' (use "sqlite:///file.db" or "postgresql://...")',
        'config.toml: datasources.primary.init_sql[0]: file not found: "missing.sql"',
        'config.toml: admin.listen: expected "host:port", a unix socket path, or "" to disable;'
        ' got "localhost"',
        'tasks/bad_cron.json:1:2: schedule: invalid cron expression "61 * * * *":'
        ' bad minute field "61"',
        "tasks/bad_json.json:2:6: invalid JSON: unexpected character, expected ':' after key",
        'tasks/bad_tz.json:1:44: schedule.timezone: unknown timezone "X/Y"',
        # bad_ds.json's data_source is the compiler's to judge (see tests/e2e/test_cli.py).
        'tasks/dup.json:1:2: name: duplicate task name "bad_ds" (also in tasks/bad_ds.json)',
    ]


def test_no_datasources_but_state_named(cwd: Path) -> None:
    """Naming a data source when none is configured says so."""
    write(cwd / "config.toml", '[daemon]\nstate = "primary"\n')
    assert issues_of("config.toml") == [
        'config.toml: daemon.state: unknown data source "primary" (no [datasources] are configured)'
    ]


def test_inline_task_needs_name_and_is_validated(cwd: Path) -> None:
    """Inline [[task]] tables are validated like task files, with task[i] paths."""
    write(
        cwd / "config.toml",
        '[[task]]\nschedule = "@daily"\n[[task]]\nname = "x"\nschedul = "@daily"\n',
    )
    assert issues_of("config.toml") == [
        "config.toml: task[0].name: an inline task needs a name",
        'config.toml: task[1].schedul: unknown key "schedul"',
    ]


def test_paths_outside_cwd_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issues name files relative to the cwd when inside it, else by absolute path."""
    elsewhere = tmp_path / "etc"
    write(elsewhere / "config.toml", "[daemon]\nbad = 1\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    assert issues_of(elsewhere / "config.toml") == [
        f'{elsewhere / "config.toml"}: daemon.bad: unknown key "bad"'
    ]
    monkeypatch.chdir(tmp_path)
    assert issues_of(elsewhere / "config.toml") == [
        'etc/config.toml: daemon.bad: unknown key "bad"'
    ]


def test_single_datasource_is_the_default(cwd: Path) -> None:
    """With one data source, it is both the state store and the tasks' default."""
    write(cwd / "config.toml", '[datasources.only]\nurl = "sqlite:///x.db"\n')
    config = load_config("config.toml", {})
    assert config.state_source == "only"
    assert config.default_data_source == "only"


def test_resolve_config_path() -> None:
    """-c wins, then $CRONSTACK_CONFIG, then ./config.toml."""
    assert resolve_config_path("a.toml", {"CRONSTACK_CONFIG": "b.toml"}) == Path("a.toml")
    assert resolve_config_path(None, {"CRONSTACK_CONFIG": "b.toml"}) == Path("b.toml")
    assert resolve_config_path(None, {}) == Path("config.toml")


@pytest.mark.parametrize(
    ("http", "path", "message"),
    [
        ("max_connections = 0", "http.max_connections", "must be at least 1"),
        ("max_response_bytes = 0", "http.max_response_bytes", "must be at least 1"),
        ("max_connections_per_host = -1", "http.max_connections_per_host", "0 (no limit)"),
        ('proxy = "not a url"', "http.proxy", "http:// or https:// URL"),
    ],
)
def test_bad_http_settings_are_reported(cwd: Path, http: str, path: str, message: str) -> None:
    """Limits that cannot work and a proxy that is not a URL are config errors with a path."""
    write(cwd / "config.toml", f"[http]\n{http}\n")
    issues = issues_of("config.toml")
    assert len(issues) == 1
    assert issues[0].startswith(f"config.toml: {path}: ")
    assert message in issues[0]
