"""Xano's flow steps: Switch, For Loop, While Loop, Break Out, Continue, Precondition, Group and
Call Function, compiled and run by the real compiler and runner."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.config.tasks import LoadedFunction
from daemon.core.errors import ConfigError
from daemon.engine.compiler import FunctionLibrary, compile_stack
from daemon.engine.runner import run_stack
from daemon.resources.bundle import Resources
from tests.steps.helpers import REGISTRY, compile_issues, run, step


def setv(name: str, value: Any) -> dict[str, Any]:
    return step("Create Variable", name=name, value=value)


def ret(value: Any) -> dict[str, Any]:
    return step("Return", value=value)


def switch(value: Any, *, loose: bool = False) -> dict[str, Any]:
    return step(
        "Switch",
        value=value,
        loose=loose,
        cases=[
            {"value": 1, "steps": [ret("one")]},
            {"value": "two", "steps": [ret("two")]},
            {"value": 1, "steps": [ret("second one")]},
            {"value": "empty", "steps": []},
        ],
        default_steps=[ret("default")],
    )


@pytest.mark.parametrize(
    ("value", "loose", "expected"),
    [
        (1, False, "one"),  # the first matching case, no fall-through into the next ones
        ("two", False, "two"),
        ("1", False, "default"),  # strict: text is not a number
        ("1", True, "one"),  # loose (XanoScript): 1 == "1"
        (True, False, "default"),
        ("empty", False, None),  # a matching case with no steps does nothing
        (None, False, "default"),
    ],
)
async def test_switch(value: Any, loose: bool, expected: Any) -> None:
    """Switch runs the first equal case, else the default steps."""
    result = await run([setv("v", value), switch("{{ v }}", loose=loose)])
    assert result.status == "succeeded", result.error
    assert result.value == expected


def collect(name: str, value: str) -> dict[str, Any]:
    """Append `value` to the list variable `name`."""
    return setv(name, "{{ " + name + " + [" + value + "] }}")


@pytest.mark.parametrize(
    ("iterations", "body", "expected"),
    [
        (3, [collect("seen", "index")], [0, 1, 2]),
        (0, [collect("seen", "index")], []),
        ("{{ 2.0 }}", [collect("seen", "index")], [0, 1]),
        (
            5,
            [
                step("Conditional", condition="{{ index == 1 }}", true_steps=[step("Continue")]),
                step("Conditional", condition="{{ index == 3 }}", true_steps=[step("Break Out")]),
                collect("seen", "index"),
            ],
            [0, 2],
        ),
    ],
)
async def test_for_loop(iterations: Any, body: list[Any], expected: list[int]) -> None:
    """For Loop counts index 0..n-1; Continue skips the rest of a pass, Break Out ends it."""
    result = await run(
        [setv("seen", []), step("For Loop", iterations=iterations, steps=body), ret("{{ seen }}")]
    )
    assert result.status == "succeeded", result.error
    assert result.value == expected


async def test_for_loop_needs_a_whole_number() -> None:
    """A non-integer count fails the step."""
    result = await run([step("For Loop", iterations="{{ 'x' }}", steps=[])])
    assert result.status == "failed"
    assert "whole number" in result.error["message"]


async def test_loop_break_and_continue() -> None:
    """Break Out and Continue work in the seed's Loop (For Each) too."""
    body = [
        step("Conditional", condition="{{ item == 2 }}", true_steps=[step("Continue")]),
        step("Conditional", condition="{{ item == 4 }}", true_steps=[step("Break Out")]),
        collect("seen", "item"),
    ]
    result = await run(
        [
            setv("seen", []),
            step("Loop", input_array=[1, 2, 3, 4, 5], steps=body),
            ret("{{ seen }}"),
        ]
    )
    assert result.value == [1, 3]


@pytest.mark.parametrize(
    ("limit", "status", "expected"),
    [(100_000, "succeeded", 5), (3, "failed", 3)],
)
async def test_while_loop(limit: int, status: str, expected: int) -> None:
    """While Loop re-checks its condition before each pass; max_iterations stops a runaway."""
    result = await run(
        [
            setv("n", 0),
            step(
                "While Loop",
                condition="{{ n < 5 }}",
                max_iterations=limit,
                steps=[setv("n", "{{ n + 1 }}")],
            ),
            ret("{{ n }}"),
        ]
    )
    assert result.status == status
    if status == "failed":
        assert "max_iterations" in result.error["message"]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, {"message": "Precondition failed.", "code": "ERROR_FATAL", "name": "standard"}),
        (
            {"error": "no user {{ 7 }}", "error_type": "notfound", "payload": {"id": 7}},
            {
                "message": "no user 7",
                "code": "ERROR_CODE_NOT_FOUND",
                "name": "notfound",
                "result": {"id": 7},
            },
        ),
    ],
)
async def test_precondition(fields: dict[str, Any], error: dict[str, Any]) -> None:
    """A false condition fails with the message, Xano's code and the payload as result; a
    true one does nothing."""
    ok = await run([step("Precondition", condition="{{ 1 < 2 }}", **fields), ret("on")])
    assert ok.value == "on"
    failed = await run([step("Precondition", condition="{{ 1 > 2 }}", **fields), ret("on")])
    assert failed.status == "failed"
    assert failed.error is not None
    assert {k: failed.error.get(k) for k in error} == error
    assert failed.error["type"] == "StepError"


async def test_group_runs_inline_in_one_scope() -> None:
    """Group's steps run in order and what they set is visible after it."""
    group = step("Group", description="setup", steps=[setv("a", 1), setv("b", "{{ a + 1 }}")])
    result = await run([group, ret("{{ b }}")])
    assert result.value == 2
    assert [r.path for r in result.trace] == [
        "function_stack[0]",
        "function_stack[0].steps[0]",
        "function_stack[0].steps[1]",
        "function_stack[1]",
    ]


def library(*functions: LoadedFunction) -> FunctionLibrary:
    return FunctionLibrary(functions, registry=REGISTRY)


def fn(name: str, stack: list[Any], response: Any = None, **kw: Any) -> LoadedFunction:
    return LoadedFunction(name, f"{name}.json", f"function/{name}.json", stack, response, **kw)


async def call(lib: FunctionLibrary, stack: list[Any]) -> Any:
    steps = compile_stack(stack, registry=REGISTRY, functions=lib).steps
    assert not lib.compile_all() or all(i.severity != "error" for i in lib.issues), lib.issues
    return await run_stack(steps, resources=Resources())


async def test_call_function_fresh_scope_input_and_response() -> None:
    """A function sees only `input` (defaults filled), not the caller's variables; its
    response is the step's value; a Return inside is its value too."""
    lib = library(
        fn(
            "double",
            [setv("twice", "{{ input.n * 2 }}")],
            "{{ {'twice': twice, 'unit': input.unit} }}",
            defaults={"unit": "kg"},
        ),
        fn("early", [ret("{{ input.x }}"), setv("never", 1)], "not this"),
        fn("peek", [], "{{ secret }}"),
    )
    result = await call(
        lib,
        [
            setv("secret", "caller's"),
            step("Call Function", name="double", input={"n": 21}, return_variable="d"),
            step("Call Function", name="early", input={"x": "{{ d.twice }}"}, return_variable="e"),
            ret("{{ [d, e] }}"),
        ],
    )
    assert result.status == "succeeded", result.error
    assert result.value == [{"twice": 42, "unit": "kg"}, 42]
    peek = await call(lib, [step("Call Function", name="peek")])
    assert peek.status == "failed" and 'undefined variable "secret"' in peek.error["message"]
    paths = [r.path for r in result.trace]
    assert "function(double).function_stack[0]" in paths


async def test_call_function_recursion_and_required_input() -> None:
    """A function may call itself; a required input left out fails the call (inputerror)."""
    fact = fn(
        "fact",
        [
            step(
                "Conditional",
                condition="{{ input.n <= 1 }}",
                true_steps=[ret(1)],
                false_steps=[
                    step(
                        "Call Function",
                        name="fact",
                        input={"n": "{{ input.n - 1 }}"},
                        return_variable="sub",
                    ),
                    ret("{{ input.n * sub }}"),
                ],
            )
        ],
        required=("n",),
    )
    lib = library(fact)
    result = await call(
        lib,
        [step("Call Function", name="fact", input={"n": 6}, return_variable="f"), ret("{{ f }}")],
    )
    assert result.value == 720
    missing = await call(lib, [step("Call Function", name="fact")])
    assert missing.status == "failed"
    assert missing.error["code"] == "ERROR_CODE_INPUT_ERROR"


def test_unknown_function_is_a_load_error() -> None:
    """Calling a function nobody defines is found at load time, with a did-you-mean."""
    lib = library(fn("send_report", []))
    with pytest.raises(ConfigError) as info:
        compile_stack([step("Call Function", name="send_reprot")], registry=REGISTRY, functions=lib)
    assert 'unknown function "send_reprot" (did you mean "send_report"?)' in str(info.value)
    assert compile_issues([step("Call Function", name="x")])[0].path == "function_stack[0].name"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (step("Precondition", condition=True, error_type="nope"), 'unknown error_type "nope"'),
        (step("While Loop", condition=True, max_iterations=0), "at least 1"),
        (step("For Loop", iterations=1, index_variable="a b"), "plain identifier"),
    ],
)
def test_flow_load_errors(raw: dict[str, Any], message: str) -> None:
    """Bad settings are load-time errors."""
    assert any(message in i.message for i in compile_issues([raw]))
