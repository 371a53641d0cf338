"""External API Request from a Loop vs raw aiohttp, same server, same limits, same run.

    .venv/bin/python bench/http_requests.py [--requests 1000] [--concurrency 50] [--repeat 5]

A Loop (concurrency 50) of External API Request steps — templated URL encoding, guard with
`allow_hosts`, retry policy, JSON parsing, secret tracking, step trace — against a plain
aiohttp loop doing the same GETs through one session with the same connector limit and a
semaphore of the same size, reading and parsing each JSON body. The server is another
process, so it does not share the client's core. Best of `--repeat` runs each, alternating
engine and baseline so drift hits both. Budget: engine <= 1.3x baseline.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder is sys.path[0], where "http.py" would shadow the standard
# library's http package: put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import aiohttp  # noqa: E402
import orjson  # noqa: E402

from daemon.engine.compiler import compile_stack  # noqa: E402
from daemon.engine.runner import run_stack  # noqa: E402
from daemon.resources.bundle import Resources  # noqa: E402
from daemon.resources.http.client import HttpClient  # noqa: E402
from steps import build_registry  # noqa: E402

BUDGET = 1.3
MAX_CONNECTIONS = 100


def serve(port: int) -> None:
    """The loopback API: a small JSON document per item."""
    from aiohttp import web

    async def item(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"], "ok": True, "total": 12.5})

    app = web.Application()
    app.router.add_get("/items/{id}", item)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def wait_for_port(port: int) -> None:
    for _ in range(500):
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            await w.wait_closed()
            return
        except OSError:
            await asyncio.sleep(0.01)
    raise RuntimeError("bench server did not start")


async def engine(port: int, n: int, concurrency: int, client: HttpClient) -> float:
    stack = [
        {"function": "Create Variable", "name": "ids", "value": list(range(n))},
        {
            "function": "Loop",
            "input_array": "{{ids}}",
            "loop_item_variable": "id",
            "concurrency": concurrency,
            "steps": [
                {
                    "function": "External API Request",
                    "url": f"http://127.0.0.1:{port}/items/{{{{id}}}}",
                    "headers": {"Authorization": "Bearer bench-token-123"},
                    "return_variable": "r",
                }
            ],
        },
    ]
    steps = compile_stack(stack, registry=build_registry()).steps
    start = time.perf_counter()
    result = await run_stack(steps, resources=Resources(http=client))
    elapsed = time.perf_counter() - start
    assert result.status == "succeeded", result.error
    assert len(result.trace) == n + 2
    return elapsed


async def baseline(port: int, n: int, concurrency: int, session: aiohttp.ClientSession) -> float:
    sem = asyncio.Semaphore(concurrency)
    headers = {"Authorization": "Bearer bench-token-123"}

    async def one(i: int) -> None:
        async with sem:
            async with session.get(f"http://127.0.0.1:{port}/items/{i}", headers=headers) as resp:
                body = orjson.loads(await resp.read())
                assert resp.status == 200 and body["ok"]

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for i in range(n):
            tg.create_task(one(i))
    return time.perf_counter() - start


async def main(args: argparse.Namespace) -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])  # noqa: ASYNC220
    try:
        await wait_for_port(port)
        client = HttpClient(allow_hosts=["127.0.0.1"], max_connections=MAX_CONNECTIONS)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
            headers={"User-Agent": "bench"},
        )
        try:
            # Warm both pools (connections, DNS cache) before measuring.
            await engine(port, 100, args.concurrency, client)
            await baseline(port, 100, args.concurrency, session)
            ours: list[float] = []
            raw: list[float] = []
            for _ in range(args.repeat):
                ours.append(await engine(port, args.requests, args.concurrency, client))
                raw.append(await baseline(port, args.requests, args.concurrency, session))
        finally:
            await client.close()
            await session.close()
    finally:
        server.terminate()
        server.wait(10)
    best_ours, best_raw = min(ours), min(raw)
    ratio = best_ours / best_raw
    n = args.requests
    print(f"{n} requests, concurrency {args.concurrency}, connector limit {MAX_CONNECTIONS}")
    print(
        f"  External API Request in a Loop: best {best_ours * 1000:8.1f} ms "
        f"({n / best_ours:7.0f} req/s)  runs: {', '.join(f'{t * 1000:.0f}' for t in ours)}"
    )
    print(
        f"  raw aiohttp:                    best {best_raw * 1000:8.1f} ms "
        f"({n / best_raw:7.0f} req/s)  runs: {', '.join(f'{t * 1000:.0f}' for t in raw)}"
    )
    verdict = "within" if ratio <= BUDGET else "OVER"
    print(f"  ratio {ratio:.2f}x (budget <= {BUDGET}x): {verdict} budget")
    return 0 if ratio <= BUDGET else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.serve:
        serve(ns.serve)
        sys.exit(0)
    sys.exit(asyncio.run(main(ns)))
