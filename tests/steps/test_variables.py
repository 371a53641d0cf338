"""Create Variable and Update Variable."""

from __future__ import annotations

from tests.steps.helpers import compile_issues, compile_warnings, run, step


async def test_create_then_update_and_return_value() -> None:
    """A created variable is readable by later steps; update replaces it; both return the value."""
    result = await run(
        [
            step("Create Variable", name="n", value=1, return_variable="created"),
            step("update_variable", name="n", value={"wrapped": "{{n}}"}, return_variable="upd"),
            step("Return", value=["{{n}}", "{{created}}", "{{upd}}"]),
        ]
    )
    assert result.status == "succeeded", result.error
    assert result.value == [{"wrapped": 1}, 1, {"wrapped": 1}]


async def test_variable_set_in_branch_is_visible_later() -> None:
    """One scope per run: a variable created inside a Conditional is visible after it."""
    result = await run(
        [
            step(
                "Conditional",
                condition=True,
                true_steps=[step("Create Variable", name="x", value=5)],
            ),
            step("Return", value="{{x}}"),
        ]
    )
    assert result.value == 5


def test_name_must_be_identifier() -> None:
    """A name that is not a plain identifier is a load-time error on the `name` field."""
    issues = compile_issues([step("Update Variable", name="a.b", value=1)])
    assert [i.path for i in issues] == ["function_stack[0].name"]
    assert "identifier" in issues[0].message


def test_value_is_checked_before_the_name_is_defined() -> None:
    """`x = {{x}}` on a fresh x warns: the value is compiled before x is defined."""
    warnings = compile_warnings([step("Create Variable", name="x", value="{{x}}")])
    assert [(w.path, "x" in w.message) for w in warnings] == [("function_stack[0].value", True)]
    assert (
        compile_warnings(
            [
                step("Create Variable", name="x", value=1),
                step("Update Variable", name="x", value="{{x}}"),
            ]
        )
        == []
    )
