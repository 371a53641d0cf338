"""What makes the daemon operable: metrics, admin listener, dead-man switch, log shipping."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from daemon.core.aio import BackgroundTasks
from daemon.core.durations import parse_duration
from daemon.ops.deadman import HEARTBEAT_INTERVAL, DeadMansSwitch, Heartbeat
from daemon.ops.logship import LogShipper
from daemon.ops.metrics import Metrics, ObservingRecorder
from daemon.web.server import AdminContext, AdminServer

if TYPE_CHECKING:
    from daemon.config.settings import ConfigSpec
    from daemon.resources.bundle import Resources
    from daemon.resources.db.base import DataSource
    from daemon.scheduling.scheduler import Scheduler
    from daemon.state.store import StateStore

log = structlog.get_logger("cronstack.operations")


class Sidecars:
    """Owns the operational side of one daemon process; the service calls it at a few points:
    `start` (after the scheduler is built, before it fires: a listener that cannot bind stops
    the start), `instrument` (new resources), `observe_reload`, `stop_listener` and `close`."""

    def __init__(self, spec: ConfigSpec, env: Mapping[str, str]) -> None:
        self.spec = spec
        self.env = env
        self.metrics = Metrics()
        self.admin: AdminServer | None = None
        self.deadman: DeadMansSwitch | None = None
        self.heartbeat: Heartbeat | None = None
        self.shipper: LogShipper | None = None
        self._tasks = BackgroundTasks("operations_task_failed")
        self._resources: Callable[[], Resources | None] = lambda: None
        self._admin_ctx: AdminContext | None = None
        self.shipper = _shipper(spec)
        self._ship_spec = spec.log.ship  # what the running shipper was built from
        if self.shipper is not None:
            self.metrics.shipper_stats = self.shipper.stats

    @property
    def ship_processor(self) -> Callable[[Any, str, dict[str, Any]], dict[str, Any]] | None:
        return self.shipper.processor if self.shipper is not None else None

    async def start(
        self,
        scheduler: Scheduler,
        store: StateStore | None,
        resources: Callable[[], Resources | None],
    ) -> None:
        """Hook into the scheduler and start everything; raises AdminListenError."""
        self._resources = resources
        if self.shipper is not None:
            self.shipper.start()
        metrics = self.metrics
        metrics.running = lambda: scheduler.running_count
        metrics.datasources = lambda: self._datasources(store)
        current = resources()
        if current is not None:
            metrics.instrument(current)
        last_success: dict[str, int] = {}
        watched = [t.name for t in scheduler.tasks() if t.expect_success_within]
        if store is not None and watched:
            try:
                last_success = await store.queries.last_success(watched)
            except Exception as exc:
                log.warning("deadman_history_unavailable", error=str(exc))
        self.deadman = DeadMansSwitch(
            scheduler.tasks, resources, scheduler.clock, last_success=last_success, metrics=metrics
        )
        scheduler.recorder = ObservingRecorder(scheduler.recorder, [metrics, self.deadman])
        self._admin_ctx = AdminContext(scheduler, store, metrics, self.spec.daemon.timezone)
        admin = self.spec.admin
        if admin.listen:
            server = AdminServer(
                self._admin_ctx, listen=admin.listen, token=self.env.get(admin.token_env) or None
            )
            await server.start()  # AdminListenError stops the daemon's start
            self.admin = server
        self._tasks.spawn(self.deadman.serve(), "deadman")
        self._tasks.spawn(metrics.watch_loop(), "loop-lag")
        url = self.spec.daemon.heartbeat_url
        if url:
            interval = getattr(self.spec.daemon, "heartbeat_interval", None)
            self.heartbeat = Heartbeat(
                url,
                scheduler.clock,
                interval=parse_duration(interval) if interval else HEARTBEAT_INTERVAL,
                healthy=lambda: scheduler.armed.is_set() and not scheduler.stopping,
                metrics=metrics,
            )
            self._tasks.spawn(self.heartbeat.serve(), "heartbeat")

    def _datasources(self, store: StateStore | None) -> Iterator[tuple[str, DataSource]]:
        current = self._resources()
        if current is not None:
            yield from current.datasources.items()
        if store is not None:
            yield "(state)", store.ds

    def instrument(self, resources: Resources) -> None:
        """New resources after a reload: time their HTTP requests too."""
        self.metrics.instrument(resources)

    # --- reload: [admin] and [log.ship] change like everything else ----------------------------

    async def reconfigure_admin(self, spec: ConfigSpec) -> None:
        """Apply a reloaded `[admin]`: a new address is bound first and the old listener closed
        only then; a new token takes effect in place. Raises AdminListenError (the old listener
        keeps serving) when the new address cannot be bound."""
        ctx = self._admin_ctx
        if ctx is None:  # not started (tests that build Sidecars without start)
            self.spec = spec
            return
        ctx.default_timezone = spec.daemon.timezone
        admin = spec.admin
        token = self.env.get(admin.token_env) or None
        current = self.admin
        if current is not None and admin.listen == current.listen:
            if token != current.token:
                current.set_token(token)
                log.info("admin_token_changed", listen=current.bound, auth=token is not None)
        else:
            replacement: AdminServer | None = None
            if admin.listen:
                replacement = AdminServer(ctx, listen=admin.listen, token=token)
                await replacement.start()
            self.admin = replacement
            if current is not None:
                await current.close()
                log.info("admin_listener_closed", listen=current.bound)
        self.spec = spec

    def replace_shipper(self, spec: ConfigSpec) -> LogShipper | None:
        """Apply a reloaded `[log.ship]`: when it changed, a new shipper starts (its processor
        is `ship_processor` from now on); the old one is returned for the caller to close once
        the logs point at the new one (its queue is flushed then)."""
        if spec.log.ship == self._ship_spec:
            return None
        self._ship_spec = spec.log.ship
        old, self.shipper = self.shipper, _shipper(spec)
        if self.shipper is not None:
            self.shipper.start()
        self.metrics.shipper_stats = self.shipper.stats if self.shipper is not None else None
        self.spec = spec
        return old

    def observe_reload(self, ok: bool) -> None:
        self.metrics.observe_reload(ok)

    async def stop_listener(self) -> None:
        """Close the admin listener (after the drain: /readyz says "stopping" meanwhile)."""
        admin, self.admin = self.admin, None
        if admin is not None:
            await admin.close()

    async def close(self) -> None:
        """Stop background work; the log shipper goes last so the final lines are shipped."""
        await self._tasks.cancel()
        await self.stop_listener()
        if self.heartbeat is not None:
            await self.heartbeat.close()
        if self.shipper is not None:
            with contextlib.suppress(Exception):
                await self.shipper.close()


def _shipper(spec: ConfigSpec) -> LogShipper | None:
    ship = spec.log.ship
    if ship is None:
        return None
    return LogShipper(
        ship.url,
        batch_size=ship.batch_size,
        flush_interval=parse_duration(ship.flush_interval),
        queue_size=ship.queue_size,
        fmt=getattr(ship, "format", "ndjson"),
    )


__all__ = ["Sidecars"]
