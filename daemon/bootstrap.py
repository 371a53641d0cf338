"""Loads a whole configuration: parse, open resources, compile every task — all issues together."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from daemon.config.settings import Config, display_path, read_config
from daemon.config.tasks import LoadedFunction, LoadedTask, TaskReader
from daemon.core.collector import gc_paused
from daemon.core.durations import parse_duration
from daemon.core.errors import ConfigError, Issue
from daemon.core.secrets import SECRETS
from daemon.engine.compiler import CompiledTask, compile_tasks
from daemon.resources.bundle import Resources
from daemon.resources.cache import Cache, create_cache
from daemon.resources.db import create_datasource
from daemon.resources.db.base import DataSource
from daemon.resources.http.client import HttpClient
from daemon.state.spool import spool_dir
from daemon.state.store import StateStore, TaskPolicy, open_state_datasource
from steps import build_registry


@dataclass(slots=True)
class Loaded:
    """A compiled configuration and the resources its tasks run against."""

    config: Config
    tasks: list[CompiledTask]
    issues: list[Issue]
    resources: Resources
    unreachable: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    def task(self, name: str) -> CompiledTask | None:
        return next((t for t in self.tasks if t.name == name), None)


def task_readers() -> dict[str, TaskReader]:
    """The task file formats beyond JSON and TOML, by suffix: XanoScript (`daemon.xano`)."""
    return {".xs": _read_xs_file}


def _read_xs_file(
    path: Path, display: str, file: str
) -> tuple[list[LoadedTask], list[LoadedFunction], list[Issue]]:
    # The XanoScript front-end is imported with the first `.xs` file: a daemon of JSON and
    # TOML tasks starts ~0.1 s sooner and ~3 MB smaller without it.
    from daemon.xano.loader import read_xs_file

    return read_xs_file(path, display, file)


def _datasource_for(config: Config, name: str) -> DataSource:
    spec = config.spec.datasources[name]
    timeout = parse_duration(spec.statement_timeout) if spec.statement_timeout else None
    return create_datasource(
        name,
        spec.url,
        base_dir=config.base_dir,
        min_size=spec.min_size,
        max_size=spec.max_size,
        statement_timeout=timeout,
        init_sql=[config.base_dir / p for p in spec.init_sql],
    )


async def open_datasources(
    config: Config,
) -> tuple[dict[str, DataSource], dict[str, str], list[Issue]]:
    """Open every configured data source; unreachable ones are reported, not fatal."""
    opened: dict[str, DataSource] = {}
    unreachable: dict[str, str] = {}
    issues: list[Issue] = []
    for name in config.spec.datasources:
        ds: DataSource | None = None
        try:
            ds = _datasource_for(config, name)
            await ds.open()
        except Exception as exc:
            if ds is not None:
                with contextlib.suppress(Exception):
                    await ds.close()
            unreachable[name] = str(exc)
            issues.append(
                Issue(
                    display_path(config.path),
                    f"datasources.{name}",
                    f"data source unreachable: {exc} (its tables and columns were not checked)",
                )
            )
            continue
        opened[name] = ds
    return opened, unreachable, issues


async def check_state_store(config: Config, unreachable: Mapping[str, str]) -> list[Issue]:
    """Open the state store as `run` would (connect, migrate): a store that cannot be used is a
    `check` error like an unreachable data source, not a surprise at start. An unreachable
    state data source is already reported by `open_datasources`."""
    from daemon.core.secrets import mask_value

    name = config.state_source
    if name is None or name in unreachable or name not in config.spec.datasources:
        return []
    try:
        store = store_from_config(config)
    except ValueError:
        return []  # a malformed store setting (duration), reported by the loader already
    if store is None:
        return []
    try:
        await store.open()
    except Exception as exc:
        return [
            Issue(
                display_path(config.path),
                f"datasources.{name}",
                f"state store not usable: {mask_value(str(exc))} (`run` would not start)",
            )
        ]
    finally:
        await store.close(timeout=0)
    return []


def default_datasource(config: Config) -> str | None:
    names = list(config.spec.datasources)
    return config.spec.daemon.default_data_source or (names[0] if len(names) == 1 else None)


def make_http(config: Config) -> HttpClient:
    http = config.spec.http
    return HttpClient(
        timeout=parse_duration(http.timeout),
        connect_timeout=parse_duration(http.connect_timeout),
        max_connections=http.max_connections,
        max_connections_per_host=http.max_connections_per_host,
        user_agent=http.user_agent,
        max_response_bytes=http.max_response_bytes,
        proxy=http.proxy,
        block_private_networks=http.block_private_networks,
        allow_hosts=http.allow_hosts,
        follow_redirects=http.follow_redirects,
    )


# The `{{env.NAME}}` references config.toml may hold (substituted by daemon.config).
_ENV_REF = re.compile(r"\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def register_config_secrets(config: Config, env: Mapping[str, str]) -> None:
    """Track the config's secret values: URL passwords (data sources, cache, proxy), the
    admin token, and every env value the config file substitutes."""
    spec = config.spec
    for ds in spec.datasources.values():
        SECRETS.add_url(ds.url)
    SECRETS.add_url(spec.cache.url)
    if spec.http.proxy:
        SECRETS.add_url(spec.http.proxy)
    SECRETS.add(env.get(spec.admin.token_env))
    try:
        text = config.path.read_text(encoding="utf-8")
    except OSError:
        return
    for name in _ENV_REF.findall(text):
        SECRETS.add_env_value(env.get(name))


def make_cache(config: Config) -> Cache:
    c = config.spec.cache
    return create_cache(
        c.url, prefix=c.prefix, max_entries=c.max_entries, max_connections=c.max_connections
    )


async def load(path: str | Path, env: Mapping[str, str] | None = None) -> Loaded:
    """Load, open and compile. Raises ConfigError only when config.toml cannot be read or
    parsed; every other problem (config settings, task files, data sources, compiling) is
    returned in `Loaded.issues`, tasks with errors left out, so all are reported together."""
    env = dict(os.environ if env is None else env)
    with gc_paused():  # loading builds only objects that live on (100,000 tasks: 1 s of GC)
        config, load_errors = read_config(path, env, readers=task_readers())
    register_config_secrets(config, env)
    try:
        http, cache = make_http(config), make_cache(config)
    except ValueError:
        if not load_errors:
            raise
        http, cache = None, None  # their settings are among load_errors; nothing will run
    datasources, unreachable, issues = await open_datasources(config)
    email = config.spec.email
    resources = Resources(
        datasources=datasources,
        default_datasource=default_datasource(config),
        http=http,
        cache=cache,
        env=env,
        endpoints={
            f"email.{p}": getattr(email, p)
            for p in email.__struct_fields__
            if getattr(email, p) is not None
        },
    )
    with gc_paused():
        tasks, task_issues = compile_tasks(
            config.tasks,
            registry=build_registry(),
            default_timezone=config.spec.daemon.timezone,
            datasources=datasources,
            configured_datasources=list(config.spec.datasources),
            default_datasource=resources.default_datasource,
            functions=config.functions,
        )
    # The loader and the compiler both look at schedules and durations: report each once.
    issues = list(dict.fromkeys([*load_errors, *config.warnings, *issues, *task_issues]))
    return Loaded(config, tasks, issues, resources, unreachable)


async def close_resources(resources: Resources) -> None:
    """Close in reverse order of opening: cache, HTTP, then data sources."""
    if resources.cache is not None:
        with contextlib.suppress(Exception):
            await resources.cache.close()
    if resources.http is not None:
        with contextlib.suppress(Exception):
            await resources.http.close()
    for ds in reversed(list(resources.datasources.values())):
        with contextlib.suppress(Exception):
            await ds.close()


__all__ = ["ConfigError", "Loaded", "close_resources", "load"]


def policies_from_config(config: Config) -> dict[str, TaskPolicy]:
    """Each configured task's history settings: its own, else the `[daemon]` defaults."""
    daemon = config.spec.daemon
    retention = parse_duration(daemon.history_retention)
    policies = {}
    for loaded in config.tasks:
        spec = loaded.spec
        policies[loaded.name] = TaskPolicy(
            request_history=spec.request_history,
            retention=(
                parse_duration(spec.history_retention)
                if spec.history_retention is not None
                else retention
            ),
            max_runs=spec.history_max_runs or daemon.history_max_runs,
        )
    return policies


def store_from_config(config: Config) -> StateStore | None:
    """The (unopened) state store of a configuration, or None without a state data source."""
    name = config.state_source
    if name is None or name not in config.spec.datasources:
        return None
    daemon = config.spec.daemon
    ds = open_state_datasource(config.spec.datasources[name].url, base_dir=config.base_dir)
    store = StateStore(
        ds,
        instance=daemon.instance,
        lease_timeout=parse_duration(daemon.lease_timeout),
        retention=parse_duration(daemon.history_retention),
        max_runs=daemon.history_max_runs,
        spool_dir=spool_dir(os.environ, getattr(ds, "path", None), config.base_dir),
    )
    store.configure(policies_from_config(config))
    return store
