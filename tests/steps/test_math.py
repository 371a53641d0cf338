"""Math: every operation, from a table, plus the errors it reports."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from steps.math import to_number
from tests.steps.helpers import compile_issues, run, step

NOTHING = step("Create Variable", name="nothing", value=None)

CASES: list[tuple[dict[str, Any], Any]] = [
    ({"operation": "count", "values": [1, None, "x"]}, 3),
    ({"operation": "count", "values": []}, 0),
    ({"operation": "count", "values": "{{nothing}}"}, 0),
    ({"operation": "sum", "values": "{{nothing}}"}, 0),
    ({"operation": "sum", "values": [1, 2, 3]}, 6),
    ({"operation": "sum", "values": [1.5, None, "2.5"]}, 4),
    ({"operation": "sum", "values": []}, 0),
    ({"operation": "avg", "values": [1, 2, 3, None]}, 2),
    ({"operation": "avg", "values": [1, 2]}, 1.5),
    ({"operation": "avg", "values": []}, None),
    ({"operation": "min", "values": [3, None, -1, 2]}, -1),
    ({"operation": "max", "values": [3, "10", 2]}, 10),
    ({"operation": "max", "values": [None]}, None),
    ({"operation": "add", "value": 2, "operand": 3}, 5),
    ({"operation": "add", "value": 0.1, "operand": 0.2}, 0.1 + 0.2),
    ({"operation": "subtract", "value": 2, "operand": 3}, -1),
    ({"operation": "multiply", "value": "4", "operand": 2.5}, 10),
    ({"operation": "divide", "value": 10, "operand": 4}, 2.5),
    ({"operation": "divide", "value": 10, "operand": 2}, 5),
    ({"operation": "modulo", "value": 7, "operand": 3}, 1),
    ({"operation": "modulo", "value": -7, "operand": 3}, -1),
    ({"operation": "modulo", "value": 7.5, "operand": 2}, 1.5),
    ({"operation": "round", "value": 2.5}, 3),
    ({"operation": "round", "value": -2.5}, -3),
    ({"operation": "round", "value": 1.005, "operand": 2}, 1.01),
    ({"operation": "round", "value": 1234, "operand": -2}, 1200),
    ({"operation": "floor", "value": -1.5}, -2),
    ({"operation": "ceil", "value": 1.2}, 2),
    ({"operation": "abs", "value": -3.5}, 3.5),
    ({"operation": "ABS", "value": -3}, 3),
]


@pytest.mark.parametrize(("fields", "expected"), CASES)
async def test_operation(fields: dict[str, Any], expected: Any) -> None:
    """Each operation computes what its name says."""
    result = await run(
        [NOTHING, step("Math", return_variable="r", **fields), step("Return", value="{{r}}")]
    )
    assert result.status == "succeeded", result.error
    assert result.value == expected
    assert type(result.value) is type(expected)


ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"operation": "sum", "values": [1, "abc"]}, "values[1] must be a number"),
    ({"operation": "sum", "values": [1, True]}, "must be a number, got boolean"),
    ({"operation": "sum", "values": {"a": 1}}, "values must be a list, got object"),
    (
        {"operation": "add", "value": "{{nothing}}", "operand": 1},
        "value must be a number, got null",
    ),
    ({"operation": "add", "value": 1, "operand": [1]}, "operand must be a number, got list"),
    ({"operation": "divide", "value": 1, "operand": 0}, "division by zero"),
    ({"operation": "modulo", "value": 1, "operand": 0.0}, "division by zero"),
    ({"operation": "round", "value": 1.5, "operand": 0.5}, "whole number"),
]


@pytest.mark.parametrize(("fields", "message"), ERRORS)
async def test_bad_input_fails_with_step_error(fields: dict[str, Any], message: str) -> None:
    """Non-numeric input and division by zero fail the step with a StepError that says why."""
    result = await run([NOTHING, step("Math", **fields)])
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "StepError"
    assert message in result.error["message"]
    assert result.error["step"] == "function_stack[1]"


async def test_seed_shapes_with_plucked_list() -> None:
    """The seed's count over query results and sum over a plucked column (nulls skipped)."""
    result = await run(
        [
            step("Create Variable", name="daily_activities", value=[{"id": 1}, {"id": 2}]),
            step(
                "Create Variable",
                name="daily_orders",
                value=[{"total": 10}, {"total": None}, {"total": "2.5"}],
            ),
            step("Math", operation="count", values="{{daily_activities}}", return_variable="n"),
            step("Math", operation="sum", values="{{daily_orders.total}}", return_variable="rev"),
            step("Return", value=["{{n}}", "{{rev}}"]),
        ]
    )
    assert result.status == "succeeded", result.error
    assert result.value == [2, 12.5]


def test_decimal_values_are_numbers() -> None:
    """Decimals (from numeric columns) are accepted and come back as plain numbers."""
    assert to_number(Decimal("2.50"), "sum", "values[0]") == 2.5
    assert to_number(Decimal("3"), "sum", "values[0]") == 3


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"operation": "median", "values": [1]}, "operation"),
        ({"operation": "sum"}, "values"),
        ({"operation": "add", "value": 1}, "operand"),
        ({"operation": "abs", "value": 1, "operand": 2}, "operand"),
    ],
)
def test_load_time_errors(fields: dict[str, Any], field: str) -> None:
    """An unknown operation or missing operand is reported at load time on the field."""
    issues = compile_issues([step("Math", **fields)])
    assert [i.path for i in issues] == [f"function_stack[0].{field}"]
