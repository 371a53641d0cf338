"""Contract checks for the engine, written from the contract as a black-box test would: drive the
`cronstack` command line on a scratch config and compare with the contract's words."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from daemon.core.netpolicy import BlockedAddressError, NetworkPolicy
from daemon.core.secrets import is_secret_header
from tests.conftest import CliRun


def scratch(
    folder: Path, tasks: Any, *, datasources: str = "", extra: str = "", name: str = "t.json"
) -> Path:
    """A config in `folder` with one task file (`tasks` as JSON, or TOML text)."""
    (folder / "tasks").mkdir(exist_ok=True)
    text = tasks if isinstance(tasks, str) else json.dumps(tasks)
    (folder / "tasks" / name).write_text(text, encoding="utf-8")
    if not datasources:
        datasources = '[datasources.main]\nurl = "sqlite:///data.db"\n'
    config = folder / "config.toml"
    config.write_text(
        '[daemon]\ntasks = ["tasks/*.json", "tasks/*.toml"]\n'
        + datasources
        + '\n[admin]\nlisten = ""\n'
        + extra,
        encoding="utf-8",
    )
    return config


def trigger(cli: CliRun, config: Path, task: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli("trigger", task, "-c", str(config), "--json")
    return code, json.loads(out)


def check(cli: CliRun, config: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli("check", "-c", str(config), "--json", *extra)
    return code, json.loads(out)


def out_of(doc: dict[str, Any]) -> Any:
    """The value a probe task reported through `Throw Error` (type OUT, message json(r))."""
    assert doc["error"] is not None and doc["error"]["type"] == "OUT", doc
    return json.loads(doc["error"]["message"])


def probe(steps: list[dict[str, Any]], name: str = "probe") -> dict[str, Any]:
    report = {"function": "Throw Error", "type": "OUT", "message": "{{json(r)}}"}
    return {"name": name, "function_stack": [*steps, report]}


# --- step paths -------------------------------------------------------------------------------


def test_trace_paths_in_a_list_file_are_relative_to_the_task(tmp_path: Path, cli: CliRun) -> None:
    """`function_stack[2].steps[0]`: a task's place in a list file is not part of its step
    paths (trace and error.step), while check issues still say where in the file they are."""
    tasks = [
        {"name": "first", "function_stack": []},
        {
            "name": "second",
            "function_stack": [
                {"function": "Log", "message": "x"},
                {
                    "function": "Loop",
                    "input_array": [1],
                    "steps": [{"function": "Throw Error", "message": "boom"}],
                },
            ],
        },
    ]
    config = scratch(tmp_path, tasks)
    code, doc = trigger(cli, config, "second")
    assert code == 1
    assert [s["path"] for s in doc["steps"]] == [
        "function_stack[0]",
        "function_stack[1]",
        "function_stack[1].steps[0]",
    ]
    assert doc["error"] == {
        "type": "StepError",
        "message": "boom",
        "step": "function_stack[1].steps[0]",
    }
    tasks[1]["function_stack"].append({"function": "Return", "value": "{{nope}}"})
    config = scratch(tmp_path, tasks)
    _, report = check(cli, config)
    paths = [w["path"] for w in report["warnings"]]
    assert "[0].function_stack" in paths  # the empty one
    assert "[1].function_stack[2].value" in paths  # the undefined variable


# --- task fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("skip_if_running", "overlap", "valid"),
    [
        (False, "queue", True),
        (False, "replace", True),
        (False, "allow", True),
        (False, "skip", False),
        (True, "skip", True),
        (True, "allow", False),
    ],
)
def test_skip_if_running_false_only_says_do_not_skip(
    tmp_path: Path, cli: CliRun, skip_if_running: bool, overlap: str, valid: bool
) -> None:
    task = {
        "name": "t",
        "schedule": {"cron_expression": "* * * * *", "skip_if_running": skip_if_running},
        "overlap": overlap,
        "function_stack": [{"function": "Log", "message": "x"}],
    }
    code, report = check(cli, scratch(tmp_path, task))
    assert report["valid"] is valid, report["errors"]
    assert code == (0 if valid else 2)


def test_toml_task_file_may_hold_a_tasks_list(tmp_path: Path, cli: CliRun) -> None:
    text = (
        '[[tasks]]\nname = "a"\nschedule = "0 1 * * *"\n'
        'function_stack = [{function = "Log", message = "x"}]\n'
        '[[tasks]]\nname = "b"\nschedule = "0 2 * * *"\n'
        'function_stack = [{function = "Log", message = "y"}]\n'
    )
    code, report = check(cli, scratch(tmp_path, text, name="list.toml"))
    assert code == 0, report
    assert [t["name"] for t in report["tasks"]] == ["a", "b"]


# --- data sources -----------------------------------------------------------------------------


TWO_SOURCES = '[datasources.a]\nurl = "sqlite:///a.db"\n[datasources.b]\nurl = "sqlite:///b.db"\n'


def test_direct_query_without_a_resolvable_data_source_is_a_check_error(
    tmp_path: Path, cli: CliRun
) -> None:
    """Two data sources, no `default_data_source`, none named: an error at load, not at run."""
    task = {
        "name": "q",
        "function_stack": [{"function": "Direct Database Query", "sql": "select 1 as x"}],
    }
    code, report = check(cli, scratch(tmp_path, task, datasources=TWO_SOURCES))
    assert code == 2
    assert [e["path"] for e in report["errors"]] == ["function_stack[0].data_source"]
    assert "data source" in report["errors"][0]["message"]

    task["function_stack"][0]["data_source"] = "c"
    _, report = check(cli, scratch(tmp_path, task, datasources=TWO_SOURCES))
    assert report["errors"][0]["message"] == 'unknown data source "c"'

    task["function_stack"][0]["data_source"] = "b"
    code, report = check(cli, scratch(tmp_path, task, datasources=TWO_SOURCES))
    assert code == 0, report

    del task["function_stack"][0]["data_source"]
    config = scratch(tmp_path, task, datasources=TWO_SOURCES)
    config.write_text(
        config.read_text().replace("[daemon]\n", '[daemon]\ndefault_data_source = "b"\n'),
        encoding="utf-8",
    )
    code, doc = trigger(cli, config, "q")
    assert code == 0, doc


def test_sqlite_like_is_case_sensitive_and_ilike_is_not(tmp_path: Path, cli: CliRun) -> None:
    """`like` means the same on SQLite as on PostgreSQL: case-sensitive; `ilike` ignores case."""
    (tmp_path / "init.sql").write_text(
        "create table if not exists notes (id integer primary key, body text);\n"
        "delete from notes;\n"
        "insert into notes (id, body) values (1, 'Yes'), (2, 'yes'), (3, 'y*s'), (4, 'no');\n",
        encoding="utf-8",
    )
    sources = '[datasources.main]\nurl = "sqlite:///data.db"\ninit_sql = ["init.sql"]\n'

    def ids(op: str, pattern: str) -> list[int]:
        step = {
            "function": "Query All Records",
            "table": "notes",
            "filter": {"body": {op: pattern}},
            "sort": "id",
            "fields": ["id"],
            "return_variable": "r",
        }
        code, doc = trigger(cli, scratch(tmp_path, probe([step]), datasources=sources), "probe")
        assert code == 1
        return [row["id"] for row in out_of(doc)]

    assert ids("like", "y%") == [2, 3]
    assert ids("like", "Y_s") == [1]
    assert ids("ilike", "y%") == [1, 2, 3]
    assert ids("like", "y*s") == [3]  # GLOB's own wildcards are literal in a LIKE pattern
    assert ids("like", "%") == [1, 2, 3, 4]


# --- External API Request ---------------------------------------------------------------------


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the http.server name
        body = json.dumps({"idempotency_key": self.headers.get("Idempotency-Key")}).encode()
        status = int(self.path.rsplit("/", 1)[-1]) if self.path[-3:].isdigit() else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_idempotency_key_is_not_treated_as_a_secret(
    tmp_path: Path, cli: CliRun, echo_port: int
) -> None:
    """docs/contract.md puts `task.slot_id` in `Idempotency-Key`; masking that header's value as a
    secret masked the run id (a manual run's slot id) in the trigger output."""
    assert is_secret_header("Idempotency-Key") is False
    assert is_secret_header("X-Api-Key") is True
    step = {
        "function": "External API Request",
        "url": f"http://127.0.0.1:{echo_port}/x",
        "headers": {"Idempotency-Key": "{{task.slot_id}}"},
        "return_variable": "resp",
    }
    report = {"function": "Create Variable", "name": "r", "value": "{{resp.body}}"}
    config = scratch(tmp_path, probe([step, report]), extra='[http]\nallow_hosts = ["127.0.0.1"]\n')
    code, doc = trigger(cli, config, "probe")
    assert code == 1
    assert len(doc["run_id"]) == 32 and "*" not in doc["run_id"]
    assert out_of(doc) == {"idempotency_key": doc["run_id"]}


def test_http_retry_on_accepts_status_numbers(tmp_path: Path, cli: CliRun, echo_port: int) -> None:
    step = {
        "function": "External API Request",
        "url": f"http://127.0.0.1:{echo_port}/404",
        "retry": {"max_attempts": 2, "initial_delay": "10ms", "on": [404, "5xx"]},
    }
    config = scratch(
        tmp_path,
        {"name": "h", "function_stack": [step]},
        extra='[http]\nallow_hosts = ["127.0.0.1"]\n',
    )
    code, doc = trigger(cli, config, "h")
    assert code == 1
    assert doc["error"]["type"] == "HttpError"
    assert "404" in doc["error"]["message"] and "after 2 attempts" in doc["error"]["message"]


@pytest.mark.parametrize("entry", ["127.0.0.0/8", "127.0.0.1", "127.0.0.1:8080", "::1"])
def test_localhost_follows_allow_hosts_loopback_addresses(entry: str) -> None:
    """`localhost` is loopback whatever DNS says; an allow_hosts entry admitting loopback
    addresses admits it too (the resolver then checks each address it returns)."""
    policy = NetworkPolicy.build(True, [entry])
    assert policy.check_literal("localhost", 8080) is False  # a name: resolved, then checked


@pytest.mark.parametrize("entry", ["10.0.0.0/8", "127.0.0.1:9", "example.com"])
def test_localhost_stays_blocked_without_a_loopback_allowance(entry: str) -> None:
    policy = NetworkPolicy.build(True, [entry])
    with pytest.raises(BlockedAddressError, match="blocked"):
        policy.check_literal("localhost", 8080)


# --- config.toml ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "path", "words"),
    [
        ('[http]\nallow_hosts = ["ok.example", "bad/host/x"]\n', "http.allow_hosts[1]", "bad/host"),
        ('[http]\nallow_hosts = ["1.2.3.4:99999"]\n', "http.allow_hosts[0]", "port"),
        ('[cache]\nurl = "redis://127.0.0.1:abc/0"\n', "cache.url", "invalid cache URL"),
    ],
)
def test_bad_http_and_cache_settings_are_check_errors_not_crashes(
    tmp_path: Path, cli: CliRun, section: str, path: str, words: str
) -> None:
    """Every error printed, exit 2: never a traceback from opening the HTTP client or cache."""
    config = scratch(tmp_path, {"name": "t", "function_stack": []}, extra=section)
    code, report = check(cli, config)
    assert code == 2
    assert [e["path"] for e in report["errors"]] == [path]
    assert words in report["errors"][0]["message"]
    code, out, err = cli("trigger", "t", "-c", str(config), "--json")
    assert code == 2 and out == "" and path in err
