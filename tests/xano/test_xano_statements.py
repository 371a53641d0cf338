"""XanoScript statements translated onto the step library and run by the real runner: variables,
math, control flow, errors, arrays, text, objects, security, utilities, functions; and the
statements refused at load time with their line."""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.config.tasks import LoadedFunction
from daemon.core.errors import ConfigError, Issue
from daemon.core.runs import RunResult
from daemon.engine.compiler import FunctionLibrary, compile_stack
from daemon.engine.runner import run_stack
from daemon.resources.bundle import Resources
from daemon.xano import nodes as x
from daemon.xano.loader import read_xs_file
from daemon.xano.parser import parse_document
from daemon.xano.statements import StackBuilder
from steps import build_registry

REGISTRY = build_registry()


def task(body: str) -> str:
    return "task t {\n  stack {\n" + body + "\n  }\n}\n"


def build(body: str) -> tuple[list[Any], list[Issue]]:
    doc = parse_document(task(body), "t.xs")
    assert isinstance(doc, x.TaskDoc)
    builder = StackBuilder()
    steps = builder.stack(doc.stack)
    return steps, [Issue("t.xs", "stack", e.message, e.line, e.column) for e in builder.errors]


async def run(
    body: str,
    *,
    functions: list[LoadedFunction] = (),
    env: dict[str, str] | None = None,  # type: ignore[assignment]
) -> RunResult:
    steps, errors = build(body)
    assert not errors, errors
    library = FunctionLibrary(functions, registry=REGISTRY)
    compiled = compile_stack(steps, registry=REGISTRY, base_path="stack", functions=library)
    assert not [i for i in library.compile_all() if i.severity == "error"], library.issues
    return await run_stack(compiled.steps, resources=Resources(env=env or {}))


async def value_of(body: str, result: str = "$r", **kw: Any) -> Any:
    done = await run(body + f"\n    return {{ value = {result} }}", **kw)
    assert done.status == "succeeded", done.error
    return done.value


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("var $r { value = 1 }\nvar.update $r { value = $r + 1 }", 2),
        (
            "var $r { value = {a: {b: 1}} }\nvar.update $r.a.c { value = 2 }",
            {"a": {"b": 1, "c": 2}},
        ),
        ("var $r { value = [1, 2] }\nvar.update $r[1] { value = 9 }", [1, 9]),
        ("var $r { value = 10 }\nmath.add $r { value = 5 }", 15),
        ("var $r { value = 10 }\nmath.sub $r { value = 15 }", -5),
        ("var $r { value = 10 }\nmath.mul $r { value = 2.5 }", 25.0),
        ("var $r { value = 7 }\nmath.div $r { value = 2 }", 3.5),
        ("var $r { value = 7 }\nmath.mod $r { value = 4 }", 3),
        ("var $r { value = 6 }\nmath.bitwise.and $r { value = 3 }", 2),
        ("var $r { value = {n: 1} }\nmath.add $r.n { value = 1 }", {"n": 2}),
        # arrays
        ("var $r { value = [1] }\narray.push $r { value = 2 }", [1, 2]),
        ("var $r { value = [1] }\narray.unshift $r { value = 0 }", [0, 1]),
        ("var $r { value = [1] }\narray.merge $r { value = [2, 3] }", [1, 2, 3]),
        ("var $a { value = [1, 2, 3] }\narray.pop $a as $r", 3),
        ("var $a { value = [1, 2, 3] }\narray.pop $a as $x\nvar $r { value = $a }", [1, 2]),
        (
            "var $a { value = [1, 2, 3] }\narray.shift $a as $x\nvar $r { value = [$x, $a] }",
            [1, [2, 3]],
        ),
        ("var $a { value = [] }\narray.pop $a as $r", None),
        ("var $a { value = [1, 5, 9] }\narray.find $a if ($this > 4) as $r", 5),
        ("var $a { value = [1, 5, 9] }\narray.find_index $a if ($this > 4) as $r", 1),
        ("var $a { value = [1, 5, 9] }\narray.find_index $a if ($this > 40) as $r", -1),
        ("var $a { value = [1, 5, 9] }\narray.has $a if ($this == 9) as $r", True),
        ("var $a { value = [1, 5, 9] }\narray.every $a if ($this > 0) as $r", True),
        ("var $a { value = [1, 5, 9] }\narray.filter $a if ($this > 1) as $r", [5, 9]),
        ("var $a { value = [1, 5, 9] }\narray.filter_count $a if ($this > 1) as $r", 2),
        ("var $a { value = [1, 5, 9] }\narray.partition ($a) if ($this > 1) as $r", [[5, 9], [1]]),
        ("var $a { value = [1, 2] }\narray.map ($a) { by = $this * 10 } as $r", [10, 20]),
        (
            'var $a { value = [{k: "x", n: 1}, {k: "y", n: 2}, {k: "x", n: 3}] }\n'
            "array.group_by ($a) { by = $this.k } as $r",
            {"x": [{"k": "x", "n": 1}, {"k": "x", "n": 3}], "y": [{"k": "y", "n": 2}]},
        ),
        ("var $a { value = [1, 2] }\narray.union ($a) { value = [2, 3] } as $r", [1, 2, 3]),
        ("var $a { value = [1, 2] }\narray.difference ($a) { value = [2, 3] } as $r", [1]),
        ("var $a { value = [1, 2] }\narray.intersection ($a) { value = [2, 3] } as $r", [2]),
        # text
        ('var $r { value = "ab" }\ntext.append $r { value = "c" }', "abc"),
        ('var $r { value = "bc" }\ntext.prepend $r { value = "a" }', "abc"),
        ('var $r { value = "  ab  " }\ntext.trim $r', "ab"),
        ('var $r { value = "xxabxx" }\ntext.trim $r { value = "x" }', "ab"),
        ('var $s { value = "Hello" }\ntext.contains $s { value = "ell" } as $r', True),
        ('var $s { value = "Hello" }\ntext.icontains $s { value = "ELL" } as $r', True),
        ('var $s { value = "Hello" }\ntext.starts_with $s { value = "He" } as $r', True),
        ('var $s { value = "Hello" }\ntext.iends_with $s { value = "LO" } as $r', True),
        # objects
        ("object.keys { value = {a: 1, b: 2} } as $r", ["a", "b"]),
        ("object.values { value = {a: 1, b: 2} } as $r", [1, 2]),
        ("object.entries { value = {a: 1} } as $r", [{"key": "a", "value": 1}]),
    ],
)
async def test_statements(body: str, expected: Any) -> None:
    """Each statement has its documented effect (§4.1, §4.3)."""
    assert await value_of(body) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(150, "high"), (50, "medium"), ("12", "medium"), (1, "low"), (None, "low")],
)
async def test_conditional_and_elseif(value: Any, expected: str) -> None:
    """The first true branch runs; elseif chains; else otherwise (PHP truthiness)."""
    body = f"""
    var $n {{ value = {"null" if value is None else repr(value).replace("'", '"')} }}
    var $r {{ value = "low" }}
    conditional {{
      if ($n >= 100) {{
        var.update $r {{ value = "high" }}
      }}
      elseif ($n >= 10) {{
        var.update $r {{ value = "medium" }}
      }}
    }}"""
    assert await value_of(body) == expected


@pytest.mark.parametrize(
    ("subject", "expected"), [("1", "one"), ("2", '"two"'), ('"x"', "none"), ("3", "three")]
)
async def test_switch(subject: str, expected: str) -> None:
    """Cases compare loosely; no fall-through; an empty case matches and does nothing."""
    body = f"""
    var $r {{ value = "none" }}
    switch ({subject}) {{
      case (1) {{
        var.update $r {{ value = "one" }}
      }} break
      case ("2") {{
        var.update $r {{ value = "\\"two\\"" }}
      }} break
      case (3) {{
        var.update $r {{ value = "three" }}
      }}
      case (4) break
    }}"""
    assert await value_of(body) == expected


async def test_loops_break_continue_and_scope() -> None:
    """foreach, for and while; break and continue; variables set inside are seen after."""
    body = """
    var $r { value = [] }
    foreach ([1, 2, 3, 4, 5]) {
      each as $item {
        conditional {
          if ($item == 2) {
            continue
          }
          elseif ($item == 4) {
            break
          }
        }
        array.push $r { value = $item }
      }
    }
    for (3) {
      each as $i {
        array.push $r { value = $i * 100 }
      }
    }
    var $n { value = 0 }
    while ($n < 3) {
      each {
        math.add $n { value = 1 }
        var $last { value = $n }
      }
    }
    array.push $r { value = $last }"""
    assert await value_of(body) == [1, 3, 0, 100, 200, 3]


@pytest.mark.parametrize(
    ("raiser", "expected"),
    [
        (
            'throw { name = "Bad" value = "it broke" }',
            {"name": "Bad", "message": "it broke", "code": "ERROR_FATAL", "result": None},
        ),
        (
            'precondition (1 > 2) { error_type = "notfound" error = "no" payload = {id: 3} }',
            {
                "name": "notfound",
                "message": "no",
                "code": "ERROR_CODE_NOT_FOUND",
                "result": {"id": 3},
            },
        ),
        (
            "precondition (false)",
            {"name": "standard", "message": "Precondition failed.", "code": "ERROR_FATAL"},
        ),
        ("var $x { value = 1 / 0 }", {"name": "ExpressionError", "code": "ERROR_FATAL"}),
    ],
)
async def test_try_catch_error_shape(raiser: str, expected: dict[str, Any]) -> None:
    """In catch, $error is {code, name, message, result}; finally always runs."""
    body = f"""
    var $seen {{ value = [] }}
    try_catch {{
      try {{
        {raiser}
        array.push $seen {{ value = "not reached" }}
      }}
      catch {{
        var $r {{ value = $error }}
      }}
      finally {{
        array.push $seen {{ value = "finally" }}
      }}
    }}"""
    got = await value_of(body, "[$r, $seen]")
    assert {k: got[0].get(k) for k in expected} == expected
    assert got[1] == ["finally"]


async def test_uncaught_throw_fails_the_run_and_return_ends_it() -> None:
    """A throw fails the run with its message; return ends it early with its value."""
    failed = await run('throw { name = "Bad" value = "no" }')
    assert failed.status == "failed" and failed.error is not None
    assert failed.error["message"] == "no" and failed.error["type"] == "Bad"
    early = await run('return { value = "early" }\nthrow { name = "X" value = "never" }')
    assert (early.status, early.value) == ("succeeded", "early")


async def test_group_and_trace_paths() -> None:
    """group runs inline; trace paths and names read like the source."""
    done = await run(
        """
    group {
      stack {
        var $a { value = 1 }
      }
    }
    foreach ([1]) {
      each as $x {
        var $b { value = $x }
      }
    }
    try_catch {
      try {
        var $c { value = 1 }
      }
    }"""
    )
    assert [(r.path, r.function) for r in done.trace] == [
        ("stack[0]", "group"),
        ("stack[0].stack[0]", "var"),
        ("stack[1]", "foreach"),
        ("stack[1].foreach.each[0]", "var"),
        ("stack[2]", "try_catch"),
        ("stack[2].try[0]", "var"),
    ]


async def test_security_statements() -> None:
    """uuid, random numbers in range, encrypt/decrypt round trip, JWS encode/decode."""
    key = "k" * 32
    aes = f'algorithm = "aes-256-cbc" key = "{key}" iv = "{"i" * 16}"'
    hs = f'key = "{key}" signature_algorithm = "HS256"'
    body = f"""
    security.create_uuid as $id
    security.random_number {{ min = 5 max = 7 }} as $n
    security.encrypt {{ data = "secret" {aes} }} as $enc
    security.decrypt {{ data = $enc {aes} }} as $dec
    security.jws_encode {{ claims = {{sub: "u1"}} {hs} }} as $jwt
    security.jws_decode {{ token = $jwt {hs} }} as $claims
    security.random_bytes {{ length = 8 }} as $bytes
    var $hash {{ value = "abc"|sha256 }}
    var $mac {{ value = "abc"|hmac_sha256:"{key}" }}"""
    got = await value_of(body, "[$id, $n, $dec, $claims.sub, $jwt, $hash, $mac]")
    assert uuid.UUID(got[0]).version == 4
    assert 5 <= got[1] <= 7
    assert got[2] == "secret" and got[3] == "u1"
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", got[4])
    assert got[5] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert len(got[6]) == 64
    assert base64.b64decode(got[4].split(".")[1] + "==")


async def test_util_env_vars_sleep_and_debug_log() -> None:
    """util.get_env reads the daemon's environment, util.get_vars the variables, util.sleep
    waits, debug.log writes a debug line with the value (and a trace entry)."""
    body = """
    var $a { value = 1 }
    util.get_env as $e
    util.get_vars as $v
    util.sleep { value = 0.01 }
    debug.log { value = {seen: $e.REGION} }"""
    with capture_logs() as logs:
        done = await run(body + "\nreturn { value = [$e.REGION, $v.a] }", env={"REGION": "eu"})
    assert done.value == ["eu", 1]
    (line,) = [e for e in logs if e["event"] == "task_log"]
    assert line["log_level"] == "debug" and line["message"] == {"seen": "eu"}
    assert [r.function for r in done.trace][-2] == "debug.log"


async def test_function_run(tmp_path: Path) -> None:
    """function.run calls a function document by its declared name with input (defaults
    filled); its response is the result; it cannot see the caller's variables."""
    (tmp_path / "f.xs").write_text(
        """function "billing/total" {
  input {
    int qty
    decimal price?=2.5
  }
  stack {
    var $sum { value = $input.qty * $input.price }
  }
  response = {sum: $sum}
}
"""
    )
    _, functions, issues = read_xs_file(tmp_path / "f.xs", "function/f.xs", "function/f.xs")
    assert not issues
    got = await value_of(
        'function.run "billing/total" { input = {qty: 4} } as $r', functions=functions
    )
    assert got == {"sum": 10.0}
    missing = await run('function.run "billing/total" as $r', functions=functions)
    assert missing.status == "failed" and missing.error["code"] == "ERROR_CODE_INPUT_ERROR"


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ('api.lambda { code = "return 1" } as $r', 3, "api.lambda cannot run here"),
        (
            'storage.create_file_resource { filename = "a" } as $f',
            3,
            "storage.create_file_resource cannot run",
        ),
        ("cloud.aws.s3.upload_file { }", 3, "cloud.aws.s3.upload_file cannot run"),
        ('ai.agent.run "x" as $a', 3, "ai.agent.run cannot run"),
        ('api.realtime_event { channel = "c" }', 3, "api.realtime_event cannot run"),
        ('var $x { value = [1]|lambda_map:"return 1" }', 3, 'filter "lambda_map" cannot run'),
        ("var $x { value = 1 }\n    break", 4, "break outside a loop"),
        ("foo.bar { }", 3, 'unknown statement "foo.bar"'),
        ('db.query t { where = $db.t.a ~ "x" } as $r', 3, "regular expression"),
        ("db.query t { join = {} } as $r", 3, "join is not supported"),
        ("var $x { value = $db.t.a }", 3, "only means something inside a db query"),
        (
            "foreach ([1]) {\n      each as $x {\n        foreach.remove\n      }\n    }",
            5,
            "foreach.remove",
        ),
    ],
)
def test_refused_at_load_with_line(body: str, line: int, message: str) -> None:
    """What cannot run is a load error at the statement's line, never skipped."""
    _, errors = build(body)
    assert errors, body
    assert message in errors[0].message, errors[0]
    assert errors[0].line == line


def test_every_error_is_reported_together() -> None:
    """Several bad statements give several errors, and the good ones still translate."""
    steps, errors = build(
        'api.lambda { code = "1" }\n    var $ok { value = 1 }\n    storage.delete_file { }'
    )
    assert [e.line for e in errors] == [3, 5]
    assert len(steps) == 1


def test_undefined_variable_is_a_warning_at_its_line() -> None:
    """A variable no earlier statement sets is a check warning with file, line and column."""
    steps, _ = build("var $a { value = $nope + 1 }")
    compiled = compile_stack(steps, registry=REGISTRY, base_path="stack")
    (warning,) = compiled.warnings
    assert warning.line == 3 and warning.column is not None
    assert 'undefined variable "nope"' in warning.message


def test_unknown_table_names_the_line(tmp_path: Path) -> None:
    """Step problems found by the engine compiler (here: no data source) carry the line."""
    steps, _ = build('db.get user { field_name = "id" field_value = 1 } as $u')
    with pytest.raises(ConfigError) as info:
        from daemon.engine.compiler import StackCompiler

        comp = StackCompiler(
            registry=REGISTRY,
            file="t.xs",
            configured_datasources=["a", "b"],
            default_datasource=None,
        )
        comp.compile_list(steps, "stack")
        raise ConfigError(comp.issues)
    assert info.value.issues[0].line == 3


REFUSED = (
    "cannot run here",
    "not supported",
    "joins are not supported",
    "expected a plain variable",
)


def test_every_reference_statement_translates_or_is_refused() -> None:
    """Each statement of the parser's reference table (XANOSCRIPT.md §2-§4 snippets) becomes
    steps the engine compiles, or is refused at load with a reason; none is skipped."""
    from daemon.engine.compiler import StackCompiler
    from tests.xano.test_xano_parser import STATEMENTS

    outcomes: dict[str, int] = {"ran": 0, "refused": 0}
    for source, _ in STATEMENTS:
        text = task("    foreach ([1]) {\n      each as $item {\n" + source + "\n      }\n    }")
        doc = parse_document(text, "t.xs")
        assert isinstance(doc, x.TaskDoc)
        builder = StackBuilder()
        steps = builder.stack(doc.stack)
        if builder.errors:
            assert any(r in builder.errors[0].message for r in REFUSED), (source, builder.errors)
            outcomes["refused"] += 1
            continue
        comp = StackCompiler(
            registry=REGISTRY,
            file="t.xs",
            configured_datasources=["live"],
            default_datasource="live",
        )
        comp.compile_list(steps, "stack")
        errors = [i for i in comp.issues if i.severity == "error"]
        # Functions are not loaded here: only their names are unknown.
        assert all("unknown function" in i.message for i in errors), (source, errors)
        disabled = source.startswith("!")  # a disabled statement is left out, on purpose
        assert len(steps) == 1 and bool(steps[0]["steps"]) != disabled, source
        outcomes["ran"] += 1
    assert outcomes["ran"] > 4 * outcomes["refused"], outcomes
