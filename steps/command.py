"""Run Command: one program (or one `/bin/sh -c` line) in its own process group, output captured."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from daemon.core.errors import CommandError, StepError, StepTimeoutError
from daemon.core.secrets import SECRETS, is_secret_header
from daemon.core.text import type_name
from daemon.expr.parser import is_template
from daemon.expr.values import render
from steps._values import seconds, to_text
from steps.base import Evaluator, Step, StepCompiler, StepContext, StepSpec

# Per stream; what is beyond is read and counted but not kept.
MAX_OUTPUT = 1024 * 1024
# Between the group's SIGTERM and its SIGKILL (a module global so tests can shorten it).
KILL_GRACE = 5.0
# How much of stderr a CommandError carries.
STDERR_TAIL = 1024
SHELL = "/bin/sh"
# The exec shim that ties the command's process group to the daemon's life (see its docstring).
GUARD = str(Path(__file__).with_name("_command_guard.py"))
_CHUNK = 64 * 1024
# The longest pause between looks at a group that is given time to end.
_POLL = 0.02
# After the command and its group are gone, how long a pipe held open by an escaped process
# (one that called setsid and kept our stdout) may delay the result.
_EOF_WAIT = 1.0
# Variables that address the daemon itself (systemd's notify socket, watchdog and socket
# activation): a command that saw them could speak for the daemon.
_DAEMON_ONLY = (
    "NOTIFY_SOCKET",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)
_ENV_NAME = re.compile(r"[^=\x00]+")
_SIZE = re.compile(r"(?i)^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$")
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(value: Any) -> int:
    """A byte count: an integer, or text like "64KiB", "1MiB", "10M" (binary units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        size = int(m.group(1)) * _UNITS[(m.group(2) or "")[:1].lower()]
    else:
        raise ValueError(f'invalid size {value!r}: use a number of bytes or "64KiB", "1MiB"')
    if size < 1:
        raise ValueError(f"invalid size {value!r}: must be at least 1 byte")
    return size


class _Capture:
    """One output stream: the first `limit` bytes kept, every byte counted, the tail remembered."""

    __slots__ = ("data", "limit", "tail", "tail_size", "total")

    def __init__(self, limit: int, tail_size: int = 0) -> None:
        self.data = bytearray()
        self.limit = limit
        self.total = 0
        self.tail = b""
        self.tail_size = tail_size

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if self.tail_size:
            self.tail = (self.tail + chunk)[-self.tail_size :]

    def text(self) -> str:
        out = self.data.decode("utf-8", "replace")
        if self.total > self.limit:
            out += f"\n[output cut at {self.limit} bytes; {self.total} bytes in all]"
        return out

    def tail_text(self) -> str:
        return self.tail.decode("utf-8", "replace").strip()


async def _read(stream: asyncio.StreamReader | None, capture: _Capture) -> None:
    # Always drained to the end, kept or not: a child blocked on a full pipe would never exit.
    if stream is None:
        return
    while chunk := await stream.read(_CHUNK):
        capture.add(chunk)


async def _feed(stream: asyncio.StreamWriter | None, data: bytes | None) -> None:
    if stream is None:
        return
    try:
        if data:
            stream.write(data)
            await stream.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command did not read all of its input: its business
    finally:
        stream.close()


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (a zombie does not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member that changed its user is still a member
        pass
    return True


def _live_member(pgid: int) -> bool:
    """Scan /proc for a member of the group that is not a zombie.

    killpg(pgid, 0) also reaches zombies: members that died and were reparented, waiting for
    init (or a container's PID 1, which may never reap them) to collect them. Those are gone for
    our purpose; waiting for them would cost the whole grace period.
    """
    try:
        entries = os.scandir("/proc")
    except OSError:
        return True  # cannot tell: assume it runs
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue  # ended meanwhile
            # The command name may hold spaces and parentheses: the fields follow the last ")".
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != b"Z":
                return True
    return False


async def _running(pgid: int) -> bool:
    if not _group_alive(pgid):
        return False
    # Off the loop: a /proc scan reads one file per process on the host.
    return await asyncio.to_thread(_live_member, pgid)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


async def end_group(pgid: int, grace: float) -> None:
    """End every process of the group: SIGTERM, then SIGKILL after `grace` seconds — or at once
    when cancelled meanwhile (a second stop signal must not wait out the grace)."""
    if not await _running(pgid):
        return
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    pause = 0.001  # most groups are gone at once: look again soon, then less often
    try:
        while time.monotonic() < deadline and await _running(pgid):
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL)
    finally:
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class RunCommand(Step):
    """Run a program; the result is `{exit_code, stdout, stderr, duration_ms}`."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        command: Any
        shell: bool = False
        cwd: Any = None
        env: Any = None
        clean_env: bool = False
        stdin: Any = None
        timeout: Any = None
        ok_exit_codes: list[int] = msgspec.field(default_factory=lambda: [0])
        max_output: Any = None

    function = "run_command"
    display_name = "Run Command"

    __slots__ = (
        "_argv",
        "_clean_env",
        "_cwd",
        "_env",
        "_env_secret_names",
        "_max_output",
        "_name",
        "_ok",
        "_shell",
        "_stdin",
        "_timeout",
        "_timeout_expr",
    )

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        self._argv: list[Evaluator] = []
        self._name = "command"
        self._shell = spec.shell
        if spec.shell:
            self._compile_shell(spec.command, c)
        else:
            self._compile_argv(spec.command, c)
        self._cwd: Evaluator | None = c.template(spec.cwd, "cwd") if spec.cwd is not None else None
        self._env: Evaluator | None = None
        self._env_secret_names: frozenset[str] = frozenset()
        if spec.env is not None:
            self._compile_env(spec.env, c)
        self._clean_env = spec.clean_env
        self._stdin: Evaluator | None = (
            c.template(spec.stdin, "stdin") if spec.stdin is not None else None
        )
        self._timeout: float | None = None
        self._timeout_expr: Evaluator | None = None
        if is_template(spec.timeout):
            self._timeout_expr = c.template(spec.timeout, "timeout")
        elif spec.timeout is not None:
            try:
                self._timeout = seconds(spec.timeout, "timeout")
            except ValueError as exc:
                c.error("timeout", str(exc))
        bad = [code for code in spec.ok_exit_codes if not 0 <= code <= 255]
        if bad:
            c.error("ok_exit_codes", f"exit codes are 0 to 255, got {bad[0]}")
        self._ok = frozenset(spec.ok_exit_codes)
        self._max_output = MAX_OUTPUT
        if spec.max_output is not None:
            try:
                self._max_output = parse_size(spec.max_output)
            except ValueError as exc:
                c.error("max_output", str(exc))
        super().__init__(spec, c)

    # --- load time --------------------------------------------------------------------------------

    def _compile_shell(self, command: Any, c: StepCompiler) -> None:
        if not isinstance(command, str) or not command.strip():
            c.error("command", "with shell = true, command is one non-empty string")
            return
        if "{{" in command:
            # Text pasted into a shell line is code: a value holding `; rm -rf ~` would run.
            c.error(
                "command",
                "a shell command cannot hold {{ }} templates (a value would be run as shell "
                'code); pass values as arguments instead: command = ["/bin/sh", "-c", '
                '\'... "$1" ...\', "sh", "{{value}}"], or through env',
            )
            return
        # Errors name the line itself: "/bin/sh exited with code 1" would say nothing.
        line = " ".join(command.split())
        self._name = line if len(line) <= 60 else line[:57] + "..."
        self._argv = [_const(SHELL), _const("-c"), _const(command)]

    def _compile_argv(self, command: Any, c: StepCompiler) -> None:
        if isinstance(command, str):
            c.error(
                "command",
                'command is a list of arguments, e.g. ["pg_dump", "-f", "out.sql"] (no '
                "shell); for a shell line set shell = true",
            )
            return
        if not isinstance(command, list) or not command:
            c.error("command", "command is a non-empty list of arguments")
            return
        for i, arg in enumerate(command):
            if isinstance(arg, dict | list) or arg is None:
                c.error(f"command[{i}]", f"an argument is text, got {type_name(arg)}")
                continue
            self._argv.append(c.template(arg, f"command[{i}]"))
        first = command[0]
        if isinstance(first, str) and not is_template(first):
            self._name = first
            if not first:
                c.error("command[0]", "the program name is empty")
            elif "/" not in first and shutil.which(first) is None:
                c.warning(
                    "command[0]",
                    f'program "{first}" is not on this PATH (the daemon\'s PATH may differ)',
                )

    def _compile_env(self, env: Any, c: StepCompiler) -> None:
        if not isinstance(env, dict):
            c.error("env", f"env is an object of variables, got {type_name(env)}")
            return
        for key, value in env.items():
            if not _ENV_NAME.fullmatch(key):
                c.error(f"env.{key}", f'invalid environment variable name "{key}"')
            elif isinstance(value, dict | list):
                c.error(f"env.{key}", f"a variable's value is text, got {type_name(value)}")
        self._env = c.template(env, "env")
        # Values of `*_TOKEN`, `PASSWORD`, ... are masked like credential headers, even when
        # written literally; values read from `{{env.X}}` are secrets anyway.
        self._env_secret_names = frozenset(k for k in env if is_secret_header(k))

    # --- run time ---------------------------------------------------------------------------------

    def _environment(self, ctx: StepContext) -> dict[str, str]:
        base: dict[str, str] = {} if self._clean_env else dict(os.environ)
        for name in _DAEMON_ONLY:
            base.pop(name, None)
        if self._env is None:
            return base
        values = self._env(ctx)
        if not isinstance(values, Mapping):
            raise StepError(f"Run Command env must be an object, got {type_name(values)}")
        for key, value in values.items():
            if value is None:
                base.pop(key, None)  # null unsets an inherited variable
                continue
            text = render(value)
            if key in self._env_secret_names:
                SECRETS.add(text)
            base[key] = text
        return base

    def _executable(self, program: str, env: Mapping[str, str], cwd: str | None) -> str:
        """The program's path, found as execvp would (PATH of the command's environment).

        Looked up here, not in the child, so "not found" is a clear error rather than exit 127.
        """
        if cwd is not None and not os.path.isdir(cwd):
            raise CommandError(f'cannot run "{program}": working directory {cwd} does not exist')
        if "/" in program:
            path = os.path.join(cwd, program) if cwd else program
            if not os.access(path, os.X_OK) or os.path.isdir(path):
                raise CommandError(f'cannot run "{program}": not found or not executable')
            return os.path.abspath(path)
        found = shutil.which(program, path=env.get("PATH", os.defpath))
        if found is None:
            raise CommandError(f'cannot run "{program}": not found on PATH')
        return os.path.abspath(found)

    async def run(self, ctx: StepContext) -> Any:
        argv = [render(a(ctx)) for a in self._argv]
        if not argv:
            raise StepError("Run Command has no command")  # only after a reported check error
        env = self._environment(ctx)
        cwd: str | None = None
        if self._cwd is not None:
            value = self._cwd(ctx)
            if value is not None:
                cwd = render(value)
        data: bytes | None = None
        if self._stdin is not None:
            stdin = self._stdin(ctx)
            data = None if stdin is None else to_text(stdin).encode()
        timeout = self._timeout
        if self._timeout_expr is not None:
            try:
                timeout = seconds(self._timeout_expr(ctx), "timeout")
            except ValueError as exc:
                raise StepError(str(exc)) from None
        executable = self._executable(argv[0], env, cwd)
        return await self._run(argv, executable, env, cwd, data, timeout)

    async def _run(
        self,
        argv: list[str],
        executable: str,
        env: dict[str, str],
        cwd: str | None,
        data: bytes | None,
        timeout: float | None,
    ) -> dict[str, Any]:
        name = self._name if self._shell else argv[0]
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _Protocol(loop),
                sys.executable,
                "-I",
                "-S",
                GUARD,
                str(os.getpid()),
                executable,
                *argv,
                stdin=asyncio.subprocess.PIPE if data is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=env,
                # Its own session and process group (pgid = pid): the group is what timeouts,
                # cancellation and the guard signal, so grandchildren end with it.
                start_new_session=True,
            )
        except OSError as exc:
            raise CommandError(f'cannot run "{name}": {exc.strerror or exc}') from None
        pgid = transport.get_pid()
        out = _Capture(self._max_output)
        err = _Capture(self._max_output, STDERR_TAIL)
        io = [
            asyncio.create_task(_read(protocol.stdout, out)),
            asyncio.create_task(_read(protocol.stderr, err)),
            asyncio.create_task(_feed(protocol.stdin, data)),
        ]
        timed_out = False
        try:
            try:
                async with asyncio.timeout(timeout):
                    await protocol.exited.wait()
            except TimeoutError:
                timed_out = True
            # Whatever the command left running in its group (`daemon &`) ends with it.
            await end_group(pgid, KILL_GRACE)
            await protocol.exited.wait()
            await asyncio.wait(io, timeout=_EOF_WAIT)
        except asyncio.CancelledError:
            # Overlap `replace`, shutdown, the task's timeout: nothing may outlive the run.
            await end_group(pgid, KILL_GRACE)
            raise
        finally:
            try:
                for task in io:
                    task.cancel()
                await asyncio.gather(*io, return_exceptions=True)
                if transport.get_returncode() is None:
                    # Let the child watcher collect it: closing the transport first would reap
                    # it behind the watcher's back.
                    _signal_group(pgid, signal.SIGKILL)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_EOF_WAIT):
                            await protocol.exited.wait()
            finally:
                transport.close()
        duration_ms = int((time.monotonic() - started) * 1000)
        tail = SECRETS.mask(err.tail_text())
        if timed_out:
            assert timeout is not None
            message = f'"{name}" timed out after {timeout:g}s'
            raise StepTimeoutError(message + (f": {tail}" if tail else ""))
        code = transport.get_returncode()
        assert code is not None
        if code not in self._ok:
            message = f'"{name}" {_describe_exit(code)}'
            raise CommandError(message + (f": {tail}" if tail else ""), exit_code=code, stderr=tail)
        return {
            "exit_code": code,
            "stdout": out.text(),
            "stderr": err.text(),
            "duration_ms": duration_ms,
        }


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Stream protocol that tells when the process has exited: on Python 3.11 `Process.wait()`
    also waits for the pipes to close, which a leftover grandchild can hold open forever."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=_CHUNK, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


def _const(value: str) -> Evaluator:
    return lambda ctx: value


COMMAND_STEPS: tuple[type[Step], ...] = (RunCommand,)
