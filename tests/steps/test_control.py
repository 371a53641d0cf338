"""Control flow steps: Conditional, Loop, Try-Catch, Throw Error, Return, Sleep, Log."""

from __future__ import annotations

import json
import math
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.engine.compiler import compile_stack
from daemon.engine.runner import run_stack
from daemon.expr.values import truthy
from daemon.resources.bundle import Resources
from daemon.resources.db import create_datasource
from tests.steps.helpers import REGISTRY, compile_issues, compile_warnings, run, step


def setv(name: str, value: Any) -> dict[str, Any]:
    return step("Create Variable", name=name, value=value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        (math.nan, False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (1, True),
        (-0.5, True),
        ("0", True),
        ("false", True),
        ([0], True),
        ({"a": None}, True),
    ],
)
def test_truthy(value: Any, expected: bool) -> None:
    """Conditions follow JS truthiness, with empty lists and objects false."""
    assert truthy(value) is expected


@pytest.mark.parametrize(("cond", "branch"), [([], "no"), ([1], "yes"), (None, "no")])
async def test_conditional_branches(cond: Any, branch: str) -> None:
    """The true or false branch runs according to the condition's truthiness."""
    result = await run(
        [
            setv("c", cond),
            step(
                "Conditional",
                condition="{{c}}",
                true_steps=[step("Return", value="yes")],
                false_steps=[step("Return", value="no")],
            ),
        ]
    )
    assert result.value == branch
    assert result.trace[-1].path.endswith("true_steps[0]" if branch == "yes" else "false_steps[0]")


async def test_loop_runs_body_per_item_with_index() -> None:
    """Each item (and its index) is bound inside the body; variables set there persist."""
    result = await run(
        [
            setv("items", ["a", "b", "c"]),
            setv("seen", []),
            step(
                "Loop",
                input_array="{{items}}",
                loop_item_variable="it",
                index_variable="i",
                steps=[setv("last", ["{{i}}", "{{it}}"])],
            ),
            step("Return", value="{{last}}"),
        ]
    )
    assert result.status == "succeeded", result.error
    assert result.value == [2, "c"]
    paths = [r.path for r in result.trace if "steps[0]" in r.path]
    assert paths == ["function_stack[2].steps[0]"] * 3


async def test_loop_null_input_runs_nothing_and_non_list_fails() -> None:
    """null input means no iterations; an object is a StepError naming the type."""
    ok = await run([setv("x", None), step("Loop", input_array="{{x}}", steps=[step("Return")])])
    assert ok.status == "succeeded"
    bad = await run([setv("x", {"a": 1}), step("Loop", input_array="{{x}}", steps=[])])
    assert bad.status == "failed"
    assert bad.error is not None
    assert bad.error["type"] == "StepError"
    assert "must be a list, got object" in bad.error["message"]


async def test_loop_concurrency_runs_iterations_in_parallel() -> None:
    """10 iterations of a 0.2 s sleep with concurrency 10 take well under 10 x 0.2 s."""
    start = time.monotonic()
    result = await run(
        [
            setv("items", list(range(10))),
            step(
                "Loop",
                input_array="{{items}}",
                concurrency=10,
                steps=[step("Sleep", duration="200ms")],
            ),
        ]
    )
    elapsed = time.monotonic() - start
    assert result.status == "succeeded", result.error
    assert elapsed < 1.0
    assert sum(1 for r in result.trace if r.function == "sleep") == 10


async def test_loop_concurrency_is_bounded() -> None:
    """With concurrency 2, 4 sleeps of 0.1 s take at least 0.2 s (never more than 2 at once)."""
    start = time.monotonic()
    result = await run(
        [
            setv("items", [1, 2, 3, 4]),
            step(
                "Loop", input_array="{{items}}", concurrency=2, steps=[step("Sleep", duration=0.1)]
            ),
        ]
    )
    assert result.status == "succeeded"
    assert time.monotonic() - start >= 0.19


async def test_loop_first_failure_cancels_the_rest() -> None:
    """The first failing iteration fails the loop with its own error; the others are cancelled."""
    start = time.monotonic()
    result = await run(
        [
            setv("items", [0, 1, 2, 3]),
            step(
                "Loop",
                input_array="{{items}}",
                concurrency=4,
                steps=[
                    step(
                        "Conditional",
                        condition="{{item}}",
                        true_steps=[step("Sleep", duration="5s")],
                        false_steps=[step("Throw Error", message="boom", type="Boom")],
                    )
                ],
            ),
        ]
    )
    assert time.monotonic() - start < 2
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "Boom"
    assert result.error["message"] == "boom"
    assert result.error["step"].endswith("false_steps[0]")
    statuses = {r.status for r in result.trace if r.function == "sleep"}
    assert statuses == {"cancelled"}


async def test_return_inside_concurrent_loop_ends_the_stack() -> None:
    """Return from inside a concurrent loop body ends the whole run with its value."""
    result = await run(
        [
            setv("items", [1, 2, 3]),
            step("Loop", input_array="{{items}}", concurrency=3, steps=[step("Return", value=7)]),
            step("Throw Error", message="not reached"),
        ]
    )
    assert result.status == "succeeded"
    assert result.value == 7


async def test_try_catch_binds_error_and_runs_finally() -> None:
    """catch sees error.type/message/step; finally runs; `error` is unbound again afterwards."""
    result = await run(
        [
            step(
                "Try-Catch",
                try_steps=[step("Throw Error", message="bad thing", type="Oops")],
                catch_steps=[setv("caught", "{{error}}")],
                finally_steps=[setv("fin", True)],
            ),
            step("Return", value=["{{caught}}", "{{fin}}", "{{error}}"]),
        ]
    )
    assert result.status == "succeeded", result.error
    caught, fin, after = result.value
    assert caught == {
        "type": "Oops",
        "message": "bad thing",
        "step": "function_stack[0].try_steps[0]",
    }
    assert fin is True
    assert after is None


async def test_try_catch_binds_a_masked_error(tmp_path: Path) -> None:
    """An env secret in a caught error's message reaches catch steps (and a table) as ***."""
    secret = f"tok-{secrets.token_hex(12)}"
    (tmp_path / "schema.sql").write_text("CREATE TABLE alerts (id INTEGER PRIMARY KEY, msg TEXT);")
    ds = create_datasource(
        "primary",
        f"sqlite:///{tmp_path}/db.sqlite",
        base_dir=tmp_path,
        init_sql=[Path("schema.sql")],
    )
    await ds.open()
    try:
        res = Resources(
            datasources={"primary": ds}, default_datasource="primary", env={"API_TOKEN": secret}
        )
        stack = compile_stack(
            [
                step(
                    "Try-Catch",
                    try_steps=[step("Throw Error", message="token {{env.API_TOKEN}} rejected")],
                    catch_steps=[
                        setv("caught", "{{error.message}}"),
                        step("Add Record", table="alerts", data={"msg": "{{error.message}}"}),
                    ],
                ),
                step("Return", value="{{caught}}"),
            ],
            registry=REGISTRY,
            resources=res,
        )
        result = await run_stack(stack.steps, resources=res)
        stored = await ds.fetch("SELECT msg FROM alerts", [])
    finally:
        await ds.close()
    assert result.status == "succeeded", result.error
    assert result.value == "token *** rejected"
    assert stored == [{"msg": "token *** rejected"}]


async def test_try_catch_error_in_catch_propagates_after_finally() -> None:
    """An error raised in catch fails the step, but only after finally has run."""
    result = await run(
        [
            step(
                "Try-Catch-Finally",
                try_steps=[step("Throw Error", message="first")],
                catch_steps=[step("Throw Error", message="second")],
                finally_steps=[step("Log", message="cleanup")],
            ),
        ]
    )
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["message"] == "second"
    assert [r.function for r in result.trace][-1] == "log"


async def test_try_catch_does_not_catch_return() -> None:
    """Return inside try ends the stack (finally still runs); catch does not see it."""
    result = await run(
        [
            step(
                "try_catch_finally",
                try_steps=[step("Return", value="done")],
                catch_steps=[setv("caught", True)],
                finally_steps=[setv("fin", True)],
            ),
            step("Throw Error", message="not reached"),
        ]
    )
    assert result.status == "succeeded"
    assert result.value == "done"
    assert [r.function for r in result.trace] == ["try_catch", "return", "create_variable"]


async def test_nested_try_restores_outer_error() -> None:
    """A nested try/catch inside catch restores the outer `error` when it finishes."""
    inner = step(
        "Try-Catch",
        try_steps=[step("Throw Error", message="inner")],
        catch_steps=[setv("inner_msg", "{{error.message}}")],
    )
    result = await run(
        [
            step(
                "Try-Catch",
                try_steps=[step("Throw Error", message="outer")],
                catch_steps=[inner, setv("outer_msg", "{{error.message}}")],
            ),
            step("Return", value=["{{inner_msg}}", "{{outer_msg}}"]),
        ]
    )
    assert result.value == ["inner", "outer"]


async def test_throw_error_default_type_and_non_text_message() -> None:
    """Throw Error defaults to type StepError; a non-string message is rendered as JSON."""
    result = await run([step("Throw Error", message={"code": 1})])
    assert result.error == {
        "type": "StepError",
        "message": '{"code":1}',
        "step": "function_stack[0]",
    }


async def test_return_stops_the_stack() -> None:
    """Return ends the run successfully with its value; later steps do not run."""
    result = await run([step("Return", value=[1, 2]), step("Throw Error", message="no")])
    assert result.status == "succeeded"
    assert result.value == [1, 2]
    assert len(result.trace) == 1


async def test_sleep_durations() -> None:
    """Sleep accepts duration strings, numbers and templates."""
    start = time.monotonic()
    result = await run(
        [
            setv("d", "50ms"),
            step("Sleep", duration="50ms"),
            step("Sleep", duration=0.05),
            step("Sleep", duration="{{d}}"),
        ]
    )
    assert result.status == "succeeded", result.error
    assert 0.14 <= time.monotonic() - start < 1


async def test_sleep_bad_template_value_fails() -> None:
    """A templated duration that is not a duration fails the step with a StepError."""
    result = await run([setv("d", "soon"), step("Sleep", duration="{{d}}")])
    assert result.status == "failed"
    assert result.error is not None
    assert "invalid duration" in result.error["message"]


async def test_log_emits_task_log_event() -> None:
    """Log emits a `task_log` event at its level carrying the message value."""
    with capture_logs() as logs:
        result = await run([setv("n", 3), step("Log", level="warning", message={"count": "{{n}}"})])
    assert result.status == "succeeded"
    events = [e for e in logs if e["event"] == "task_log"]
    assert events == [
        {
            "event": "task_log",
            "log_level": "warning",
            "message": {"count": 3},
            "step": "function_stack[1]",
        }
    ]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (step("Sleep", duration="soon"), "duration"),
        (step("Log", level="loud", message="x"), "level"),
        (step("Loop", input_array=[], concurrency=0, steps=[]), "concurrency"),
        (step("Loop", input_array=[], loop_item_variable="a-b", steps=[]), "loop_item_variable"),
    ],
)
def test_load_time_errors(raw: dict[str, Any], field: str) -> None:
    """Bad literal fields are reported at load time with the field's path."""
    issues = compile_issues([raw])
    assert [i.path for i in issues] == [f"function_stack[0].{field}"]


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        (
            step("Log", message="x", colour="red"),
            "function_stack[0].colour",
            'unknown key "colour"',
        ),
        (step("Loop", steps=[]), "function_stack[0].input_array", 'missing required key "input'),
        (
            step("Loop", input_array=[], concurrency="2", steps=[]),
            "function_stack[0].concurrency",
            "expected int, got str",
        ),
    ],
)
def test_a_steps_fields_are_checked_like_the_config_file(
    raw: dict[str, Any], path: str, message: str
) -> None:
    """A step's wrong, unknown or missing field reads as the same one in config.toml would:
    one converter of msgspec's messages for both (core.errors.issue_from_validation)."""
    (issue,) = compile_issues([raw])
    assert issue.path == path
    assert issue.message.startswith(message), issue.message


def test_loop_item_variable_is_scoped_to_the_loop() -> None:
    """The item variable is defined inside the body only; using it after the loop warns."""
    warnings = compile_warnings(
        [
            step(
                "Loop",
                input_array=[1],
                loop_item_variable="it",
                steps=[step("Log", message="{{it}}")],
            ),
            step("Log", message="{{it}}"),
        ]
    )
    assert [w.path for w in warnings] == ["function_stack[1].message"]


async def test_concurrent_loop_items_do_not_mix() -> None:
    """Each concurrent worker sees its own item, even across awaits inside the body."""
    result = await run(
        [
            setv("items", list(range(6))),
            step(
                "Loop",
                input_array="{{items}}",
                index_variable="i",
                concurrency=3,
                steps=[
                    step("Sleep", duration="10ms"),
                    step(
                        "Conditional",
                        condition="{{item == i}}",
                        false_steps=[step("Throw Error", message="mixed up")],
                    ),
                ],
            ),
        ]
    )
    assert result.status == "succeeded", result.error


LOG_ERROR = {"function": "Log", "message": "{{error.message}}"}
ERROR_SCOPES: dict[str, tuple[list[Any], list[str]]] = {
    "top level": ([LOG_ERROR], ["function_stack[0].message"]),
    "try_steps": (
        [{"function": "Try-Catch", "try_steps": [LOG_ERROR], "catch_steps": []}],
        ["function_stack[0].try_steps[0].message"],
    ),
    "catch_steps": ([{"function": "Try-Catch", "try_steps": [], "catch_steps": [LOG_ERROR]}], []),
    "nested in catch": (
        [
            {
                "function": "Try-Catch",
                "catch_steps": [
                    {"function": "Conditional", "condition": True, "true_steps": [LOG_ERROR]}
                ],
            }
        ],
        [],
    ),
    "finally_steps": (
        [{"function": "Try-Catch", "try_steps": [], "finally_steps": [LOG_ERROR]}],
        ["function_stack[0].finally_steps[0].message"],
    ),
    "after the Try-Catch": (
        [{"function": "Try-Catch", "catch_steps": [LOG_ERROR]}, LOG_ERROR],
        ["function_stack[1].message"],
    ),
}


@pytest.mark.parametrize(("raw", "warned"), ERROR_SCOPES.values(), ids=ERROR_SCOPES.keys())
def test_error_outside_catch_is_a_warning(raw: list[Any], warned: list[str]) -> None:
    """`error` is bound in catch_steps (and on_failure); referenced elsewhere it warns."""
    warnings = [w for w in compile_warnings(raw) if '"error"' in w.message]
    assert [w.path for w in warnings] == warned
    assert all("catch_steps and in on_failure" in w.message for w in warnings)


def test_error_in_on_failure_is_not_a_warning(cli: Any, tmp_path: Path) -> None:
    """A task's on_failure stack sees `error`: `check --json` lists no warning for it, while
    the same reference in function_stack is one."""
    (tmp_path / "tasks").mkdir()
    task = {"name": "t", "function_stack": [LOG_ERROR], "on_failure": [LOG_ERROR]}
    (tmp_path / "tasks" / "t.json").write_text(json.dumps(task))
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\ntasks = ["tasks/*.json"]\n[admin]\nlisten = ""\n')
    code, out, _err = cli("check", "-c", str(config), "--json")
    doc = json.loads(out)
    assert code == 0 and [w["path"] for w in doc["warnings"]] == ["function_stack[0].message"]
