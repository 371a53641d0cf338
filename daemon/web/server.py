"""The admin listener: health, metrics, the JSON API and the dashboard, with token auth."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import re
import stat
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import orjson
import structlog
from aiohttp import web

from daemon.core.errors import TaskLookupError
from daemon.core.listen import ListenAddress
from daemon.core.runs import RUN_STATUSES
from daemon.core.secrets import mask_value
from daemon.core.text import name_problem, shown
from daemon.ops.metrics import CONTENT_TYPE
from daemon.state.queries import RunQueries, run_json
from daemon.web import dashboard
from daemon.web.auth import PUBLIC_ROUTES, SESSION_COOKIE, Sessions, safe_next
from daemon.web.upcoming import UpcomingFires
from daemon.web.views import TaskViews

if TYPE_CHECKING:
    from daemon.engine.compiler import CompiledTask
    from daemon.ops.metrics import Metrics
    from daemon.scheduling.scheduler import Scheduler
    from daemon.state.store import StateStore

log = structlog.get_logger("cronstack.admin")

MAX_LIMIT = 1000
READY_TIMEOUT = 2.0
TASK_PAGE_RUNS = 50
# Run ids are 32 hex digits (daemon/core/runs.py); older or foreign ones stay within this. Every
# identifier from a request is checked before it reaches a query: malformed is 400, a
# well-formed one that matches nothing 404 (PostgreSQL would refuse a NUL with an error).
_RUN_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_LIMIT = re.compile(r"[0-9]{1,7}")


class AdminListenError(OSError):
    """The admin listener could not bind its address (in use, permission, bad socket path)."""

    def __init__(self, listen: str, cause: OSError) -> None:
        self.listen = listen
        super().__init__(
            cause.errno,
            f"admin listener cannot listen on {listen}: {cause.strerror or cause}"
            ' (another cronstack or program uses it? change [admin] listen, or set it to ""'
            " to disable the listener)",
        )


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, default=str), status=status, content_type="application/json"
    )


def json_error(status: int, message: str, **headers: str) -> web.Response:
    """Every error of the API: `{"error": message, "status": code}`."""
    resp = _json({"error": message, "status": status}, status)
    resp.headers.update(headers)
    return resp


@dataclass(slots=True)
class AdminContext:
    """What the listener shows and acts on."""

    scheduler: Scheduler
    store: StateStore | None = None
    metrics: Metrics | None = None
    default_timezone: str = "UTC"
    # Invalidates caches elsewhere after a pause/resume (the service's poller, for instance).
    on_change: Callable[[], None] | None = None


class AdminServer:
    """The aiohttp application and its listener, in the daemon's own event loop."""

    def __init__(
        self,
        ctx: AdminContext,
        *,
        listen: str = "127.0.0.1:8765",
        token: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.listen = listen
        self.address = ListenAddress.parse(listen)
        self.token = token or None
        self.sessions = Sessions(token) if token else None
        self.queries = ctx.store.queries if ctx.store is not None else None
        self.views = TaskViews(ctx.scheduler, self.queries)
        self.upcoming = UpcomingFires(ctx.scheduler)
        # /api/tasks as bytes: (static key, running count), valid until the earliest next fire.
        self._body: tuple[tuple[Any, ...], float, bytes] | None = None
        # Runs triggered here that may not have reached the store yet: their page says "queued".
        self._queued: dict[str, str] = {}
        self._runner: web.AppRunner | None = None
        self.bound: str = ""  # the actual address once started (port 0 picks one)
        self.app = self._build()

    # --- app ------------------------------------------------------------------------------------

    def _build(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024)
        r = app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/readyz", self.readyz)
        r.add_get("/metrics", self.metrics)
        r.add_get("/api/tasks", self.api_tasks)
        r.add_post("/api/tasks/{name}/run", self.api_run)
        r.add_post("/api/tasks/{name}/pause", self.api_pause)
        r.add_post("/api/tasks/{name}/resume", self.api_resume)
        r.add_get("/api/runs", self.api_runs)
        r.add_get("/api/runs/{run_id}", self.api_run_detail)
        r.add_get("/", self.page_tasks)
        r.add_get("/runs", self.page_runs)
        r.add_get("/runs/{run_id}", self.page_run)
        r.add_get("/tasks/{name}", self.page_task)
        r.add_get("/login", self.page_login)
        r.add_post("/login", self.login)
        r.add_post("/logout", self.logout)
        r.add_post("/tasks/{name}/{action}", self.task_action)
        return app

    async def start(self) -> None:
        """Bind and serve; raises AdminListenError when the address cannot be bound."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site: web.BaseSite
        try:
            if self.address.path is not None:
                path = Path(self.address.path)
                # A stale socket file is only removed when nothing answers on it.
                if await _socket_alive(str(path)):
                    raise OSError(98, "Address already in use")
                _remove_stale_socket(path)
                site = web.UnixSite(runner, str(path))
                await site.start()
                with contextlib.suppress(OSError):
                    os.chmod(path, 0o660)
                self.bound = f"unix:{path}"
            else:
                site = web.TCPSite(runner, self.address.host, self.address.port, reuse_address=True)
                await site.start()
                server = getattr(site, "_server", None)
                sockets = getattr(server, "sockets", None) or []
                port = sockets[0].getsockname()[1] if sockets else self.address.port
                host = f"[{self.address.host}]" if ":" in self.address.host else self.address.host
                self.bound = f"{host}:{port}"
        except OSError as exc:
            await runner.cleanup()
            raise AdminListenError(self.listen, exc) from exc
        self._runner = runner
        if self.token is None:
            log.warning(
                "admin_api_disabled",
                reason="no admin token: only /healthz and /readyz answer",
                listen=self.bound,
            )
        log.info("admin_listening", listen=self.bound, auth=self.token is not None)

    def set_token(self, token: str | None) -> None:
        """A new admin token (a reload): old sessions and the old token stop working at once."""
        self.token = token or None
        self.sessions = Sessions(token) if token else None

    @property
    def base_url(self) -> str:
        if self.address.path is not None:
            return "http://localhost"
        return f"http://{self.bound}"

    async def close(self) -> None:
        await self.views.close()
        await self.upcoming.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self.address.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.address.path)

    # --- auth -----------------------------------------------------------------------------------

    def _bearer_ok(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given or self.token is None:
            return False
        return hmac.compare_digest(given.strip().encode(), self.token.encode())

    def _session(self, request: web.Request) -> str | None:
        if self.sessions is None:
            return None
        return self.sessions.nonce(request.cookies.get(SESSION_COOKIE))

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        info = request.match_info
        route = info.route.resource.canonical if info.route.resource is not None else "unmatched"
        api = request.path.startswith("/api/") or request.path == "/metrics"
        status = 500
        try:
            if (request.method, route) not in PUBLIC_ROUTES and info.http_exception is None:
                denied = self._deny(request, api)
                if denied is None and request.method == "POST" and not self._bearer_ok(request):
                    # Every cookie-authenticated POST (a dashboard button) must echo the CSRF
                    # token of its session; checked here so that no new route can forget it.
                    denied = await self._check_csrf(request)
                if denied is not None:
                    status = denied.status
                    return denied
            resp = await handler(request)
            status = resp.status
            return resp
        except web.HTTPException as exc:
            status = exc.status
            if exc.status < 400:
                raise  # redirects
            if api:
                return json_error(exc.status, _reason(exc, request))
            return dashboard.error_response(exc.status, _reason(exc, request))
        except Exception:
            log.exception("admin_request_failed", method=request.method, path=request.path)
            if api:
                return json_error(500, "internal error (see the daemon's log)")
            return dashboard.error_response(500, "internal error (see the daemon's log)")
        finally:
            if self.ctx.metrics is not None:
                self.ctx.metrics.admin.labels(request.method, route, str(status)).observe(
                    time.perf_counter() - started
                )

    def _deny(self, request: web.Request, api: bool) -> web.Response | None:
        """None when the request may proceed; else the 401/403 answer."""
        if self.token is None:
            message = (
                "the admin API is disabled: no token is configured (set the environment"
                " variable named by [admin] token_env, default CRONSTACK_ADMIN_TOKEN)"
            )
            if api:
                return json_error(403, message)
            return dashboard.error_response(403, message)
        if self._bearer_ok(request):
            return None
        if not api and self._session(request) is not None:
            return None
        if api:
            given = "Authorization" in request.headers
            message = (
                "wrong admin token" if given else "missing admin token: send Authorization: Bearer"
            )
            return json_error(401, message, **{"WWW-Authenticate": 'Bearer realm="cronstack"'})
        return dashboard.login_response(next_path=request.path_qs, status=401)

    async def _check_csrf(self, request: web.Request) -> web.Response | None:
        """A cookie session's POST must carry its CSRF token (header callers cannot be forged
        cross-site, and SameSite=Strict is the second line)."""
        nonce = self._session(request)
        form = await request.post()
        given = str(form.get("csrf", ""))
        assert self.sessions is not None
        if nonce is None or not hmac.compare_digest(given, self.sessions.csrf(nonce)):
            return dashboard.error_response(
                403, "the form expired or did not come from this dashboard (CSRF check failed)"
            )
        return None

    def _csrf_for(self, request: web.Request) -> str:
        nonce = self._session(request)
        if nonce is None or self.sessions is None:
            return ""
        return self.sessions.csrf(nonce)

    # --- health and metrics ---------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        """Ready when the scheduler is armed (not stopping) and the state store answers."""
        scheduler = self.ctx.scheduler
        checks: dict[str, Any] = {
            "scheduler": "armed"
            if scheduler.armed.is_set() and not scheduler.stopping
            else ("stopping" if scheduler.stopping else "starting")
        }
        ok = checks["scheduler"] == "armed"
        if self.queries is not None:
            try:
                async with asyncio.timeout(READY_TIMEOUT):
                    await self.queries.ping()
                checks["state_store"] = "ok"
            except Exception as exc:
                checks["state_store"] = f"unreachable: {mask_value(str(exc))}"
                ok = False
        else:
            checks["state_store"] = "none configured"
        return _json({"ready": ok, "checks": checks}, 200 if ok else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        if self.ctx.metrics is None:
            return json_error(404, "metrics are not enabled")
        resp = web.Response(body=self.ctx.metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp

    # --- tasks ----------------------------------------------------------------------------------

    def _task(self, name: str) -> CompiledTask:
        problem = name_problem(name)
        if problem is not None:
            raise web.HTTPBadRequest(reason=f"malformed task name {shown(name)}: {problem}")
        for task in self.ctx.scheduler.tasks():
            if task.name == name:
                return task
        raise web.HTTPNotFound(reason=f"unknown task {shown(name)}")

    async def api_tasks(self, request: web.Request) -> web.Response:
        # Served from bytes while nothing it shows changed: a poller at 200 req/s costs the
        # loop a lookup, not 100 views serialized per request.
        now_ts = self.ctx.scheduler.clock.now().timestamp()
        static = self.views.static_views(await self.views.recent_runs())
        key = (static.key, self.ctx.scheduler.running_count)
        cached = self._body
        if cached is None or cached[0] != key or now_ts >= cached[1]:
            _key, until, views = await self.views.views_now()
            body = orjson.dumps({"tasks": views, "running": key[1]}, default=str)
            cached = self._body = (key, until, body)
        return web.Response(body=cached[2], content_type="application/json")

    def _trigger(self, name: str) -> str:
        self._task(name)
        try:
            run_id = self.ctx.scheduler.trigger(name)
        except TaskLookupError:
            raise web.HTTPNotFound(reason=f"unknown task {shown(name)}") from None
        except RuntimeError as exc:
            raise web.HTTPServiceUnavailable(reason=str(exc)) from None
        self.views.invalidate()
        self._queued[run_id] = name
        while len(self._queued) > 1000:
            self._queued.pop(next(iter(self._queued)))
        log.info("admin_run_now", task=name, run_id=run_id)
        return run_id

    async def api_run(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        run_id = self._trigger(name)
        return _json({"task": name, "run_id": run_id, "status": "queued"}, 202)

    async def _set_paused(self, name: str, paused: bool) -> bool:
        """Pause or resume; returns whether it was persisted (a state store exists)."""
        self._task(name)
        persisted = False
        if self.ctx.store is not None:
            await self.ctx.store.set_paused(name, paused)
            persisted = True
        scheduler = self.ctx.scheduler
        # A new set, not an in-place change: the service's poller compares by value.
        scheduler.paused = (scheduler.paused | {name}) if paused else (scheduler.paused - {name})
        self.views.invalidate()
        if self.ctx.on_change is not None:
            self.ctx.on_change()
        log.info("admin_paused" if paused else "admin_resumed", task=name)
        return persisted

    async def api_pause(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        persisted = await self._set_paused(name, True)
        return _json({"task": name, "paused": True, "persisted": persisted})

    async def api_resume(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        persisted = await self._set_paused(name, False)
        return _json({"task": name, "paused": False, "persisted": persisted})

    # --- runs -----------------------------------------------------------------------------------

    def _tz(self, task: str) -> ZoneInfo:
        for t in self.ctx.scheduler.tasks():
            if t.name == task:
                return t.tz
        return ZoneInfo(self.ctx.default_timezone)

    def _run_filters(self, query: Mapping[str, str]) -> tuple[str | None, str | None, int]:
        task = query.get("task") or None
        status = query.get("status") or None
        raw_limit = query.get("limit") or "50"
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        if not _LIMIT.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise web.HTTPBadRequest(
                reason=f"limit must be a whole number from 1 to {MAX_LIMIT}, got {shown(raw_limit)}"
            )
        if status is not None and status not in RUN_STATUSES:
            known = ", ".join(sorted(RUN_STATUSES))
            raise web.HTTPBadRequest(reason=f"unknown status {shown(status)} (one of: {known})")
        if task is not None:
            self._task(task)
        return task, status, int(raw_limit)

    def _queries(self) -> RunQueries:
        if self.queries is None:
            raise web.HTTPNotFound(reason="no run history: no state data source is configured")
        return self.queries

    async def runs(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        task, status, limit = self._run_filters(query)
        rows = await self._queries().runs(task, status, limit)
        return [run_json(r, self._tz(r["task"])) for r in rows]

    async def run_detail(self, run_id: str) -> dict[str, Any]:
        if not _RUN_ID.fullmatch(run_id):
            raise web.HTTPBadRequest(
                reason=f"malformed run id {shown(run_id)}: expected up to 64 letters, digits,"
                ' "-" or "_"'
            )
        row = await self._queries().run(run_id)
        if row is None:
            raise web.HTTPNotFound(reason=f"unknown run {shown(run_id)}")
        out = run_json(row, self._tz(row["task"]))
        out["steps"] = mask_value(row["trace"]) if row["trace"] is not None else None
        return out

    async def api_runs(self, request: web.Request) -> web.Response:
        return _json({"runs": await self.runs(request.query)})

    async def api_run_detail(self, request: web.Request) -> web.Response:
        return _json(await self.run_detail(request.match_info["run_id"]))

    # --- dashboard ------------------------------------------------------------------------------

    async def page_tasks(self, request: web.Request) -> web.Response:
        views = await self.views.task_views()
        now, lanes = await self.upcoming.lanes()
        return dashboard.tasks_response(
            views,
            csrf=self._csrf_for(request),
            running=self.ctx.scheduler.running_count,
            flash=request.query.get("flash", ""),
            lanes=lanes,
            now=now,
            tz=ZoneInfo(self.ctx.default_timezone),
        )

    async def page_task(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        task = self._task(name)
        view = next((v for v in await self.views.task_views() if v["name"] == name), None)
        if view is None:  # reloaded between the two looks
            raise web.HTTPNotFound(reason=f'unknown task "{name}"')
        runs: list[dict[str, Any]] = []
        if self.queries is not None:
            rows = (await self.queries.recent([name], TASK_PAGE_RUNS)).get(name, [])
            runs = [run_json(r, task.tz) for r in rows]
        now, lanes = await self.upcoming.lanes([name])
        return dashboard.task_response(
            view,
            runs,
            csrf=self._csrf_for(request),
            lane=lanes[0] if lanes else None,
            now=now,
            tz=task.tz,
        )

    async def page_runs(self, request: web.Request) -> web.Response:
        runs = await self.runs(request.query)
        names = sorted(t.name for t in self.ctx.scheduler.tasks())
        return dashboard.runs_response(runs, dict(request.query), names, sorted(RUN_STATUSES))

    async def page_run(self, request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        try:
            run = await self.run_detail(run_id)
        except web.HTTPNotFound:
            task = self._queued.get(run_id)
            if task is None:
                raise
            run = {"run_id": run_id, "task": task, "status": "queued", "trigger": "manual",
                   "attempt": 1, "scheduled_at": None, "started_at": None, "finished_at": None,
                   "duration_ms": None, "error": None, "reason": None, "steps": None}  # fmt: skip
        return dashboard.run_response(run)

    async def page_login(self, request: web.Request) -> web.Response:
        status = 200 if self.token else 403
        return dashboard.login_response(
            next_path=safe_next(request.query.get("next", "/")),
            status=status,
            error="" if self.token else "the dashboard is disabled: no admin token is configured",
        )

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        next_path = safe_next(str(form.get("next", "/")))
        given = str(form.get("token", ""))
        if self.token is None or self.sessions is None:
            return dashboard.error_response(403, "the dashboard is disabled: no admin token")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            log.warning("admin_login_failed", remote=request.remote)
            # A little friction for guessing; the token itself should be long and random.
            await asyncio.sleep(0.25)
            return dashboard.login_response(next_path=next_path, status=401, error="wrong token")
        resp = web.HTTPSeeOther(next_path)
        resp.set_cookie(
            SESSION_COOKIE,
            self.sessions.issue(),
            max_age=int(self.sessions.ttl),
            httponly=True,
            samesite="Strict",
            path="/",
            secure=request.secure,
        )
        raise resp

    async def logout(self, request: web.Request) -> web.Response:
        resp = web.HTTPSeeOther("/login")
        resp.del_cookie(SESSION_COOKIE, path="/")
        raise resp

    async def task_action(self, request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        if action not in ("run", "pause", "resume"):
            raise web.HTTPNotFound(reason=f"unknown action {shown(action)}")
        if action == "run":
            run_id = self._trigger(name)
            raise web.HTTPSeeOther(f"/runs/{quote(run_id)}")
        await self._set_paused(name, action == "pause")
        # A button on the task's own page leads back there; the overview says what happened.
        back = (await request.post()).get("next")
        if isinstance(back, str) and back:
            raise web.HTTPSeeOther(safe_next(back))
        done = "paused" if action == "pause" else "resumed"
        raise web.HTTPSeeOther(f"/?flash={quote(f'{name}: {done}')}")


def _reason(exc: web.HTTPException, request: web.Request) -> str:
    if exc.status == 404 and exc.reason == "Not Found":
        return f"no such route: {request.method} {request.path}"
    if exc.status == 405:
        return f"method {request.method} not allowed on {request.path}"
    return exc.reason


def _remove_stale_socket(path: Path) -> None:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


async def _socket_alive(path: str) -> bool:
    try:
        _reader, writer = await asyncio.open_unix_connection(path)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


__all__ = [
    "AdminContext",
    "AdminListenError",
    "AdminServer",
]
