"""Call Python: load-time import errors, sync functions on the pool, coroutines awaited, errors and
results that are not JSON."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from daemon.core.runs import RunResult
from daemon.resources.bundle import Resources
from tests.steps.helpers import compile_issues, run, step

MOD = "tests.steps.pyfuncs"


def call(target: str, args: Any = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"target": target, "return_variable": "r"}
    if args is not None:
        fields["args"] = args
    return step("Call Python", **fields)


async def run_call(target: str, args: Any = None, **kw: Any) -> RunResult:
    return await run([call(target, args), step("Return", value="{{r}}")], **kw)


async def test_plain_function_gets_templated_keyword_args_and_runs_on_the_pool() -> None:
    """`args` is templated and passed as keywords; a plain function runs on a pool thread."""
    result = await run(
        [
            step("Create Variable", name="x", value=40),
            call(f"{MOD}:add", {"a": "{{x}}", "b": "{{x / 20}}"}),
            step("Return", value="{{r}}"),
        ]
    )
    assert result.status == "succeeded", result.error
    assert result.value["sum"] == 42
    assert result.value["thread"].startswith("cronstack-python")


async def test_coroutine_function_is_awaited_and_tuples_become_lists() -> None:
    """An `async def` target is awaited on the loop; its JSON-able result is the step's value."""
    result = await run_call(f"{MOD}:fetch", {"name": "n"})
    assert result.status == "succeeded", result.error
    assert result.value == ["n", ["tuple", 1], {"nested": None}]


async def test_args_may_be_one_template_yielding_an_object() -> None:
    """`args = "{{obj}}"` passes that object's keys as the keyword arguments."""
    result = await run(
        [
            step("Create Variable", name="kw", value={"a": 1, "b": 2}),
            call(f"{MOD}:add", "{{kw}}"),
            step("Return", value="{{r.sum}}"),
        ]
    )
    assert result.value == 3, result.error


async def test_dotted_attribute_target() -> None:
    """`module:Class.method` reaches an attribute of an attribute."""
    result = await run_call(f"{MOD}:Report.build", {"rows": [1, 2, 3]})
    assert result.value == 3, result.error


@pytest.mark.parametrize(
    ("target", "args", "needle"),
    [
        ("tests.steps.no_such_module:f", None, 'no module named "tests.steps.no_such_module"'),
        (f"{MOD}:missing", None, f'module "{MOD}" has no attribute "missing"'),
        (f"{MOD}:NOT_A_FUNCTION", None, "is not a function (its type is int)"),
        ("no_colon_here", None, 'must read "package.module:function"'),
        (f"{MOD}:add", {"a": 1, "c": 2}, "unexpected keyword argument 'c'"),
        (f"{MOD}:add", {"b": 2}, "missing a required argument: 'a'"),
        (f"{MOD}:add", [1, 2], "object of keyword arguments"),
    ],
)
def test_load_time_errors(target: str, args: Any, needle: str) -> None:
    """The target is imported when the task is loaded: `check` reports what is wrong, at the
    field's path."""
    issues = compile_issues([call(target, args)])
    assert issues, target
    field = "args" if args is not None else "target"
    assert issues[0].path == f"function_stack[0].{field}"
    assert needle in issues[0].message, issues[0].message


async def test_exception_fails_the_step_with_python_error() -> None:
    """An exception is a PythonError naming the exception type and message; secrets masked."""
    resources = Resources(env={"PY_TEST_SECRET": "py-secret-value-9911"})
    result = await run_call(f"{MOD}:boom", {"message": "bad input {{env.PY_TEST_SECRET}}"},
                            resources=resources)  # fmt: skip
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "PythonError"
    assert result.error["message"] == f"{MOD}:boom raised ValueError: bad input ***"
    assert result.error["exception"] == "ValueError"
    assert result.error["step"] == "function_stack[0]"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("when", "returned a datetime at ['when'], which is not JSON"),
        ("not_a_number", "returned the number nan, which is not JSON"),
        ("obj", "returned a object, which is not JSON"),
    ],
)
async def test_result_must_be_json(name: str, message: str) -> None:
    """A result that is not JSON fails the step and says what the value was."""
    result = await run_call(f"{MOD}:{name}")
    assert result.error is not None and result.error["type"] == "PythonError"
    assert result.error["message"] == f"{MOD}:{name} {message}"


async def test_blocking_function_does_not_block_the_loop() -> None:
    """time.sleep(0.5) in a plain function: the loop keeps ticking, and two calls overlap."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    try:
        results = await asyncio.gather(
            run_call(f"{MOD}:blocking", {"seconds": 0.5}),
            run_call(f"{MOD}:blocking", {"seconds": 0.5}),
        )
    finally:
        done.set()
        await tick
    elapsed = time.perf_counter() - started
    assert [r.value for r in results] == [0.5, 0.5]
    assert 0.5 <= elapsed < 0.9, elapsed  # in parallel on the pool, not one after the other
    assert len(gaps) >= 30 and max(gaps) < 0.1, max(gaps)
