"""Task names of the wrong type, deep nesting and unbounded durations: exit 2 with file and path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliRun

REPO = Path(__file__).resolve().parents[2]
DEEP = 5000


def setup(root: Path, name: str, text: str, config_extra: str = "") -> Path:
    (root / "tasks").mkdir()
    (root / "tasks" / name).write_text(text)
    config = root / "config.toml"
    config.write_text(
        '[daemon]\ntasks = ["tasks/*"]\n[admin]\nlisten = ""\n' + config_extra, encoding="utf-8"
    )
    return config


def check(cli: CliRun, config: Path) -> tuple[int, dict[str, Any], str]:
    code, out, err = cli("check", "-c", str(config), "--json")
    return code, json.loads(out), err


NAMES: list[Any] = [5, 1.5, True, None, [], ["x"], {}, {"a": 1}, "", "   ", "a\u0000b", "x" * 201]


NAME_CASES = [(f, n) for f in ("json", "toml") for n in NAMES if not (f == "toml" and n is None)]


@pytest.mark.parametrize(
    ("fmt", "name"), NAME_CASES, ids=[f"{f}-{json.dumps(n)[:12]}" for f, n in NAME_CASES]
)
def test_a_task_name_that_is_not_a_name(cli: CliRun, tmp_path: Path, fmt: str, name: Any) -> None:
    """A number, list, object, boolean, null, blank, NUL or 201-character name (TOML has no
    null): exit 2 with the file and `name`, never an AssertionError."""
    if fmt == "json":
        text = json.dumps({"name": name, "function_stack": []})
    else:
        value = json.dumps(name) if not isinstance(name, dict) else "{a = 1}" if name else "{}"
        text = f"name = {value}\nfunction_stack = []\n"
    config = setup(tmp_path, f"t.{fmt}", text)
    code, doc, err = check(cli, config)
    assert code == 2, doc
    assert [(e["file"], e["path"]) for e in doc["errors"]] == [(f"{_rel(config)}/t.{fmt}", "name")]
    assert "Traceback" not in err


def _rel(config: Path) -> str:
    """How `check` names the tasks folder next to `config` (relative to the cwd when inside)."""
    try:
        return str((config.parent / "tasks").relative_to(Path.cwd()))
    except ValueError:
        return str(config.parent / "tasks")


DEEP_FILES = {
    "json-array": ("t.json", '{"name": "d", "x": ' + "[" * DEEP + "]" * DEEP + "}"),
    "json-object": ("t.json", '{"name": "d", "x": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}"),
    "jsonc-300": ("t.json", "// deep\n" + '{"name": "d", "x": ' + "[" * 300 + "]" * 300 + "}"),
    "toml-array": ("t.toml", "name = 'd'\nx = " + "[" * DEEP + "]" * DEEP + "\n"),
    "toml-inline": ("t.toml", "name = 'd'\nx = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n"),
    "toml-tables": ("t.toml", "name = 'd'\n[" + ".".join(["a"] * DEEP) + "]\nb = 1\n"),
    "toml-300": ("t.toml", "name = 'd'\nx = " + "[" * 300 + "]" * 300 + "\n"),
}


@pytest.mark.parametrize(("file", "text"), DEEP_FILES.values(), ids=DEEP_FILES.keys())
def test_deep_nesting_is_an_error_not_a_recursion_error(
    cli: CliRun, tmp_path: Path, file: str, text: str
) -> None:
    """Nesting 300 or 5,000 levels deep in JSON, JSONC or TOML: exit 2 naming the file."""
    config = setup(tmp_path, file, text)
    code, doc, err = check(cli, config)
    assert code == 2 and "Traceback" not in err
    (error,) = doc["errors"]
    assert error["file"].endswith(file)
    assert "nested" in error["message"] or "depth limit" in error["message"], error


def test_deep_config_is_an_error(cli: CliRun, tmp_path: Path) -> None:
    """config.toml nested 5,000 levels deep: exit 2 naming config.toml."""
    config = setup(tmp_path, "t.json", "{}", "[x]\ny = " + "[" * DEEP + "]" * DEEP + "\n")
    code, doc, _err = check(cli, config)
    assert code == 2 and doc["errors"][0]["file"].endswith("config.toml")


DURATIONS = [
    ("timeout", 1e300, "must be at most 366d"),
    ("timeout", "99999999999999999999d", "must be at most 366d"),
    ("misfire_grace", "367d", "must be at most 366d"),
    ("jitter", 10**30, "must be at most 366d"),
    ("history_retention", "36526d", "must be at most 36525d"),
    ("expect_success_within", "400d", "must be at most 366d"),
]


@pytest.mark.parametrize(("key", "value", "message"), DURATIONS)
def test_task_durations_are_bounded(
    cli: CliRun, tmp_path: Path, key: str, value: Any, message: str
) -> None:
    """Each duration key refuses values beyond its maximum, naming the key."""
    config = setup(tmp_path, "t.json", json.dumps({"name": "t", key: value, "function_stack": []}))
    code, doc, _err = check(cli, config)
    assert code == 2
    assert [(e["path"], message in e["message"]) for e in doc["errors"]] == [(key, True)]


CONFIG_DURATIONS = [
    ("[daemon]", "shutdown_timeout", '"99999999999999999999d"', "must be at most 366d"),
    ("[daemon]", "lease_timeout", '"100ms"', "must be at least 1s"),
    ("[daemon]", "heartbeat_interval", "0", "must be at least 1s"),
    ("[daemon]", "history_retention", '"36600d"', "must be at most 36525d"),
    ("[http]", "timeout", "1e300", "must be at most 366d"),
    ("[datasources.x]", "statement_timeout", '"400d"', "must be at most 366d"),
]


@pytest.mark.parametrize(("section", "key", "value", "message"), CONFIG_DURATIONS)
def test_config_durations_are_bounded(
    cli: CliRun, tmp_path: Path, section: str, key: str, value: str, message: str
) -> None:
    """config.toml durations have bounds too, reported at `section.key`."""
    (tmp_path / "tasks").mkdir()
    extra = 'url = "sqlite:///x.db"\n' if section == "[datasources.x]" else ""
    config = tmp_path / "config.toml"
    config.write_text(f'[admin]\nlisten = ""\n{section}\n{extra}{key} = {value}\n')
    code, doc, _err = check(cli, config)
    assert code == 2
    path = section.strip("[]") + "." + key
    assert any(e["path"] == path and message in e["message"] for e in doc["errors"]), doc


@pytest.mark.parametrize(
    ("file", "text"),
    [("t.json", '{"name": 5, "function_stack": []}'), DEEP_FILES["toml-array"]],
    ids=["name-is-a-number", "toml-5000-deep"],
)
def test_run_exits_2_too(tmp_path: Path, file: str, text: str) -> None:
    """`cronstack run` on the same files: exit 2, the error as a JSON line naming the file."""
    config = setup(tmp_path, file, text)
    done = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = [json.loads(line) for line in done.stderr.splitlines()]
    assert any(e["event"] == "config_error" and e["file"].endswith(file) for e in errors)
