"""The `cronstack` command line: run, check, trigger, history, pause, resume, import-crontab."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson

from daemon.core.errors import ConfigError, Issue
from daemon.core.events import EventSchedule
from daemon.core.secrets import mask, mask_value
from daemon.core.text import name_problem, shown
from daemon.ops import logs

if TYPE_CHECKING:
    from daemon.config.settings import Config
    from daemon.core.abc import Schedule
    from daemon.core.runs import RunResult
    from daemon.state.store import StateStore

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


def _print_json(doc: Any) -> None:
    sys.stdout.write(orjson.dumps(doc, default=str).decode() + "\n")
    sys.stdout.flush()


def _print_issues(issues: list[Issue], *, stream: Any = None) -> None:
    out = stream or sys.stderr
    for issue in issues:
        label = {"warning": "warning", "info": "note"}.get(issue.severity, "error")
        out.write(f"{label}: {issue}\n")


def _config_arg(args: argparse.Namespace) -> str:
    from daemon.config.settings import resolve_config_path

    return str(resolve_config_path(args.config, os.environ))


def parse_from(value: str | None, tz: ZoneInfo) -> datetime:
    """`--from`: RFC 3339 with offset or Z; without an offset it is read in the task's timezone."""
    if value is None:
        return datetime.now(UTC).astimezone(tz)
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=tz)
    return parsed


# --- check ------------------------------------------------------------------------------------


async def _check(args: argparse.Namespace) -> int:
    from daemon.bootstrap import check_state_store, close_resources, load

    try:
        loaded = await load(_config_arg(args))
    except ConfigError as exc:
        return _report_invalid(args, exc.issues)
    # A one-shot command keeps what it loaded to the end: out of the cyclic GC's way (100,000
    # tasks would be walked by every full collection of the steps below).
    gc.freeze()
    try:
        issues = loaded.issues + await check_state_store(loaded.config, loaded.unreachable)
        if args.strict:  # warnings become errors; notes (skipped documents) stay notes
            issues = [
                Issue(i.file, i.path, i.message, i.line, i.column, "error")
                if i.severity == "warning"
                else i
                for i in issues
            ]
        errors = [i for i in issues if i.severity == "error"]
        warnings = [i for i in issues if i.severity == "warning"]
        notes = [i for i in issues if i.severity == "info"]
        if args.from_ is not None:
            try:
                parse_from(args.from_, ZoneInfo("UTC"))
            except ValueError:
                errors.append(Issue("--from", "", f"invalid time {args.from_!r} (use RFC 3339)"))
        tasks_out: list[dict[str, Any]] = []
        # Tasks sharing a schedule and a zone share their next fires (10,000 tasks, one cron).
        fires_of: dict[tuple[str, str], list[str]] = {}
        for task in loaded.tasks:
            fires: list[str] = []
            if task.schedule is not None and not errors:
                key = (task.cron or repr(task.schedule), task.tz.key)
                if key not in fires_of:
                    start = parse_from(args.from_, task.tz)
                    fires_of[key] = [f.isoformat() for f in task.schedule.next_n(start, args.next)]
                fires = fires_of[key]
            tasks_out.append(
                {
                    "name": task.name,
                    "status": task.status,
                    "cron": task.cron,
                    "timezone": str(task.tz.key),
                    "next": fires,
                    "schedule": _schedule_json(task.schedule),
                    "file": task.file,
                    "description": task.schedule.describe() if task.schedule else "manual only",
                }
            )
        valid = not errors
        if args.json:
            doc: dict[str, Any] = {
                "valid": valid,
                "errors": [i.as_json() for i in errors],
                "warnings": [i.as_json() for i in warnings],
                # Exactly docs/contract.md's keys; file and words are for the human output.
                "tasks": [
                    {k: t[k] for k in ("name", "status", "cron", "timezone", "next", "schedule")}
                    for t in tasks_out
                ],
            }
            if notes:  # documents of an export that are not tasks (the key only when any)
                doc["notes"] = [i.as_json() for i in notes]
            _print_json(doc)
        else:
            _print_issues(errors + warnings + notes)
            for t in tasks_out:
                print(
                    f"{t['name']}  [{t['status']}]  {t['cron'] or '-'}  ({t['description']})"
                    f"  tz={t['timezone']}  {t['file']}"
                )
                for fire in t["next"]:
                    print(f"    next: {fire}")
            print("valid" if valid else f"invalid: {len(errors)} error(s)", file=sys.stderr)
        return EXIT_OK if valid else EXIT_INVALID
    finally:
        await close_resources(loaded.resources)


def _schedule_json(schedule: Schedule | None) -> dict[str, Any] | None:
    """`check --json`'s `schedule`: the events of an event schedule, or the cron expression;
    with the words `check` prints. None for a task that only runs when triggered."""
    if schedule is None:
        return None
    if isinstance(schedule, EventSchedule):
        return {**schedule.as_json(), "description": schedule.describe()}
    return {"cron": schedule.expression, "description": schedule.describe()}


def _report_invalid(args: argparse.Namespace, issues: list[Issue]) -> int:
    errors = [i for i in issues if i.severity == "error"]
    warnings = [i for i in issues if i.severity == "warning"]
    if getattr(args, "json", False) and args.command == "check":
        _print_json(
            {
                "valid": False,
                "errors": [i.as_json() for i in errors],
                "warnings": [i.as_json() for i in warnings],
                "tasks": [],
            }
        )
    else:
        _print_issues(errors + warnings)
    return EXIT_INVALID


# --- trigger ----------------------------------------------------------------------------------


async def _trigger(args: argparse.Namespace) -> int:
    from daemon.bootstrap import close_resources, load
    from daemon.engine.runner import run_task
    from daemon.scheduling.scheduler import Scheduler

    try:
        loaded = await load(_config_arg(args))
    except ConfigError as exc:
        return _report_invalid(args, exc.issues)
    try:
        if loaded.errors:
            _print_issues(loaded.errors)
            return EXIT_INVALID
        task = loaded.task(args.task)
        if task is None:
            names = ", ".join(t.name for t in loaded.tasks) or "none"
            print(f'error: unknown task "{args.task}" (tasks: {names})', file=sys.stderr)
            return EXIT_INVALID
        store = await _open_store(loaded.config, required=False)
        # Through the scheduler's own fire path (claim, run, record), with no retry: `trigger`
        # runs once (docs/contract.md "Runs"); the result is kept for printing.
        results: dict[str, RunResult] = {}

        async def run_and_keep(*a: Any, **kw: Any) -> RunResult:
            result = await run_task(*a, **kw)
            results[result.run_id] = result
            return result

        scheduler = Scheduler(
            [dataclasses.replace(task, retry=None)],
            loaded.resources,
            run=run_and_keep,
            claims=store,
            recorder=store,
        )
        try:
            run_id = await scheduler.run_now(task.name)
        finally:
            if store is not None:
                await store.close()
        result = results.get(run_id)
        if result is None:
            print(
                "error: the run did not start: the state store could not claim it"
                " (see the log above)",
                file=sys.stderr,
            )
            return EXIT_FAILED
        steps = [r.as_dict() for r in result.trace]
        if args.json:
            # Masked as a whole: the last line of defence for anything the run saw.
            _print_json(
                mask_value(
                    {
                        "task": result.task,
                        "run_id": result.run_id,
                        "status": result.status,
                        "error": result.error,
                        "steps": steps,
                    }
                )
            )
        else:
            for s in steps:
                print(
                    f"{s['status']:<10} {s['duration_ms']:>10.3f} ms  {s['path']}  {s['function']}"
                )
            print(f"{result.task} {result.run_id}: {result.status} in {result.duration_ms} ms")
            if result.error:
                e = result.error
                print(
                    mask(f"error: {e['type']}: {e['message']} (at {e.get('step')})"),
                    file=sys.stderr,
                )
        return EXIT_OK if result.status == "succeeded" else EXIT_FAILED
    finally:
        await close_resources(loaded.resources)


# --- state store: history, pause, resume -------------------------------------------------------


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


async def _open_store(config: Config, *, required: bool = True) -> StateStore | None:
    """The state store for a one-shot command (shared with a running daemon, never locked)."""
    from daemon.bootstrap import store_from_config

    store = store_from_config(config)
    if store is None:
        if required:
            print(
                "error: no state data source: set `[daemon] state` to one of [datasources]",
                file=sys.stderr,
            )
        return None
    try:
        await store.open()
    except Exception as exc:
        print(f"error: state store: {mask(str(exc))}", file=sys.stderr)
        await store.close(timeout=0)
        return None
    return store


def _read_config(args: argparse.Namespace) -> Config | None:
    from daemon.bootstrap import task_readers
    from daemon.config.settings import read_config

    try:
        config, issues = read_config(_config_arg(args), readers=task_readers())
    except ConfigError as exc:
        _print_issues(exc.issues)
        return None
    fatal = [i for i in issues if i.severity == "error" and i.path.startswith("daemon")]
    fatal += [i for i in issues if i.severity == "error" and i.path.startswith("datasources")]
    if fatal:
        _print_issues(fatal)
        return None
    return config


def _rfc3339(ms: int | None, tz: ZoneInfo) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")


async def _history(args: argparse.Namespace) -> int:
    from daemon.state.queries import run_json

    if args.task is not None and name_problem(args.task) is not None:
        # Checked before any query (PostgreSQL refuses a NUL outright).
        print(f"error: task name {shown(args.task)}: {name_problem(args.task)}", file=sys.stderr)
        return EXIT_INVALID
    config = _read_config(args)
    if config is None:
        return EXIT_INVALID
    store = await _open_store(config)
    if store is None:
        return EXIT_FAILED
    try:
        # A run whose process died holds an expired lease; with no live replica left to notice,
        # nobody else would ever mark it: do it here, so history never shows a dead run as
        # `running` past its lease timeout (the same fenced update every replica performs).
        try:
            await store.reap()
        except Exception as exc:  # reading history must not depend on being able to write
            print(
                f"warning: could not mark expired runs interrupted: {mask(str(exc))}",
                file=sys.stderr,
            )
        rows = await store.queries.runs(args.task, limit=max(1, args.limit))
    finally:
        await store.close(timeout=0)
    zones = {t.name: t.spec.timezone_name(config.spec.daemon.timezone) for t in config.tasks}
    runs = []
    for row in rows:
        try:
            tz = ZoneInfo(zones.get(row["task"], config.spec.daemon.timezone))
        except (KeyError, ValueError):
            tz = ZoneInfo("UTC")
        runs.append(run_json(row, tz))
    if args.json:
        _print_json(runs)
        return EXIT_OK
    if not runs:
        print("no runs recorded" + (f' for "{args.task}"' if args.task else ""), file=sys.stderr)
    for r in runs:
        took = f"{r['duration_ms']} ms" if r["duration_ms"] is not None else "-"
        why = ""
        if r["error"]:
            e = r["error"]
            why = f"  {e.get('type')}: {e.get('message')}"
        elif r["reason"]:
            why = f"  ({r['reason']})"
        print(
            f"{r['scheduled_at']}  {r['task']}  {r['status']:<11} {r['trigger']}"
            f"#{r['attempt']}  {took}  {r['run_id']}{why}"
        )
    return EXIT_OK


def _admin_target(config: Config) -> tuple[str, str] | None:
    """The running daemon's admin API (listen, token) when configured and a token is set."""
    admin = config.spec.admin
    token = os.environ.get(admin.token_env)
    if not admin.listen or not token:
        return None
    return admin.listen, token


async def _remote(config: Config, method: str, path: str) -> tuple[int, Any]:
    """Ask the running daemon: (EXIT_OK, answer), or an exit code with the error printed.
    EXIT_FAILED with answer None means the daemon could not be reached."""
    from urllib.parse import quote

    from daemon.web.client import RemoteError, call

    target = _admin_target(config)
    if target is None:
        print(
            "error: no admin API to talk to: set [admin] listen and the token variable "
            f"{config.spec.admin.token_env}",
            file=sys.stderr,
        )
        return EXIT_INVALID, None
    listen, token = target
    try:
        return EXIT_OK, await call(listen, token, method, quote(path))
    except RemoteError as exc:
        if exc.status is None:
            return EXIT_FAILED, None
        print(f"error: {exc}", file=sys.stderr)
        return (EXIT_INVALID if exc.status == 404 else EXIT_FAILED), exc.status


async def _trigger_remote(args: argparse.Namespace) -> int:
    """`trigger --remote`: the running daemon runs the task (recorded in its history)."""
    config = _read_config(args)
    if config is None:
        return EXIT_INVALID
    code, answer = await _remote(config, "POST", f"/api/tasks/{args.task}/run")
    if code != EXIT_OK:
        if answer is None and code == EXIT_FAILED:
            print(
                "error: the daemon's admin API is not reachable (is it running?)", file=sys.stderr
            )
        return code
    if args.json:
        _print_json(answer)
    else:
        print(f"{answer['task']} {answer['run_id']}: queued in the running daemon")
    return EXIT_OK


async def _set_paused(args: argparse.Namespace) -> int:
    config = _read_config(args)
    if config is None:
        return EXIT_INVALID
    names = [t.name for t in config.tasks]
    if args.task not in names:
        print(
            f'error: unknown task "{args.task}" (tasks: {", ".join(names) or "none"})',
            file=sys.stderr,
        )
        return EXIT_INVALID
    if _admin_target(config) is not None:
        # A running daemon applies it at once (and persists it); if none answers, the store.
        code, answer = await _remote(config, "POST", f"/api/tasks/{args.task}/{args.command}")
        if code == EXIT_OK:
            done = "paused" if args.command == "pause" else "resumed"
            print(f"{args.task}: {done} (by the running daemon)", file=sys.stderr)
            return EXIT_OK
        if answer is not None:
            return code
    store = await _open_store(config)
    if store is None:
        return EXIT_FAILED
    paused = args.command == "pause"
    try:
        await store.set_paused(args.task, paused)
    finally:
        await store.close(timeout=0)
    print(f"{args.task}: {'paused' if paused else 'resumed'}", file=sys.stderr)
    return EXIT_OK


# --- import-crontab ---------------------------------------------------------------------------


def _import_crontab(args: argparse.Namespace) -> int:
    """Convert a crontab to TOML tasks: the file on stdout (or -o), every note on stderr."""
    from pathlib import Path

    from daemon.config.crontab import convert, to_toml

    if args.timezone is not None:
        try:
            ZoneInfo(args.timezone)
        except (KeyError, ValueError):
            print(f'error: unknown timezone "{args.timezone}"', file=sys.stderr)
            return EXIT_INVALID
    source = "<stdin>" if args.file == "-" else args.file
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"error: cannot read {source}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID
    text = raw.decode("utf-8", errors="replace")
    if "\ufffd" in text and "\ufffd".encode() not in raw:
        print(f"{source}: warning: not UTF-8; undecodable bytes became U+FFFD", file=sys.stderr)
    if not args.system and source.startswith(("/etc/crontab", "/etc/cron.d/")):
        print(
            f"{source}: warning: a system crontab has a user field: use --system", file=sys.stderr
        )
    conversion = convert(text, system=args.system, timezone=args.timezone)
    for note in conversion.notes:
        print(note.format(source), file=sys.stderr)
    if any(t.timezone is None for t in conversion.tasks):
        print(
            f"{source}: note: tasks without CRON_TZ use [daemon] timezone; cron used this "
            "machine's local time (--timezone TZ sets one for all)",
            file=sys.stderr,
        )
    output = to_toml(conversion, source=source)
    if args.output:
        try:
            Path(args.output).write_text(output, encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
    else:
        sys.stdout.write(output)
        sys.stdout.flush()
    skipped = len(conversion.skipped)
    print(
        f"{len(conversion.tasks)} task(s) from {source}"
        + (f" written to {args.output}" if args.output else "")
        + (f"; {skipped} line(s) skipped (see above)" if skipped else ""),
        file=sys.stderr,
    )
    return EXIT_OK


# --- entry point ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cronstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c", "--config", help="config file (default $CRONSTACK_CONFIG, ./config.toml)"
        )
        return p

    with_config(sub.add_parser("run", help="run the daemon in the foreground"))

    check = with_config(sub.add_parser("check", help="validate config and tasks, show next fires"))
    check.add_argument("--next", type=int, default=5, metavar="N")
    check.add_argument("--from", dest="from_", metavar="TIME")
    check.add_argument("--strict", action="store_true", help="warnings are errors")
    check.add_argument("--json", action="store_true")

    trigger = with_config(sub.add_parser("trigger", help="run one task once, now"))
    trigger.add_argument("task")
    trigger.add_argument("--json", action="store_true")
    trigger.add_argument(
        "--remote", action="store_true", help="ask the running daemon (admin API) to run it"
    )

    history = with_config(sub.add_parser("history", help="recent runs, newest first"))
    history.add_argument("task", nargs="?")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--json", action="store_true")

    for name in ("pause", "resume"):
        p = with_config(sub.add_parser(name, help=f"{name} a task"))
        p.add_argument("task")

    crontab = sub.add_parser(
        "import-crontab", help="convert a crontab into TOML tasks (to review, then `check`)"
    )
    crontab.add_argument("file", help='crontab file ("-" reads standard input)')
    crontab.add_argument(
        "--system", action="store_true", help="/etc/crontab format (a user field per line)"
    )
    crontab.add_argument("--timezone", metavar="TZ", help="IANA timezone for the tasks")
    crontab.add_argument("-o", "--output", metavar="OUT.toml", help="write here, not stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from daemon.service import main as run_main

        return run_main(args)
    if args.command == "import-crontab":
        return _import_crontab(args)
    # One-shot commands log to stderr so `--json` output on stdout stays one document; a
    # triggered run's own Log steps (info) are part of what the user asked to see.
    level = "info" if args.command == "trigger" else "warning"
    logs.configure(level=level, fmt="console", stream=sys.stderr)
    handlers = {
        "check": _check,
        "trigger": _trigger_remote if getattr(args, "remote", False) else _trigger,
        "history": _history,
        "pause": _set_paused,
        "resume": _set_paused,
    }
    try:
        return asyncio.run(handlers[args.command](args))
    finally:
        logs.flush()  # lines of the loop's last turn


if __name__ == "__main__":
    sys.exit(main())
