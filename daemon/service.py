"""`cronstack run`: the process around the scheduler — signals, reload, shutdown, sd_notify."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import orjson
import structlog

from daemon.bootstrap import Loaded, close_resources, load, policies_from_config, store_from_config
from daemon.core import collector
from daemon.core.aio import BackgroundTasks
from daemon.core.durations import parse_duration
from daemon.core.errors import ConfigError, Issue
from daemon.core.runs import LogRecorder
from daemon.ops import logs
from daemon.ops.sdnotify import Notifier
from daemon.resources.bundle import Resources
from daemon.scheduling.clock import SystemClock
from daemon.scheduling.scheduler import Scheduler
from daemon.sidecars import Sidecars
from daemon.state.store import StateStore
from daemon.web.server import AdminListenError

log = structlog.get_logger("cronstack.service")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
# A running daemon notices `cronstack pause` / `resume` within this many seconds.
PAUSE_POLL = 2.0


def _resource_config(loaded: Loaded) -> bytes:
    """What the Resources object was built from: when equal, the open pools can be kept."""
    spec = loaded.config.spec
    return msgspec.json.encode([spec.datasources, spec.cache, spec.http])


def _stderr(level: str, event: str, message: str, **fields: Any) -> None:
    """A start failure on stderr too (the terminal, systemd's status): one JSON object per line
    like everything else `run` prints, the whole text in `message`."""
    line = {"ts": _now_iso(), "level": level, "event": event, "message": message, **fields}
    sys.stderr.write(orjson.dumps(line, default=str).decode() + "\n")
    sys.stderr.flush()


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _print_errors(issues: list[Issue]) -> None:
    for issue in issues:
        label = "warning" if issue.severity == "warning" else "error"
        where = {k: v for k, v in issue.as_json().items() if k != "message"}
        _stderr(label, f"config_{label}", str(issue), **where)


class Service:
    """One daemon process: owns the loaded config, the scheduler and the resources."""

    def __init__(self, config_path: Path, env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.env = dict(os.environ if env is None else env)
        self.notifier = Notifier(self.env)
        self.loaded: Loaded | None = None
        self.resources: Resources | None = None
        self.scheduler: Scheduler | None = None
        self.store: StateStore | None = None
        self.ops: Sidecars | None = None  # metrics, admin listener, dead-man, log shipping
        self._wake = asyncio.Event()
        self._reload_requested = False
        self._stop_signals = 0
        self._force = asyncio.Event()
        self._background = BackgroundTasks()
        self._retired: list[Resources] = []
        self.reloads = 0

    # --- signals: flags only; the control loop acts ---------------------------------------------

    def _on_hup(self) -> None:
        self._reload_requested = True
        self._wake.set()

    def _on_stop(self) -> None:
        self._stop_signals += 1
        if self._stop_signals > 1:
            self._force.set()
        self._wake.set()

    def _status(self) -> str:
        s = self.scheduler
        if s is None:
            return "starting"
        return f"{s.active_count} active tasks of {s.task_count}, {s.running_count} running"

    # --- start ----------------------------------------------------------------------------------

    async def _load(self) -> tuple[Loaded | None, list[Issue]]:
        try:
            loaded = await load(self.config_path, self.env)
        except ConfigError as exc:
            return None, exc.issues
        if loaded.errors:
            await close_resources(loaded.resources)
            return None, loaded.issues
        return loaded, loaded.issues

    def _configure_logs(self, loaded: Loaded) -> None:
        spec = loaded.config.spec.log
        file = str(loaded.config.resolve(spec.file)) if spec.file else None
        ship = self.ops.ship_processor if self.ops is not None else None
        logs.configure(level=spec.level, fmt=spec.format, file=file, ship=ship)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_loop_exception)
        loaded, issues = await self._load()
        if loaded is None:
            errors = [i for i in issues if i.severity == "error"]
            _print_errors(issues)
            log.error("config_invalid", errors=[str(i) for i in errors], path=str(self.config_path))
            return EXIT_INVALID
        self.ops = ops = Sidecars(loaded.config.spec, self.env)
        self._configure_logs(loaded)
        for warning in loaded.warnings:
            log.warning("config_warning", message=str(warning))
        self.loaded = loaded
        self.resources = loaded.resources
        daemon_spec = loaded.config.spec.daemon
        self.shutdown_timeout = parse_duration(daemon_spec.shutdown_timeout)
        self.store = store = store_from_config(loaded.config)
        clock = SystemClock(float(self.env.get("CRONSTACK_CLOCK_OFFSET") or 0.0))
        paused: set[str] = set()
        last_slots: dict[str, int] = {}
        if store is not None:
            # Fire on the state store's clock: every replica agrees on when a slot is due.
            store.clock.local_time = clock.local_time
            store.clock.on_offset = clock.set_correction
            try:
                await store.open(exclusive=True)
                paused = await store.paused_tasks()
                last_slots = await store.last_slots()
            except Exception as exc:  # StoreLockedError, unreachable, migration failed
                message = str(exc)
                _stderr("error", "state_store_unavailable", f"state store: {message}")
                log.error("state_store_unavailable", error=message)
                await store.close(timeout=0)
                await close_resources(loaded.resources)
                return EXIT_FAILED
            store.start()
            store.log_outcome = logs.log_outcome
        collector.tune_for_daemon()
        self.scheduler = Scheduler(
            loaded.tasks,
            loaded.resources,
            clock=clock,
            recorder=store or LogRecorder(logs.log_outcome),
            claims=store,
            resume_from=last_slots,
            max_concurrent_runs=daemon_spec.max_concurrent_runs,
            log_fires=loaded.config.spec.log.level == "debug",
            freeze_gc=True,  # this process is the daemon: loaded tasks leave the cyclic GC
        )
        self.scheduler.paused = paused
        try:
            await ops.start(self.scheduler, store, lambda: self.resources)
        except AdminListenError as exc:
            # Never a silent run without the listener: the operator asked for it.
            _stderr("error", "admin_listen_failed", str(exc.strerror))
            log.error("admin_listen_failed", error=exc.strerror, listen=exc.listen)
            await ops.close()
            if store is not None:
                await store.close(timeout=0)
            await close_resources(loaded.resources)
            return EXIT_FAILED
        if store is not None:
            self._background.spawn(self._poll_paused(store, self.scheduler), "poll-paused")
        serve = self._background.spawn(self.scheduler.serve(), "scheduler")
        for sig, handler in (
            (signal.SIGHUP, self._on_hup),
            (signal.SIGTERM, self._on_stop),
            (signal.SIGINT, self._on_stop),
        ):
            loop.add_signal_handler(sig, handler)
        try:
            await self.scheduler.armed.wait()
            log.info(
                "started",
                tasks=self.scheduler.task_count,
                active=self.scheduler.active_count,
                config=str(self.config_path),
                pid=os.getpid(),
                loop=type(loop).__module__,
            )
            self.notifier.ready(self._status())
            if self.notifier.watchdog_interval:
                self._background.spawn(self._watchdog(self.notifier.watchdog_interval), "watchdog")
            await self._control()
            return await self._shutdown(serve)
        finally:
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            self.notifier.close()

    async def _poll_paused(self, store: StateStore, scheduler: Scheduler) -> None:
        """Pick up `cronstack pause` / `resume` (another process wrote them to the store)."""
        while True:
            await asyncio.sleep(PAUSE_POLL)
            try:
                paused = await store.paused_tasks()
            except Exception as exc:
                log.warning("pause_poll_failed", error=str(exc))
                continue
            if paused != scheduler.paused:
                log.info(
                    "paused_tasks_changed",
                    paused=sorted(paused - scheduler.paused),
                    resumed=sorted(scheduler.paused - paused),
                )
                scheduler.paused = paused

    async def _watchdog(self, interval: float) -> None:
        # Sent from the event loop itself: a loop blocked for longer misses it, as it should.
        last = ""
        while True:
            self.notifier.watchdog()
            status = self._status()
            if status != last:
                self.notifier.status(status)
                last = status
            await asyncio.sleep(interval)

    async def _control(self) -> None:
        """Act on signals one at a time; a burst of SIGHUPs coalesces into consecutive reloads
        of whatever the files say by then, ending in one consistent state."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._stop_signals:
                return
            if self._reload_requested:
                self._reload_requested = False
                ok = await self.reload()
                if self.ops is not None:
                    self.ops.observe_reload(ok)

    # --- reload ---------------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Load, validate and compile everything; swap only if all of it is valid."""
        assert self.scheduler is not None and self.loaded is not None
        assert self.resources is not None
        self.notifier.reloading()
        logs.reopen()
        self.reloads += 1
        try:
            new, issues = await self._load()
        except Exception as exc:  # an unexpected loader failure must not kill a running daemon
            log.exception("reload_failed")
            new, issues = None, [Issue(str(self.config_path), "", f"reload failed: {exc}")]
        if new is None:
            errors = [str(i) for i in issues if i.severity == "error"]
            log.error("reload_rejected", errors=errors, kept_tasks=self.scheduler.task_count)
            self.notifier.ready(self._status())
            return False
        old_shipper = None
        if self.ops is not None:
            try:
                # First, as the one step of a reload that can still fail: a new admin address
                # that cannot be bound rejects the reload (the old listener keeps serving).
                await self.ops.reconfigure_admin(new.config.spec)
            except AdminListenError as exc:
                await close_resources(new.resources)
                log.error(
                    "reload_rejected", errors=[exc.strerror], kept_tasks=self.scheduler.task_count
                )
                self.notifier.ready(self._status())
                return False
            old_shipper = self.ops.replace_shipper(new.config.spec)
        self._configure_logs(new)
        if old_shipper is not None:
            # The logs point at the new shipper now: the old one flushes what it holds.
            self._background.spawn(old_shipper.close(), "close-log-shipper")
        self.scheduler.log_fires = new.config.spec.log.level == "debug"
        for warning in new.warnings:
            log.warning("config_warning", message=str(warning))
        old_resources = self.resources
        if _resource_config(new) == _resource_config(self.loaded):
            # Same pools and sessions: keep the open ones (tasks only need the Resources object
            # at run time); the just-opened duplicates go.
            await close_resources(new.resources)
            resources = old_resources
        else:
            resources = new.resources
        plan = await self.scheduler.update(new.tasks, resources)
        if self.store is not None:
            self.store.configure(policies_from_config(new.config))
        self.loaded = new
        self.resources = resources
        daemon_spec = new.config.spec.daemon
        self.shutdown_timeout = parse_duration(daemon_spec.shutdown_timeout)
        if resources is not old_resources:
            if self.ops is not None:
                self.ops.instrument(resources)
            self._retired.append(old_resources)
            self._background.spawn(self._retire(old_resources), "retire-resources")
        log.info(
            "reload",
            added=plan.added,
            changed=plan.changed,
            removed=plan.removed,
            unchanged=plan.unchanged,
            tasks=self.scheduler.task_count,
            resources="reopened" if resources is not old_resources else "kept",
        )
        self.notifier.ready(self._status())
        return True

    async def _retire(self, resources: Resources) -> None:
        """Close replaced resources once the runs that started with them have finished."""
        assert self.scheduler is not None
        await self.scheduler.wait_released(resources)
        if resources in self._retired:
            self._retired.remove(resources)
            await close_resources(resources)

    # --- shutdown -------------------------------------------------------------------------------

    async def _shutdown(self, serve: asyncio.Task[Any]) -> int:
        assert self.scheduler is not None
        scheduler = self.scheduler
        self.notifier.stopping(self._status())
        in_flight = scheduler.running_count
        deadline = time.monotonic() + self.shutdown_timeout
        log.info("shutdown_started", running=in_flight, timeout_s=self.shutdown_timeout)
        scheduler.stop_firing()
        await serve
        # A second SIGTERM/SIGINT during the drain stops at once.
        drained = await _first(scheduler.drain(self.shutdown_timeout), self._force.wait())
        cancelled = 0
        if not drained:
            cancelled = await scheduler.cancel_all("shutdown")
        await self._background.cancel()
        if self.ops is not None:
            await self.ops.stop_listener()
        if self.store is not None:
            # Final states reach the store before exit — bounded: a dead store must not hang
            # us; what it does not take is spooled to disk for the next start.
            await self.store.close(timeout=max(5.0, deadline - time.monotonic()))
        # Reverse order of opening: the newest resources first, then those kept from the start.
        closing = [*(r for r in self._retired if r is not self.resources)]
        if self.resources is not None:
            closing.insert(0, self.resources)
        for resources in closing:
            await close_resources(resources)
        log.info(
            "shutdown",
            finished=in_flight - cancelled,
            cancelled=cancelled,
            forced=self._force.is_set(),
        )
        if self.ops is not None:
            await self.ops.close()  # last: ships the final log lines
        return EXIT_OK


async def _first(drain: Coroutine[Any, Any, bool], *others: Coroutine[Any, Any, Any]) -> bool:
    """Run `drain` until it or any of `others` finishes; True only if the drain completed."""
    drain_task = asyncio.ensure_future(drain)
    rest = [asyncio.ensure_future(o) for o in others]
    try:
        await asyncio.wait([drain_task, *rest], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in [drain_task, *rest]:
            if not t.done():
                t.cancel()
        await asyncio.gather(drain_task, *rest, return_exceptions=True)
    return drain_task.done() and not drain_task.cancelled() and drain_task.result() is True


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Keep stdout JSON-only: route asyncio's own complaints through structlog. A connection
    # reset under a transport is expected (one line); anything else keeps its traceback.
    exc = context.get("exception")
    where = context.get("task") or context.get("future") or context.get("handle")
    fields = {"message": context.get("message"), "where": repr(where)[:200] if where else None}
    if exc is not None and logs.is_expected(exc):
        log.warning("loop_exception", **fields, error=logs.error_summary(exc))
    else:
        log.error("loop_exception", **fields, exc_info=exc)


def _thread_exception(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread is not None else None
    log.error("thread_exception", thread=name, exc_info=args.exc_value)


def _unraisable(args: Any) -> None:
    # "Exception ignored in ...": a __del__ or a finalizer failing; Python prints it raw.
    log.warning(
        "unraisable_exception",
        message=args.err_msg or "Exception ignored in",
        object=repr(args.object)[:200],
        exc_info=args.exc_value,
    )


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    if os.environ.get("CRONSTACK_LOOP", "") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(args: argparse.Namespace) -> int:
    """Entry point of `cronstack run`: JSON logs on stdout, exit 0 after a clean shutdown."""
    from daemon.config.settings import resolve_config_path

    logs.configure(level="info", fmt="json")
    threading.excepthook = _thread_exception
    sys.unraisablehook = _unraisable
    path = resolve_config_path(getattr(args, "config", None), os.environ)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(Service(path).run())
    except Exception as exc:  # a bug: still one JSON line (with the traceback) and exit 1
        log.critical("crashed", exc_info=exc)
        _stderr("critical", "crashed", logs.error_summary(exc))
        return EXIT_FAILED
    finally:
        logs.flush()  # lines of the loop's last turn
