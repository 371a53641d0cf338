"""JSONC: comments, trailing commas, several values per file, positions in syntax errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.core.jsonc import JsoncError, loads_jsonc, loads_jsonc_located, strip_jsonc

SEED = Path(__file__).parent.parent / "data" / "seed"

# file -> number of top-level values the verbatim snippet holds
SEED_FILES = {
    "step2_config.json": 1,
    "step3_function_stack.json": 1,
    "daily_report_schedule.json": 1,
    "data_cleanup.json": 1,
    "cache_warming.json": 1,
    "subscription_management.json": 1,
    "n8n_trigger.json": 1,
    "weweb_refresh.json": 1,
    "try_catch.json": 1,
    "resource_management.json": 2,
    "monitoring_alerting.json": 2,
    "weekly_newsletter.json": 1,
    "crm_data_sync.json": 1,
    "database_maintenance.json": 1,
    "monthly_financial_report.json": 1,
}


@pytest.mark.parametrize(("name", "count"), sorted(SEED_FILES.items()))
def test_seed_snippets_parse(name: str, count: int) -> None:
    """Every JSON snippet of the seed page, pasted verbatim, parses."""
    values = loads_jsonc((SEED / name).read_text())
    assert len(values) == count
    assert all(isinstance(v, dict) for v in values)


def test_seed_strings_with_slashes_survive() -> None:
    """`//` inside strings (URLs) is not a comment."""
    (value,) = loads_jsonc((SEED / "step3_function_stack.json").read_text())
    assert value["function_stack"][5]["url"] == "https://api.sendgrid.com/v3/mail/send"
    assert value["function_stack"][1]["values"] == "{{daily_activities}}"


def test_comments_and_trailing_commas() -> None:
    """Line and block comments and trailing commas are ignored."""
    text = '{"a": [1, 2,], /* x\n y */ "b": "/* not a comment */", // tail\n "c": {"d": 1,},}'
    assert loads_jsonc(text) == [{"a": [1, 2], "b": "/* not a comment */", "c": {"d": 1}}]


def test_strip_keeps_positions() -> None:
    """Stripping keeps the length and every newline, so error positions stay true."""
    text = '{"a": 1, // c\n /* b\n c */ "b": [2,],}'
    clean = strip_jsonc(text)
    assert len(clean) == len(text)
    assert clean.count("\n") == text.count("\n")


def test_escaped_quotes_in_strings() -> None:
    """An escaped quote does not end a string."""
    assert loads_jsonc(r'{"a": "x\" // y", "b": "\\"}') == [{"a": 'x" // y', "b": "\\"}]


def test_several_values_and_scalars() -> None:
    """Concatenated values come back in order; top-level scalars too."""
    assert loads_jsonc('{"a": 1}\n{"b": 2}[3] "s" 4') == [{"a": 1}, {"b": 2}, [3], "s", 4]


def test_empty_and_comment_only() -> None:
    """A text with no value yields an empty list."""
    assert loads_jsonc("  // nothing\n/* here */ ") == []


def test_located_lines() -> None:
    """Each value's start line and an array's item lines are reported."""
    text = '// head\n[\n  {"a": 1},\n  // x\n  {"b": 2}\n]\n{"c": 3}'
    located = loads_jsonc_located(text)
    assert [(line, list(items)) for _, line, items in located] == [(2, [3, 5]), (7, [])]


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ('{"a": 1 "b": 2}', 1, 9, "expected ',' or '}'"),
        ('{\n  "a": 1,\n  "b" 2\n}', 3, 7, "expected ':'"),
        ('// c\n{"a": 1', 2, 8, "unexpected end of data"),
        ('{"a": 1}}', 1, 9, "unexpected character"),
        ('{"a": 1}\n/* open', 2, 1, "unterminated /* comment"),
        ('{"a": tru}', 1, 7, "invalid literal"),
        ('{"é": "ü", x}', 1, 12, "expected a string key"),
    ],
)
def test_syntax_errors_have_positions(text: str, line: int, column: int, message: str) -> None:
    """A syntax error says what and where (1-based line and column of the source text)."""
    with pytest.raises(JsoncError) as info:
        loads_jsonc(text)
    assert (info.value.line, info.value.column) == (line, column)
    assert message in info.value.message
    assert isinstance(info.value, ValueError)


def test_plain_json_lines_are_found_on_first_use() -> None:
    """Plain JSON takes the one-call path; its items' lines are still right when read."""
    text = '\n[\n  {"a": 1},\n  {"b": [1,\n 2]},\n  {"c": "x,]"}\n]\n'
    ((value, line, items),) = loads_jsonc_located(text)
    assert value == [{"a": 1}, {"b": [1, 2]}, {"c": "x,]"}]
    assert line == 2
    assert len(items) == 3
    assert list(items) == [3, 4, 6]
