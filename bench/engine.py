"""Engine benchmarks with their budgets, measured in one run (run by hand).

    .venv/bin/python bench/engine.py [--reps 200] [--rows 10000] [--db-repeat 3] [--no-db]

(1) In-memory step dispatch: a 1,000-step stack of Create Variable / Math / Conditional, compiled
    with daemon.engine.compiler.compile_stack and run with daemon.engine.runner.run_stack
    (trace included).
    Budget: <= 5 us per step. Context: the same 1,000 assignments as a plain dict loop.
(2) Compiled expression eval of `orders.length * 2 + offset`. Budget: <= 1 us.
    Context: the same computation as a Python lambda over a dict.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from daemon.engine.compiler import compile_stack
from daemon.engine.context import Resources, RunContext, TaskInfo
from daemon.engine.runner import run_stack
from daemon.expr.language import compile_expression
from steps import build_registry

STEPS = 1_000
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
