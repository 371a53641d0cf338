"""The filter pipe in `{{ }}` templates: Xano's filter library in JSON/TOML tasks, with the
same binding rules as XanoScript (arguments up to the next `:` or `|`, chains left to right)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from daemon.core.errors import ExpressionError
from daemon.engine.context import RunContext, TaskInfo
from daemon.expr.parser import compile_template
from daemon.resources.bundle import Resources

VARS = {
    "orders": [{"id": 1, "total": 1.5}, {"id": 2, "total": 2}, {"id": 3, "total": None}],
    "n": 3.14159,
    "name": "  Ada ",
    "flag": True,
    "ts": 1772964000000,  # 2026-03-08T10:00:00Z
}


def ctx(tz: str = "UTC") -> RunContext:
    run = RunContext(
        task=TaskInfo(name="t", run_id="r", slot_id="s", scheduled_at=0),
        resources=Resources(),
        tz=ZoneInfo(tz),
    )
    run.scope.update(VARS)
    return run


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ orders|map:$$.total|filter_null|sum }}", 3.5),
        ("{{ orders|map:$this.id }}", [1, 2, 3]),
        ("{{ orders|map:$index }}", [0, 1, 2]),
        ("{{ orders|find:$$.id == 2|get:'total' }}", 2),
        ("{{ [1, 2, 3]|reduce:$$ + $result:10 }}", 16),
        ("{{ n|round:2 }}", 3.14),
        ("{{ name|trim|to_upper }}", "ADA"),
        ("Hello {{ name|trim }}!", "Hello Ada!"),
        ("{{ (orders|count) + 1 }}", 4),
        ("{{ orders|count > 2 }}", True),
        ("{{ 1|add:2 * 3 }}", 7),  # an argument runs to the next : or |
        ("{{ flag ? n|round : 0 }}", 3),  # a spaced ":" is the ternary's
        ("{{ [1, 2]|map:($$|add:1) }}", [2, 3]),
        ("{{ {'a': orders|count} }}", {"a": 3}),
        ("{{ 'a|b' }}", "a|b"),
        ("{{ flag || false }}", True),
        ("{{ ts|format_timestamp:'Y-m-d H:i' }}", "2026-03-08 10:00"),
        ("{{ '1 + 2'|to_expr }}", 3),
    ],
)
def test_pipe(template: str, expected: Any) -> None:
    """Filters apply to the operand before them; higher-order ones bind $$, $index, $result."""
    assert compile_template(template).evaluate(ctx()) == expected


def test_time_zone_defaults_to_the_tasks() -> None:
    """A timestamp filter without its own zone uses the task's (XanoScript's is UTC)."""
    tpl = compile_template("{{ ts|format_timestamp:'H:i' }}")
    assert tpl.evaluate(ctx("Europe/Paris")) == "11:00"
    assert compile_template("{{ ts|format_timestamp:'H:i':'UTC' }}").evaluate(ctx()) == "10:00"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ n|rond:2 }}", 'unknown filter "rond" (did you mean "round"?)'),
        ("{{ [1]|lambda_map:'x' }}", 'filter "lambda_map" cannot run here'),
        ("{{ n|substr }}", 'filter "substr" takes 1 to 2 arguments, got 0'),
        ("{{ $$ }}", "only means something in an argument of a filter"),
        ("{{ orders|count:$result }}", "$result only means something"),
        ("{{ n| }}", 'expected a filter name after "|"'),
        ("{{ $foo }}", 'unexpected "$"'),
    ],
)
def test_pipe_errors_at_load(template: str, message: str) -> None:
    """Unknown filters, wrong argument counts and stray element names fail when compiled."""
    with pytest.raises(ExpressionError) as info:
        compile_template(template)
    assert message in info.value.message


def test_references_leave_element_names_out() -> None:
    """Undefined-variable checks see the variables, not $$ and friends."""
    tpl = compile_template("{{ orders|map:$$.total + offset }}")
    assert [r.name for r in tpl.references] == ["orders", "offset"]


def test_constant_pipes_fold() -> None:
    """A pure filter over constants is computed once, at load time."""
    tpl = compile_template("{{ 'abc'|to_upper }}")
    assert tpl.evaluate(None) == "ABC"
