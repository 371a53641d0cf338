"""`check` places every issue of a JSON task file at the line and column where its path is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daemon.core.jsonc import JsonPositions
from tests.conftest import CliRun

TASK = """\
// report
{
  "name": "report",
  "schedule": "0 8 * * *",
  "function_stack": [
    {"function": "Create Variable", "name": "a", "value": 1},
    {
      "function": "Loop", "input_array": [1, 2], "loop_item_variable": "item",
      "steps": [
        {"function": "Query All Records", "table": "order"}
      ]
    },
    {"function": "Query All Records",
     "table": "ordrs"},
    {"function": "Create Variable", "name": "b", "value": "caf\\u00e9 {{ nope + 1 }}"},
    {"function": "Nope"},
    {"function": "Create Variable", "name": "c", "value": 1,
     "bogus": 1}
  ]
}
"""

# (path, message fragment, the text the issue must point at)
EXPECTED = [
    ("function_stack[1].steps[0].table", 'unknown table "order"', '"table": "order"'),
    ("function_stack[2].table", 'unknown table "ordrs"', '"table": "ordrs"'),
    ("function_stack[5].bogus", "bogus", '"bogus": 1'),
    ("function_stack[4].function", 'unknown function "Nope"', '"function": "Nope"'),
]


def setup(root: Path, files: dict[str, str]) -> Path:
    (root / "tasks").mkdir()
    for name, text in files.items():
        (root / "tasks" / name).write_text(text)
    (root / "init.sql").write_text("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY);\n")
    config = root / "config.toml"
    config.write_text(
        '[daemon]\ntasks = ["tasks/*"]\n[admin]\nlisten = ""\n'
        '[datasources.main]\nurl = "sqlite:///db.sqlite"\ninit_sql = ["init.sql"]\n'
    )
    return config


def position_of(text: str, needle: str) -> tuple[int, int]:
    index = text.index(needle)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def check(cli: CliRun, config: Path) -> dict[str, Any]:
    code, out, _err = cli("check", "-c", str(config), "--json")
    assert code == 2
    return dict(json.loads(out))


def test_semantic_errors_carry_the_line_and_column_of_their_key(
    cli: CliRun, tmp_path: Path
) -> None:
    """Unknown tables (nested too), unknown keys and functions point at the key in the file."""
    doc = check(cli, setup(tmp_path, {"report.json": TASK}))
    by_path = {e["path"]: e for e in doc["errors"]}
    for path, fragment, needle in EXPECTED:
        error = by_path[path]
        assert fragment in error["message"], error
        assert (error["line"], error["column"]) == position_of(TASK, needle), path


def test_an_expression_issue_points_at_the_character_in_the_file(
    cli: CliRun, tmp_path: Path
) -> None:
    """The undefined variable inside a template: the file position of the name itself, with
    the escape before it (\\u00e9, one character) counted right."""
    doc = check(cli, setup(tmp_path, {"report.json": TASK}))
    (warning,) = [w for w in doc["warnings"] if "nope" in w["message"]]
    assert warning["path"] == "function_stack[3].value"
    assert (warning["line"], warning["column"]) == position_of(TASK, "nope + 1")


SHAPES = {
    # A list of tasks: paths start with the task's index.
    "list": ('[{"name": "a", "function_stack": []},\n {"name": "b", "oops": 1}]', '"oops"'),
    # Concatenated task objects.
    "concatenated": ('{"name": "a"}\n{"name": "b",\n "oops": 1}', '"oops"'),
    # The seed's pasted steps: several bare step objects become one function_stack.
    "bare-steps": (
        '{"function": "Create Variable", "name": "a", "value": 1}\n'
        '// then\n{"function": "Query All Records", "table": "ordrs"}',
        '"table"',
    ),
    "bare-step-list": ('[\n  {"function": "Query All Records",\n   "table": "x"}\n]', '"table"'),
}


@pytest.mark.parametrize(("text", "needle"), SHAPES.values(), ids=SHAPES.keys())
def test_every_file_shape_maps_paths_back_to_the_file(
    cli: CliRun, tmp_path: Path, text: str, needle: str
) -> None:
    """List files, concatenated tasks and bare steps: the error points at the right key."""
    doc = check(cli, setup(tmp_path, {"t.json": text}))
    (error,) = doc["errors"]
    assert (error["line"], error["column"]) == position_of(text, needle), error


def test_toml_issues_have_no_line(cli: CliRun, tmp_path: Path) -> None:
    """tomllib keeps no positions: a TOML task's semantic error names the path, line null."""
    toml = 'name = "t"\n[[function_stack]]\nfunction = "Query All Records"\ntable = "ordrs"\n'
    doc = check(cli, setup(tmp_path, {"t.toml": toml}))
    (error,) = doc["errors"]
    assert (error["path"], error["line"]) == ("function_stack[0].table", None)


@pytest.mark.parametrize(
    ("text", "path", "column", "needle"),
    [
        ('{"a": "x{{ y }}"}', "a", 5, "y }"),
        ('{"a": ["\\n\\t{{ y }}"]}', "a[0]", 6, "y }"),
        ('{"a": "\\ud83d\\ude00{{ y }}"}', "a", 5, "y }"),
        ('{"a": "\\u00e9\\"{{ y }}"}', "a", 6, "y }"),
    ],
)
def test_string_columns_count_escapes_as_one_character(
    text: str, path: str, column: int, needle: str
) -> None:
    """Character `column` of a decoded string is found in the source despite escapes."""
    assert JsonPositions(text).in_string(0, path, column) == position_of(text, needle)
