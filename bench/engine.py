"""Engine benchmarks with their budgets, measured in one run (run by hand).

    .venv/bin/python bench/engine.py [--reps 200] [--rows 10000] [--db-repeat 3] [--no-db]

(1) In-memory step dispatch: a 1,000-step stack of Create Variable / Math / Conditional, compiled
    with daemon.engine.compiler.compile_stack and run with daemon.engine.runner.run_stack
    (trace included).
    Budget: <= 5 us per step. Context: the same 1,000 assignments as a plain dict loop.
(2) Compiled expression eval of `orders.length * 2 + offset`. Budget: <= 1 us.
    Context: the same computation as a Python lambda over a dict.
(4) XanoScript: a `foreach` with filters over 1,000 items (parsed, translated, compiled) against
    the same stack written in JSON with `{{ }}` filter pipes. Budget: <= 1.2x the JSON stack.
(3) The PostgreSQL benchmarks of bench/engine_db.py (Query + Loop(Add, Delete) <= 1.3x asyncpg,
    Bulk Add Records <= 1.2x copy_records_to_table), unless --no-db.

Figures are best-of: the minimum is the run least disturbed by the rest of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# The repository first (the `daemon` package), then this folder (engine_db).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daemon.engine.compiler import compile_stack
from daemon.engine.context import RunContext, TaskInfo
from daemon.engine.runner import run_stack
from daemon.expr.parser import compile_expression
from daemon.resources.bundle import Resources
from steps import build_registry

STEPS = 1_000
XANO_ITEMS = 1_000
XANO_BUDGET_RATIO = 1.2
DISPATCH_BUDGET_US = 5.0
EXPR_BUDGET_US = 1.0
EXPRESSION = "orders.length * 2 + offset"


def dispatch_stack(n: int = STEPS) -> list[dict[str, Any]]:
    """n steps cycling Create Variable, Math and Conditional over two variables."""
    stack: list[dict[str, Any]] = [{"function": "Create Variable", "name": "counter", "value": 0}]
    while len(stack) < n:
        match len(stack) % 3:
            case 1:
                stack.append(
                    {
                        "function": "Math",
                        "operation": "add",
                        "value": "{{ counter }}",
                        "operand": 2,
                        "return_variable": "m",
                    }
                )
            case 2:
                stack.append(
                    {"function": "Conditional", "condition": "{{ m > 10 }}", "true_steps": []}
                )
            case _:
                stack.append(
                    {"function": "Create Variable", "name": "counter", "value": "{{ m + 1 }}"}
                )
    return stack


def baseline_dispatch(n: int = STEPS) -> float:
    """The same n assignments and comparisons as a plain dict loop, in seconds."""
    start = time.perf_counter()
    scope: dict[str, Any] = {"counter": 0}
    for i in range(1, n):
        match i % 3:
            case 1:
                scope["m"] = scope["counter"] + 2
            case 2:
                if scope["m"] > 10:
                    pass
            case _:
                scope["counter"] = scope["m"] + 1
    return time.perf_counter() - start


async def measure_dispatch(reps: int) -> tuple[float, float]:
    """Best seconds per run of the compiled stack, and of the bare loop."""
    resources = Resources()
    steps = compile_stack(dispatch_stack(), registry=build_registry()).steps
    best = float("inf")
    result = None
    for _ in range(reps):
        start = time.perf_counter()
        result = await run_stack(steps, resources=resources, task_name="bench")
        best = min(best, time.perf_counter() - start)
    assert result is not None and result.status == "succeeded", result and result.error
    assert len(result.trace) == STEPS
    base = min(baseline_dispatch() for _ in range(reps))
    return best, base


def measure_expression(loops: int, repeat: int) -> tuple[float, float, Any]:
    """Best seconds per evaluation of the compiled expression and of a Python lambda."""
    evaluate = compile_expression(EXPRESSION).evaluate
    ctx = RunContext(
        task=TaskInfo(name="bench", run_id="r", slot_id="s", scheduled_at=0),
        resources=Resources(),
        tz=ZoneInfo("UTC"),
    )
    orders = [{"id": i, "total": i * 1.5} for i in range(50)]
    ctx.scope.update(orders=orders, offset=7)
    value = evaluate(ctx)
    assert value == 107, value
    scope = {"orders": orders, "offset": 7}

    def plain(v: dict[str, Any]) -> Any:
        return len(v["orders"]) * 2 + v["offset"]

    def best(fn: Any, arg: Any) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(loops):
                fn(arg)
            times.append((time.perf_counter() - start) / loops)
        return min(times)

    return best(evaluate, ctx), best(plain, scope), value


XANO_TASK = """task bench {
  stack {
    var $total { value = 0 }
    var $big { value = 0 }
    foreach ($items) {
      each as $item {
        var $name { value = $item.name|trim|to_upper }
        var $tags { value = $item.tags|filter:$$ != "x"|join:"," }
        math.add $total { value = $item.price * $item.qty }
        conditional {
          if ($item.qty > 5) {
            math.add $big { value = 1 }
          }
        }
      }
    }
  }
}
"""
XANO_AS_JSON: list[dict[str, Any]] = [
    {"function": "Create Variable", "name": "total", "value": 0},
    {"function": "Create Variable", "name": "big", "value": 0},
    {
        "function": "Loop",
        "input_array": "{{ items }}",
        "loop_item_variable": "item",
        "steps": [
            {
                "function": "Create Variable",
                "name": "name",
                "value": "{{ item.name|trim|to_upper }}",
            },
            {
                "function": "Create Variable",
                "name": "tags",
                "value": "{{ item.tags|filter:$$ != 'x'|join:',' }}",
            },
            {
                "function": "Update Variable",
                "name": "total",
                "value": "{{ total + item.price * item.qty }}",
            },
            {
                "function": "Conditional",
                "condition": "{{ item.qty > 5 }}",
                "true_steps": [
                    {"function": "Update Variable", "name": "big", "value": "{{ big + 1 }}"}
                ],
            },
        ],
    },
]


async def measure_xano(reps: int) -> tuple[float, float]:
    """Best seconds per run of the XanoScript stack and of the JSON one, on the same items."""
    from daemon.xano import nodes as x
    from daemon.xano.parser import parse_document
    from daemon.xano.statements import StackBuilder

    registry = build_registry()
    doc = parse_document(XANO_TASK, "bench.xs")
    assert isinstance(doc, x.TaskDoc)
    builder = StackBuilder()
    translated = builder.stack(doc.stack)
    assert not builder.errors, builder.errors
    stacks = {
        "xs": compile_stack(translated, registry=registry, base_path="stack", defined=["items"]),
        "json": compile_stack(XANO_AS_JSON, registry=registry, defined=["items"]),
    }
    items = [
        {"name": f"  item {i} ", "price": 1.5 + i % 7, "qty": i % 10, "tags": ["a", "x", str(i)]}
        for i in range(XANO_ITEMS)
    ]
    best = {"xs": float("inf"), "json": float("inf")}
    results: dict[str, Any] = {}
    for _ in range(reps):
        for name, compiled in stacks.items():
            ctx = RunContext(
                task=TaskInfo(name="bench", run_id="r", slot_id="s", scheduled_at=0),
                resources=Resources(),
                tz=ZoneInfo("UTC"),
            )
            ctx.scope["items"] = items
            start = time.perf_counter()
            await ctx.run_steps(compiled.steps)
            best[name] = min(best[name], time.perf_counter() - start)
            results[name] = (ctx.scope["total"], ctx.scope["big"], ctx.scope["tags"])
    assert results["xs"] == results["json"], results
    return best["xs"], best["json"]


def line(label: str, value_us: float, budget_us: float, base_us: float) -> bool:
    ok = value_us <= budget_us
    print(
        f"{label:<38} {value_us:8.3f} us  budget <= {budget_us:.1f} us "
        f"({value_us / budget_us:5.2f} of budget)  {'OK' if ok else 'OVER BUDGET'}  "
        f"| bare Python {base_us:.3f} us, engine/bare {value_us / base_us:5.1f}x"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="runs of the 1,000-step stack")
    parser.add_argument("--rows", type=int, default=10_000, help="rows for the db benchmarks")
    parser.add_argument("--db-repeat", type=int, default=3)
    parser.add_argument("--no-db", action="store_true", help="skip the PostgreSQL benchmarks")
    args = parser.parse_args()

    print(f"Python {sys.version.split()[0]}, best of {args.reps} runs / 5 x 200,000 evaluations")
    run_s, base_s = asyncio.run(measure_dispatch(args.reps))
    ok = line(
        f"(1) step dispatch, {STEPS}-step stack",
        run_s / STEPS * 1e6,
        DISPATCH_BUDGET_US,
        base_s / STEPS * 1e6,
    )
    print(f"    whole stack: {run_s * 1000:.2f} ms per run (bare loop {base_s * 1000:.3f} ms)")
    expr_s, plain_s, _ = measure_expression(200_000, 5)
    ok &= line(f"(2) eval `{EXPRESSION}`", expr_s * 1e6, EXPR_BUDGET_US, plain_s * 1e6)

    xs_s, json_s = asyncio.run(measure_xano(max(args.reps // 4, 10)))
    ratio = xs_s / json_s
    xano_ok = ratio <= XANO_BUDGET_RATIO
    ok &= xano_ok
    print(
        f"{f'(4) XanoScript foreach, {XANO_ITEMS} items':<38} {xs_s * 1000:8.3f} ms  "
        f"JSON {json_s * 1000:.3f} ms  ratio {ratio:.2f} budget <= {XANO_BUDGET_RATIO}x  "
        f"{'OK' if xano_ok else 'OVER BUDGET'}"
    )

    if args.no_db:
        print("(3) db benchmarks skipped (--no-db): run bench/engine_db.py")
    else:
        import engine_db

        print("(3) database steps, via bench/engine_db.py:")
        try:
            ok &= asyncio.run(engine_db.main(args.rows, args.db_repeat)) == 0
        except OSError as exc:
            print(f"    PostgreSQL unavailable ({exc}); db benchmarks: run bench/engine_db.py")
    print("all within budget" if ok else "SOME FIGURES OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
