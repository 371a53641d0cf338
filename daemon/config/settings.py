"""config.toml: typed sections, `{{env.NAME}}` substitution, task globs, full validation."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from daemon.config.convert import (
    check_duration,
    check_timezone,
    convert_struct,
    nesting_problem,
)
from daemon.config.tasks import (
    Duration,
    LoadedFunction,
    LoadedTask,
    TaskReader,
    load_function_file,
    load_task_file,
    parse_toml,
    place_issues,
    task_from_value,
)
from daemon.core.durations import MAX_RETENTION
from daemon.core.errors import ConfigError, Issue, join_path
from daemon.core.listen import ListenAddress
from daemon.core.netpolicy import NetworkPolicy

CONFIG_ENV = "CRONSTACK_CONFIG"
DEFAULT_CONFIG = "config.toml"


class DaemonSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    timezone: str = "UTC"
    max_concurrent_runs: int = 64
    shutdown_timeout: Duration = "30s"
    tasks: list[str] = msgspec.field(default_factory=lambda: ["tasks/*.json", "tasks/*.toml"])
    # What Call Function / XanoScript `function.run` may call: `.xs` function documents (a
    # Xano export's function/ folder) and JSON/TOML function files.
    functions: list[str] = msgspec.field(default_factory=lambda: ["function/**/*.xs"])
    state: str | None = None
    default_data_source: str | None = None
    lease_timeout: Duration = "30s"
    instance: str | None = None
    history_retention: Duration = "30d"  # run rows older than this are pruned
    history_max_runs: int = 10_000  # per task; the oldest beyond it are pruned
    heartbeat_url: str | None = None  # pinged every heartbeat_interval (healthchecks-style)
    heartbeat_interval: Duration = "60s"


class DataSourceSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str
    min_size: int = 1
    max_size: int = 10
    statement_timeout: Duration | None = None
    init_sql: list[str] = []


class CacheSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str = "memory://"
    prefix: str = ""
    max_entries: int = 10000
    max_connections: int = 20


class HttpSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    timeout: Duration = "30s"
    connect_timeout: Duration = "10s"
    max_connections: int = 100
    max_connections_per_host: int = 0
    user_agent: str = "cronstack/0.1"
    proxy: str | None = None
    block_private_networks: bool = True
    allow_hosts: list[str] = []
    max_response_bytes: int = 10 * 1024 * 1024
    follow_redirects: bool = True


class LogShipSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str
    batch_size: int = 100
    flush_interval: Duration = "1s"
    queue_size: int = 10000
    format: Literal["ndjson", "loki", "elastic"] = "ndjson"  # body: lines, Loki push, ES _bulk


class LogSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"
    file: str = ""
    ship: LogShipSection | None = None


class EmailSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base URLs of the e-mail providers Send Email (XanoScript util.send_email) posts to: a
    regional endpoint (Mailgun EU), a relay, or a test server. Unset: the provider's own."""

    resend: str | None = None
    sendgrid: str | None = None
    postmark: str | None = None
    mailgun: str | None = None


class AdminSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    listen: str = "127.0.0.1:8765"  # "" disables the listener
    token_env: str = "CRONSTACK_ADMIN_TOKEN"  # noqa: S105 - a variable name, not a secret


class ConfigSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    daemon: DaemonSection = msgspec.field(default_factory=DaemonSection)
    datasources: dict[str, DataSourceSpec] = {}
    cache: CacheSection = msgspec.field(default_factory=CacheSection)
    http: HttpSection = msgspec.field(default_factory=HttpSection)
    log: LogSection = msgspec.field(default_factory=LogSection)
    admin: AdminSection = msgspec.field(default_factory=AdminSection)
    email: EmailSection = msgspec.field(default_factory=EmailSection)
    task: list[Any] = []  # inline [[task]] tables, validated as tasks


@dataclass(slots=True)
class Config:
    """A loaded, fully validated configuration with its tasks."""

    path: Path  # absolute
    base_dir: Path  # the config file's folder: globs, init_sql and sqlite paths are relative to it
    spec: ConfigSpec
    tasks: list[LoadedTask]
    warnings: list[Issue] = field(default_factory=list)
    functions: list[LoadedFunction] = field(default_factory=list)

    @property
    def state_source(self) -> str | None:
        """`[daemon] state`, else the only data source, else None (history kept in memory)."""
        if self.spec.daemon.state:
            return self.spec.daemon.state
        return _only(self.spec.datasources)

    @property
    def default_data_source(self) -> str | None:
        """The data source of tasks that name none: the only one configured, else the default."""
        return _only(self.spec.datasources) or self.spec.daemon.default_data_source

    def task_data_source(self, task: LoadedTask) -> str | None:
        return task.spec.data_source or self.default_data_source

    def resolve(self, relative: str) -> Path:
        """A path from the config (init_sql, sqlite file) made absolute against base_dir."""
        return (self.base_dir / relative).resolve()


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _only(datasources: Mapping[str, Any]) -> str | None:
    return next(iter(datasources)) if len(datasources) == 1 else None


def resolve_config_path(arg: str | None, env: Mapping[str, str] | None = None) -> Path:
    """`-c FILE`, then `$CRONSTACK_CONFIG`, then `./config.toml`."""
    env = os.environ if env is None else env
    if arg:
        return Path(arg)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return Path(DEFAULT_CONFIG)


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the cwd when inside it, else absolute."""
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        return str(Path(os.path.normpath(absolute)).relative_to(Path.cwd()))
    except ValueError:
        return os.path.normpath(absolute)


_ENV_REF = re.compile(r"\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def substitute_env(
    value: Any, env: Mapping[str, str], file: str, path: str, issues: list[Issue]
) -> Any:
    """Replace `{{env.NAME}}` in every string; a missing variable is an issue naming it."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                issues.append(Issue(file, path, f'environment variable "{name}" is not set'))
                return ""
            return env[name]

        return _ENV_REF.sub(replace, value)
    if isinstance(value, dict):
        return {
            k: v
            if (not path and k == "task")
            # Inline tasks keep `{{env.X}}` as a run-time template, like task files: resolving it
            # here would bake secrets into the spec and out of reach of the log redaction.
            else substitute_env(v, env, file, join_path(path, str(k)), issues)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            substitute_env(v, env, file, join_path(path, i), issues) for i, v in enumerate(value)
        ]
    return value


def _validate_spec(spec: ConfigSpec, file: str, base_dir: Path, issues: list[Issue]) -> None:
    daemon = spec.daemon
    check_timezone(daemon.timezone, file, "daemon.timezone", issues)
    check_duration(daemon.shutdown_timeout, file, "daemon.shutdown_timeout", issues)
    # Heartbeats go every third of the lease: below a second they would busy the database.
    check_duration(daemon.lease_timeout, file, "daemon.lease_timeout", issues, minimum=1.0)
    check_duration(
        daemon.history_retention, file, "daemon.history_retention", issues, maximum=MAX_RETENTION
    )
    if daemon.history_max_runs < 1:
        issues.append(Issue(file, "daemon.history_max_runs", "must be at least 1"))
    if daemon.max_concurrent_runs < 1:
        issues.append(Issue(file, "daemon.max_concurrent_runs", "must be at least 1"))
    for key in ("state", "default_data_source"):
        name = getattr(daemon, key)
        if name is not None and name not in spec.datasources:
            issues.append(Issue(file, f"daemon.{key}", _unknown_source(name, spec.datasources)))
    for name, source in spec.datasources.items():
        where = f"datasources.{name}"
        scheme = source.url.split(":", 1)[0].lower()
        if scheme not in ("sqlite", "postgresql", "postgres"):
            issues.append(
                Issue(
                    file,
                    f"{where}.url",
                    f'unsupported data source URL scheme "{scheme}"'
                    ' (use "sqlite:///file.db" or "postgresql://...")',
                )
            )
        check_duration(source.statement_timeout, file, f"{where}.statement_timeout", issues)
        if source.min_size < 0 or source.max_size < 1 or source.min_size > source.max_size:
            issues.append(
                Issue(file, f"{where}.max_size", "need 0 <= min_size <= max_size and max_size >= 1")
            )
        for i, sql in enumerate(source.init_sql):
            if not (base_dir / sql).is_file():
                issues.append(Issue(file, f"{where}.init_sql[{i}]", f'file not found: "{sql}"'))
    cache_scheme = spec.cache.url.split(":", 1)[0].lower()
    if cache_scheme not in ("memory", "redis", "rediss", "unix"):
        issues.append(
            Issue(
                file,
                "cache.url",
                f'unsupported cache URL scheme "{cache_scheme}"'
                ' (use "memory://" or "redis://host:6379/0")',
            )
        )
    elif cache_scheme != "memory":
        from redis.asyncio.connection import parse_url  # what the pool will do with it

        try:
            parse_url(spec.cache.url)
        except ValueError as exc:
            issues.append(Issue(file, "cache.url", f"invalid cache URL: {exc}"))
    for key in ("timeout", "connect_timeout"):
        check_duration(getattr(spec.http, key), file, f"http.{key}", issues)
    for key in ("max_connections", "max_response_bytes"):
        if getattr(spec.http, key) < 1:
            issues.append(Issue(file, f"http.{key}", "must be at least 1"))
    if spec.http.max_connections_per_host < 0:
        issues.append(Issue(file, "http.max_connections_per_host", "must be 0 (no limit) or more"))
    proxy = spec.http.proxy
    if proxy and not _is_http_url(proxy):
        # The value itself is not echoed: a proxy URL may carry a password.
        issues.append(Issue(file, "http.proxy", "expected an http:// or https:// URL with a host"))
    if spec.http.allow_hosts:
        for i, entry in enumerate(spec.http.allow_hosts):
            try:
                NetworkPolicy.build(True, [entry])
            except ValueError as exc:
                issues.append(Issue(file, f"http.allow_hosts[{i}]", str(exc)))
    if spec.log.ship is not None:
        check_duration(
            spec.log.ship.flush_interval, file, "log.ship.flush_interval", issues, minimum=0.01
        )
    for provider in EmailSection.__struct_fields__:
        base = getattr(spec.email, provider)
        if base is not None and not _is_http_url(base):
            issues.append(Issue(file, f"email.{provider}", "expected an http:// or https:// URL"))
    listen = spec.admin.listen
    if listen:
        try:
            ListenAddress.parse(listen)
        except ValueError:
            issues.append(
                Issue(
                    file,
                    "admin.listen",
                    f'expected "host:port", a unix socket path, or "" to disable; got "{listen}"',
                )
            )
    check_duration(
        daemon.heartbeat_interval, file, "daemon.heartbeat_interval", issues, minimum=1.0
    )
    if spec.log.ship is not None:
        if spec.log.ship.batch_size < 1 or spec.log.ship.queue_size < spec.log.ship.batch_size:
            issues.append(Issue(file, "log.ship.queue_size", "need 1 <= batch_size <= queue_size"))


def _unknown_source(name: str, datasources: Mapping[str, Any]) -> str:
    if not datasources:
        return f'unknown data source "{name}" (no [datasources] are configured)'
    known = ", ".join(f'"{n}"' for n in datasources)
    return f'unknown data source "{name}" (configured: {known})'


def _task_files(patterns: list[str], base_dir: Path) -> list[Path]:
    """Files matched by the `tasks` globs (relative to the config folder), sorted, de-duplicated."""
    found: set[Path] = set()
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) else str(base_dir / pattern)
        for match in glob.glob(full, recursive=True):
            path = Path(match)
            if path.is_file():
                found.add(path.resolve())
    return sorted(found)


def _relative_to(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def load_config(
    path: Path | str,
    env: Mapping[str, str] | None = None,
    *,
    readers: Mapping[str, TaskReader] | None = None,
) -> Config:
    """Load config.toml and every task file; raise ConfigError listing every problem found."""
    config, errors = read_config(path, env, readers=readers)
    if errors:
        raise ConfigError(errors)
    return config


def read_config(
    path: Path | str,
    env: Mapping[str, str] | None = None,
    *,
    readers: Mapping[str, TaskReader] | None = None,
) -> tuple[Config, list[Issue]]:
    """Load config.toml and every task and function file, keeping those that loaded cleanly.

    Raises ConfigError only when config.toml cannot be read or parsed. Otherwise returns the
    config (invalid settings fall back to their defaults) and every error found in it and in the
    task files, so a caller can still compile the good tasks and report every problem at once.
    `readers` read other task file formats by suffix (`{".xs": ...}`, from the composition root).
    """
    env = os.environ if env is None else env
    given = Path(path)
    file = display_path(given)
    absolute = given.resolve()
    base_dir = absolute.parent
    try:
        text = absolute.read_text(encoding="utf-8-sig")  # a byte-order mark is not content
    except FileNotFoundError:
        raise ConfigError([Issue(file, "", "config file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Issue(file, "", f"cannot read the config file: {exc}")]) from None
    raw, problem = parse_toml(text, file)
    if problem is not None:
        raise ConfigError([problem])
    deep = nesting_problem(raw)
    if deep is not None:
        raise ConfigError([Issue(file, deep[0], deep[1])])

    issues: list[Issue] = []
    raw = substitute_env(raw, env, file, "", issues)
    # strict=False: a `{{env.X}}` substitution yields a string even where a number is expected.
    # Lenient: bad keys fall back to defaults so the rest (and every task file) is still checked.
    spec, problems = convert_struct(raw, ConfigSpec, file, "", strict=False, lenient=True)
    issues.extend(problems)
    if spec is None:  # unreachable: ConfigSpec has no required field
        raise ConfigError(issues)
    _validate_spec(spec, file, base_dir, issues)

    tasks: list[LoadedTask] = []
    for index, value in enumerate(spec.task):
        base = f"task[{index}]"
        if isinstance(value, dict) and "name" not in value:
            issues.append(Issue(file, join_path(base, "name"), "an inline task needs a name"))
            continue
        task_spec, task_issues = task_from_value(value, file, base)
        issues.extend(task_issues)
        if task_spec is not None:
            tasks.append(
                LoadedTask(
                    task_spec,
                    file=given.name,
                    index=index,
                    base_path=base,
                    display=file,
                )
            )
    readers = readers or {}
    task_paths = _task_files(spec.daemon.tasks, base_dir)
    function_paths = _task_files(spec.daemon.functions, base_dir)
    read: dict[Path, tuple[list[LoadedTask], list[LoadedFunction]]] = {}
    for file_path in dict.fromkeys([*task_paths, *function_paths]):
        display, relative = display_path(file_path), _relative_to(file_path, base_dir)
        reader = readers.get(file_path.suffix.lower())
        if reader is not None:
            found, functions, file_issues = reader(file_path, display, relative)
        elif file_path in task_paths:
            found, file_issues = load_task_file(file_path, display, file=relative)
            functions = []
        else:
            functions, file_issues = load_function_file(file_path, display, file=relative)
            found = []
        read[file_path] = (found, functions)
        issues.extend(file_issues)
    functions_seen: dict[str, LoadedFunction] = {}
    for file_path, (found, functions) in read.items():
        if file_path in task_paths:
            tasks.extend(found)
        elif found:
            issues.append(_not_here(found[0].display, "task", "tasks", found[0].line))
        if file_path in function_paths:
            for function in functions:
                other = functions_seen.get(function.name)
                if other is not None:
                    issues.append(
                        Issue(
                            function.display,
                            "name",
                            f'duplicate function name "{function.name}" (also in {other.display})',
                            function.line,
                        )
                    )
                else:
                    functions_seen[function.name] = function
        elif functions:
            issues.append(
                _not_here(functions[0].display, "function", "functions", functions[0].line)
            )

    seen: dict[str, LoadedTask] = {}
    good: list[LoadedTask] = []
    for task in tasks:
        previous = seen.get(task.name)
        ok = previous is None
        if previous is not None:
            where = previous.display + (f" {previous.base_path}" if previous.base_path else "")
            issue = Issue(
                task.display,
                task.path("name"),
                f'duplicate task name "{task.name}" (also in {where})',
                task.line if task.index is not None else None,
            )
            issues.extend(place_issues([issue], task.display, task.locate))
        else:
            seen[task.name] = task
        # A task's data_source is checked by the compiler, which also knows the one-source
        # fallback for the seed's "primary_database".
        if ok:
            good.append(task)

    errors = [i for i in issues if i.severity == "error"]
    warnings = [i for i in issues if i.severity != "error"]
    config = Config(
        path=absolute,
        base_dir=base_dir,
        spec=spec,
        tasks=good,
        warnings=warnings,
        functions=list(functions_seen.values()),
    )
    return config, errors


def _not_here(file: str, kind: str, setting: str, line: int | None) -> Issue:
    """A note for a document of the other kind (a function among the task files…)."""
    return Issue(
        file,
        "",
        f"a {kind} document, skipped here: {kind}s are loaded from the files [daemon] {setting}"
        " matches",
        line,
        severity="info",
    )
