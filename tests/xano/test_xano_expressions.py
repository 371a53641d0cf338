"""XanoScript expressions compiled to the engine's closures: values, operators, paths, filters,
casts, element variables, folding, and what is refused at load time."""

from __future__ import annotations

import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from daemon.core.errors import ExpressionError
from daemon.xano.expressions import (
    Scope,
    XanoCompileError,
    compile_expr,
    to_condition,
    to_field,
    to_template,
    xano_error,
)
from daemon.xano.parser import parse_expression


class FakeRun:
    """The little of a run context expressions read: variables, built-ins, a zone."""

    def __init__(self, variables: dict[str, Any]) -> None:
        self.vars = variables
        self.tz = ZoneInfo("UTC")
        self.error: dict[str, Any] | None = None

    def builtin(self, name: str) -> Any:
        if name == "env":
            return {"REGION": "eu", "FLAG": "true"}
        if name == "error":
            return self.error
        raise ExpressionError(f'undefined variable "{name}"', variable=name)


VARS: dict[str, Any] = {
    "n": 5,
    "s": "abc",
    "zero": "0",
    "none": None,
    "rows": [{"id": 1, "n": 3, "tags": ["a", "b"]}, {"id": 2, "n": 0, "tags": ["c"]}],
    "obj": {"a": {"b": 7}, "list": [10, 20, 30]},
    "page": {"items": [{"total": 1.5}, {"total": 2}, {"total": "3"}]},
}


def ev(text: str, **extra: Any) -> Any:
    node = compile_expr(parse_expression(text), Scope())
    return node.fn(FakeRun({**VARS, **extra}))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # arithmetic: PHP's juggling, exact ints, + with text joins
        ("1 + 2 * 3", 7),
        ("7 / 2", 3.5),
        ("6 / 3", 2),
        ("10 % 3", 1),
        ("-7 % 3", -1),
        ('2 * "3"', 6),
        ("$none + 1", 1),
        ('"Auction " + $n + " sold"', "Auction 5 sold"),
        ('"5" + 1', "51"),
        ("1.5 + 1", 2.5),
        ("-$n", -5),
        # text
        ('"a" ~ 1 ~ $none', "a1"),
        ('$s ~ "-" ~ ($n|to_text)', "abc-5"),
        # comparison: loose and strict, PHP ordering
        ('5 == "5"', True),
        ('5 === "5"', False),
        ('5 !== "5"', True),
        ("$none == false", True),
        ('$none == ""', True),
        ('"abc" < "abd"', True),
        ('"10" > "9"', True),
        ("[1, 2] == [1, 2]", True),
        # logic: PHP truthiness, || returns an operand, ?? only for null
        ('0 || "x"', "x"),
        ('$zero || "y"', "y"),
        ("$n || 1", 5),
        ("1 && 0", False),
        ("$none ?? 5", 5),
        ("0 ?? 5", 0),
        ('$zero ? "t" : "f"', "f"),
        ('$n > 3 ? "big" : "small"', "big"),
        ("!$zero", True),
        ("!$rows", False),
        # membership and ranges
        ("2 in [1, 2]", True),
        ('"2" in [1, 2]', True),
        ("3 not in [1, 2]", True),
        ("1..4", [1, 2, 3, 4]),
        ("3..1", [3, 2, 1]),
        # paths: missing keys are null, lists pluck (and flatten), negative and dot indexes
        ("$obj.a.b", 7),
        ("$obj.a.missing", None),
        ("$obj.list[-1]", 30),
        ("$obj.list.0", 10),
        ("$obj.list[9]", None),
        ('$obj["a"].b', 7),
        ("$rows.id", [1, 2]),
        ("$rows.tags", ["a", "b", "c"]),
        ("$rows[$$.n > 1].id", [1]),
        ("($rows[$$.id == 2]|first).n", 0),
        # filters, higher-order ones with $$, $index, $result
        ('"abc"|to_upper', "ABC"),
        ("($page.items|map:$$.total)|sum", 6.5),
        ("[1, 2, 3]|map:$$ * 2", [2, 4, 6]),
        ("[1, 2, 3]|map:$index", [0, 1, 2]),
        ("[1, 2, 3]|reduce:$$ + $result:10", 16),
        ("[1, 2, 3, 4]|filter:$$ % 2 == 0", [2, 4]),
        ('$rows|find:$$.id == 2|get:"n"', 0),
        ("[]|push:1|push:2", [1, 2]),
        ("$n|add:1 * 2", 7),
        ('{}|set:"a":1|set:"b":($n|add:1)', {"a": 1, "b": 6}),
        ("[[1, 2], [3]]|map:($$|map:$$ * 10)", [[10, 20], [30]]),
        ('1700000000000|format_timestamp:"Y-m-d H:i":"UTC"', "2023-11-14 22:13"),
        ('"2024-01-01T00:00:00Z"|to_timestamp', 1704067200000),
        # casts
        ('!int "42"', 42),
        ("!text 5", "5"),
        ('!array "[1,2]"', [1, 2]),
        ('!expr "1 + 2"', 3),
        ('!bool "true"', True),
        # literals
        ("[...[1, 2], 3]", [1, 2, 3]),
        ("{...$obj.a, c: 1}", {"b": 7, "c": 1}),
        ("0.1 + 0.2 > 0.3", True),
        # namespaces
        ("$env.REGION", "eu"),
        ('$env.FLAG == "true"', True),
        ("$env.MISSING", None),
        ("$input", {}),
        ("$auth", None),
        ("$var.n", 5),
        ("`$n > 1`", True),
    ],
)
def test_values(text: str, expected: Any) -> None:
    """Each expression evaluates with Xano's semantics."""
    got = ev(text)
    assert got == expected and type(got) is type(expected), (text, got)


def test_now_is_read_per_evaluation() -> None:
    """`now` is epoch ms when evaluated, never folded into a constant."""
    node = compile_expr(parse_expression("now"), Scope())
    assert not node.const
    before = time.time_ns() // 1_000_000
    value = node.fn(FakeRun({}))
    assert before <= value <= time.time_ns() // 1_000_000
    ago = ev('now|transform_timestamp:"-1 hour":"UTC"')
    assert abs((value - ago) - 3_600_000) < 5_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$obj.none_here.x", 'cannot read "x" of null'),
        ("$none.a", 'cannot read "a" of null ($none is null)'),
        ("$missing + 1", 'undefined variable "missing"'),
        ("1 / 0", "divides by zero"),
        ("$s|count", 'filter "count"'),
        ("1..5000000", "longer than"),
    ],
)
def test_run_time_errors(text: str, message: str) -> None:
    """Reading through null, undefined names, bad operands fail with ExpressionError."""
    with pytest.raises(ExpressionError) as info:
        ev(text)
    assert message in info.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$db.order.total", "only means something inside a db query"),
        ('$s like "a%"', '"like" only works inside'),
        ("$n ==? 1", "only works inside a db query"),
        ("$0.id", "anchors"),
        ("$s|to_uper", 'unknown filter "to_uper" (did you mean "to_upper"?)'),
        ('[1]|lambda_map:"return $this"', 'filter "lambda_map" cannot run here'),
        ("$s|substr", 'filter "substr" takes 1 to 2 arguments, got 0'),
        ("$$", "only means something inside a filter"),
        ("foo", '"foo" is not a value'),
        ("!expr $s", "!expr takes a text literal"),
    ],
)
def test_load_time_errors(text: str, message: str) -> None:
    """What cannot run is refused when the file loads, at the expression's position."""
    with pytest.raises(XanoCompileError) as info:
        compile_expr(parse_expression(text), Scope())
    assert message in info.value.message
    assert info.value.line == 1 and info.value.column is not None


def test_constants_fold_and_impure_filters_do_not() -> None:
    """Pure work over constants happens once at load; uuid and shuffle stay per evaluation."""
    assert compile_expr(parse_expression('("a"|to_upper) ~ (2 * 3)'), Scope()).const
    assert not compile_expr(parse_expression("|uuid"), Scope()).const
    assert not compile_expr(parse_expression("[1, 2]|shuffle"), Scope()).const


def test_fields_keep_literal_shapes_and_references() -> None:
    """Object and array literals stay dicts and lists (a step sees their keys), constants plain
    values, a literal "{{" text a Template; templates list the variables they read."""
    scope = Scope()
    field = to_field(parse_expression('{a: 1, b: $n, c: [1, $s], d: "{{ x }}"}'), scope)
    assert field["a"] == 1 and isinstance(field["c"], list) and field["c"][0] == 1
    assert field["b"].evaluate(FakeRun(VARS)) == 5
    assert field["d"].evaluate(None) == "{{ x }}"
    tpl = to_template(parse_expression("$n + ($rows|count) + ($s|strlen)"), Scope())
    assert [r.name for r in tpl.references] == ["n", "rows", "s"]
    cond = to_condition(parse_expression('$zero ~ ""'), Scope())
    assert cond.evaluate(FakeRun(VARS)) is False


def test_error_reads_like_xano() -> None:
    """$error is {code, name, message, result} over the engine's error object."""
    run = FakeRun({})
    run.error = {"type": "StepError", "message": "boom", "step": "stack[0]"}
    got = compile_expr(parse_expression("$error"), Scope()).fn(run)
    assert got["code"] == "ERROR_FATAL" and got["name"] == "StepError"
    assert got["message"] == "boom" and got["result"] is None
    run.error = {"type": "StepError", "message": "x", "code": "ERROR_CODE_NOT_FOUND", "name": "nf"}
    assert compile_expr(parse_expression("$error.code"), Scope()).fn(run) == "ERROR_CODE_NOT_FOUND"
    assert xano_error(None) is None


def test_function_input_is_its_variable() -> None:
    """In a function, `$input` reads the call's input; in a task it is empty."""
    node = compile_expr(parse_expression("$input.x"), Scope(function=True))
    assert node.fn(FakeRun({"input": {"x": 3}})) == 3
