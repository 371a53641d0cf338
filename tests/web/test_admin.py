"""The admin listener against a real scheduler and state store: auth, tasks, runs, pause."""

from __future__ import annotations

import asyncio
import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from structlog.testing import capture_logs

from daemon.web.auth import PUBLIC_ROUTES
from daemon.web.client import call
from daemon.web.server import AdminContext, AdminListenError, AdminServer
from tests.web.admin_harness import TASKS, TOKEN, Harness, harness


def _concrete(path: str) -> str:
    """A route's canonical path with every `{param}` filled in."""
    return re.sub(r"\{[^}]+\}", "hello", path)


def _routes(h: Harness) -> list[tuple[str, str]]:
    out = []
    for route in h.server.app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        out.append((route.method, route.resource.canonical))
    return out


async def test_every_route_but_the_public_ones_needs_the_token(tmp_path: Path) -> None:
    """Enumerating the router: each non-public route is 401 with no token and a wrong one."""
    async with harness(tmp_path) as h:
        routes = _routes(h)
        assert {r for r in routes if r in PUBLIC_ROUTES} == set(PUBLIC_ROUTES)
        protected = [r for r in routes if r not in PUBLIC_ROUTES]
        assert len(protected) >= 13 and ("GET", "/tasks/{name}") in protected
        for method, path in protected:
            for token in (None, "wrong-token", TOKEN + "x"):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with h.session.request(
                    method, h.url + _concrete(path), headers=headers, allow_redirects=False
                ) as resp:
                    assert resp.status == 401, (method, path, token, resp.status)
                    if path.startswith("/api") or path == "/metrics":
                        body = await resp.json()
                        assert body["status"] == 401 and "token" in body["error"]
                        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        for method, path in PUBLIC_ROUTES:
            if method == "GET":
                status, _ = await h.get(path, token=None)
                assert status == 200, path


async def test_without_a_token_only_health_answers(tmp_path: Path) -> None:
    """No token configured: /healthz and /readyz answer, the API is 403, a warning is logged."""
    with capture_logs() as logs:
        async with harness(tmp_path, token=None) as h:
            assert (await h.get("/healthz", token=None))[0] == 200
            assert (await h.get("/readyz", token=None))[0] == 200
            status, body = await h.get("/api/tasks", token="anything")
            assert status == 403 and "CRONSTACK_ADMIN_TOKEN" in body["error"]
            assert (await h.post("/api/tasks/hello/run", token=None))[0] == 403
    assert any(e["event"] == "admin_api_disabled" for e in logs)


async def test_tasks_lists_schedule_next_fires_and_pause_state(tmp_path: Path) -> None:
    """/api/tasks: name, status, cron, timezone, next fires (in the task's zone), paused."""
    async with harness(tmp_path) as h:
        status, body = await h.get("/api/tasks")
        assert status == 200
        tasks = {t["name"]: t for t in body["tasks"]}
        hello = tasks["hello"]
        assert hello["cron"] == "*/10 * * * * *" and hello["timezone"] == "Europe/Paris"
        assert hello["schedule"] == "every 10 seconds"
        assert len(hello["next"]) == 5 and hello["next"][0].endswith("+01:00")
        assert hello["paused"] is False and hello["last_run"] is None
        assert tasks["broken"]["schedule"] == "daily at 03:00"


async def test_run_now_appears_in_runs_with_its_trace(tmp_path: Path) -> None:
    """POST run → run_id; the run shows in /api/runs and /api/runs/{id} has the step trace."""
    async with harness(tmp_path) as h:
        status, body = await h.post("/api/tasks/hello/run")
        assert status == 202 and body["task"] == "hello"
        run = await h.wait_run(body["run_id"])
        assert run["status"] == "succeeded" and run["trigger"] == "manual"
        assert [s["function"] for s in run["steps"]] == ["create_variable", "math"]
        assert run["steps"][1]["output"] == "3"
        status, listing = await h.get("/api/runs?task=hello&limit=5")
        assert status == 200 and body["run_id"] in [r["run_id"] for r in listing["runs"]]
        status, failed = await h.post("/api/tasks/broken/run")
        run = await h.wait_run(failed["run_id"])
        assert run["status"] == "failed" and run["error"]["message"] == "boom"
        status, only_failed = await h.get("/api/runs?status=failed")
        assert [r["run_id"] for r in only_failed["runs"]] == [failed["run_id"]]
        status, tasks = await h.get("/api/tasks")
        await asyncio.sleep(1.1)  # the last-outcomes cache
        status, tasks = await h.get("/api/tasks")
        hello = next(t for t in tasks["tasks"] if t["name"] == "hello")
        assert hello["last_run"]["status"] == "succeeded"


async def test_pause_records_fires_missed_with_reason_paused(tmp_path: Path) -> None:
    """Paused through the API, scheduled fires are recorded missed (reason paused); resume runs."""
    async with harness(tmp_path) as h:
        status, body = await h.post("/api/tasks/hello/pause")
        assert status == 200 and body == {"task": "hello", "paused": True, "persisted": True}
        assert await h.store.paused_tasks() == {"hello"}
        await h.clock.advance(30)
        await h.store.flush()
        status, body = await h.get("/api/runs?task=hello&status=missed")
        assert status == 200 and len(body["runs"]) == 3
        assert {r["reason"] for r in body["runs"]} == {"paused"}
        status, body = await h.post("/api/tasks/hello/resume")
        assert body["paused"] is False and await h.store.paused_tasks() == set()
        await h.clock.advance(10)
        for _ in range(100):
            await h.store.flush()
            _, ran = await h.get("/api/runs?task=hello&status=succeeded")
            if ran["runs"]:
                break
            await asyncio.sleep(0.02)
        assert ran["runs"] and ran["runs"][0]["trigger"] == "schedule"


@pytest.mark.parametrize(
    ("method", "path", "status", "fragment"),
    [
        ("POST", "/api/tasks/nope/run", 404, 'unknown task "nope"'),
        ("POST", "/api/tasks/nope/pause", 404, 'unknown task "nope"'),
        ("GET", "/api/runs/0123abcd", 404, 'unknown run "0123abcd"'),
        ("GET", "/api/runs?limit=0", 400, "limit must be"),
        ("GET", "/api/runs?limit=abc", 400, "limit must be"),
        ("GET", "/api/runs?status=weird", 400, 'unknown status "weird"'),
        ("GET", "/api/runs?task=nope", 404, 'unknown task "nope"'),
        ("GET", "/api/nothing", 404, "no such route"),
        ("DELETE", "/api/tasks", 405, "not allowed"),
    ],
)
async def test_errors_are_json_with_the_right_status(
    tmp_path: Path, method: str, path: str, status: int, fragment: str
) -> None:
    """Unknown task or run → 404, bad parameters → 400, all as {"error", "status"} JSON."""
    async with harness(tmp_path) as h:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with h.session.request(method, h.url + path, headers=headers) as resp:
            body = await resp.json()
        assert resp.status == status and body["status"] == status
        assert fragment in body["error"]


async def test_readyz_reports_scheduler_and_store(tmp_path: Path) -> None:
    """/readyz is 200 while armed with a reachable store, 503 once the scheduler stops."""
    async with harness(tmp_path) as h:
        status, body = await h.get("/readyz", token=None)
        assert status == 200 and body["checks"] == {"scheduler": "armed", "state_store": "ok"}
        h.scheduler.stop_firing()
        status, body = await h.get("/readyz", token=None)
        assert status == 503 and body["checks"]["scheduler"] == "stopping"


async def test_address_in_use_is_a_clear_error(tmp_path: Path) -> None:
    """Binding a port that is taken raises AdminListenError naming the address."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        async with harness(tmp_path) as h:
            other = AdminServer(AdminContext(h.scheduler), listen=f"127.0.0.1:{port}", token="t")
            with pytest.raises(AdminListenError, match=f"127.0.0.1:{port}"):
                await other.start()
    finally:
        taken.close()


async def test_unix_socket_listener_and_remote_client(tmp_path: Path) -> None:
    """A unix socket path works; `call` (the CLI's client) triggers and pauses through it."""
    async with harness(tmp_path) as h:
        sock = str(tmp_path / "admin.sock")
        server = AdminServer(AdminContext(h.scheduler, h.store), listen=sock, token=TOKEN)
        await server.start()
        try:
            body = await call(sock, TOKEN, "POST", "/api/tasks/hello/run")
            assert len(body["run_id"]) == 32
            body = await call(sock, TOKEN, "POST", "/api/tasks/hello/pause")
            assert body["paused"] is True and "hello" in h.scheduler.paused
            with pytest.raises(Exception, match="wrong admin token"):
                await call(sock, "bad", "GET", "/api/tasks")
        finally:
            await server.close()
        assert not Path(sock).exists()


async def test_dashboard_login_cookie_and_csrf(tmp_path: Path) -> None:
    """Login sets an HttpOnly SameSite=Strict cookie; buttons need the CSRF token."""
    async with harness(tmp_path) as h:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as s:
            async with s.post(h.url + "/login", data={"token": "nope", "next": "/"}) as resp:
                assert resp.status == 401 and "wrong token" in await resp.text()
            async with s.post(
                h.url + "/login",
                data={"token": TOKEN, "next": "https://evil.example/"},
                allow_redirects=False,
            ) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/"
                cookie = resp.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            async with s.get(h.url + "/") as resp:
                page = await resp.text()
                assert resp.status == 200 and "hello" in page and "every 10 seconds" in page
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
            assert csrf is not None
            async with s.post(h.url + "/tasks/hello/pause", data={}) as resp:
                assert resp.status == 403 and "CSRF" in await resp.text()
            assert "hello" not in h.scheduler.paused
            async with s.post(
                h.url + "/tasks/hello/run", data={"csrf": csrf.group(1)}, allow_redirects=False
            ) as resp:
                assert resp.status == 303 and resp.headers["Location"].startswith("/runs/")
                run_page = resp.headers["Location"]
            async with s.get(h.url + run_page) as resp:
                assert resp.status == 200
            # The API itself takes only the header, never the cookie.
            async with s.get(h.url + "/api/tasks") as resp:
                assert resp.status == 401


def _svgs(page: str, cls: str) -> list[ET.Element]:
    """Every inline <svg class="cls ..."> of a page, parsed as XML (each must be well-formed)."""
    found = re.findall(rf'<svg class="{cls}[ "].*?</svg>(?:</svg>)?', page, re.S)
    return [ET.fromstring(svg) for svg in found]


async def test_task_page_draws_the_last_runs_and_the_next_fires(tmp_path: Path) -> None:
    """/tasks/{name}: facts, a strip and a duration chart of its runs (each linked, newest
    right, missed slots visible), and its lane of the next 24 h."""
    async with harness(tmp_path) as h:
        status, page = await h.get("/tasks/hello")
        assert status == 200 and "no runs yet" in page and "every 10 seconds" in page
        ran = [(await h.post("/api/tasks/hello/run"))[1]["run_id"] for _ in range(3)]
        for run_id in ran:
            await h.wait_run(run_id)
        await h.post("/api/tasks/hello/pause")
        await h.clock.advance(20)  # two slots, recorded missed
        await h.store.flush()
        status, page = await h.get("/tasks/hello")
        assert status == 200 and "Last 5 runs" in page
        assert "3 succeeded, 2 missed" in page and "paused" in page
        (strip,) = _svgs(page, "strip wide")
        links = [a.get("href") for a in strip.iter("a")]
        # Manual runs are slots of the (fake) trigger instant, before the two missed ones.
        assert links[:3] == [f"/runs/{r}" for r in ran] and len(links) == 5
        kinds = [u.get("href") for u in strip.iter("use")]
        assert kinds == ["#cs-ok", "#cs-ok", "#cs-ok", "#cs-ms", "#cs-ms"]
        (chart,) = _svgs(page, "dur wide")
        assert len([r for r in chart.iter("rect") if r.get("class") == "d-ok"]) == 3
        (timeline,) = _svgs(page, "tl")
        assert "hello" in "".join(timeline.itertext()) and "paused" in page
        assert 'id="cs-ok"' in page  # the glyphs the marks use are on the page
        async with h.session.get(
            h.url + "/tasks/hello", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as resp:
            assert "script-src" not in resp.headers["Content-Security-Policy"]
            assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        status, page = await h.get("/tasks/nope")
        assert status == 404 and "unknown task &quot;nope&quot;" in page


async def test_overview_has_strips_and_the_timeline(tmp_path: Path) -> None:
    """The task list links each task's page, shows its recent runs as a strip, and the page
    ends with the next 24 hours: a band for the every-10-s task, a tick for the daily one."""
    async with harness(tmp_path) as h:
        run_id = (await h.post("/api/tasks/broken/run"))[1]["run_id"]
        await h.wait_run(run_id)
        h.server.views.invalidate()
        status, page = await h.get("/")
        assert status == 200 and '<a href="/tasks/broken"><b>broken</b></a>' in page
        (strip,) = _svgs(page, "strip")
        assert strip.get("role") == "img" and "1 failed" in (strip.findtext("title") or "")
        (timeline,) = _svgs(page, "tl")
        text = "".join(timeline.itertext())
        assert "hello · about every 10 s" in text and "broken · 03:00" in text
        assert len([r for r in timeline.iter("rect") if r.get("class") == "bd"]) == 1
        assert len(list(timeline.iter("path"))) == 1


async def test_hostile_task_names_stay_text(tmp_path: Path) -> None:
    """A task named like markup: escaped on the overview and its page, reachable by its URL."""
    name = "<script>alert('x')</script> & a/b"
    tasks = [{**TASKS[1], "name": name}]
    async with harness(tmp_path, tasks=tasks) as h:
        path = "/tasks/" + quote(name, safe="")
        for url in ("/", path):
            status, page = await h.get(url)
            assert status == 200 and "<script" not in page, url
            assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; a/b" in page
        assert f'href="{path}"' in page or f'value="{path}"' in page
        (timeline,) = _svgs(page, "tl")
        assert name in "".join(timeline.itertext())


async def test_pause_from_the_task_page_returns_there(tmp_path: Path) -> None:
    """The task page's Pause button posts `next` and lands back on the task page."""
    async with harness(tmp_path) as h:
        async with h.session.post(
            h.url + "/tasks/hello/pause",
            data={"next": "/tasks/hello"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/tasks/hello"
        assert "hello" in h.scheduler.paused
        async with h.session.post(
            h.url + "/tasks/hello/resume",
            data={"next": "https://evil.example/"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/"
