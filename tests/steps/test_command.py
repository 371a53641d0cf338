"""Run Command with real processes: arguments, shell, env, stdin, cwd, exit codes, output limits,
timeouts and cancellation ending the whole process group, secrets masked."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import steps.command
from daemon.core.runs import RunResult
from daemon.engine.compiler import CompiledTask
from daemon.engine.runner import run_task
from daemon.resources.bundle import Resources
from daemon.scheduling.clock import SystemClock
from daemon.scheduling.scheduler import Scheduler
from daemon.testing import FakeClock
from steps.command import parse_size
from tests.scheduling.test_scheduler import ListRecorder, make_task
from tests.steps.helpers import compile_issues, compile_steps, compile_warnings, run, step


def cmd(command: Any, **fields: Any) -> dict[str, Any]:
    return step("Run Command", command=command, return_variable="r", **fields)


async def run_cmd(command: Any, **fields: Any) -> RunResult:
    resources = fields.pop("resources", None)
    timeout = fields.pop("run_timeout", None)
    return await run(
        [cmd(command, **fields), step("Return", value="{{r}}")],
        resources=resources,
        timeout=timeout,
    )


def live_members(pgid: int) -> list[int]:
    """Processes of the group that still run (zombies waiting for init to reap them do not)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            found.append(int(name))
    return found


async def wait_gone(pgid: int, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while live_members(pgid):
        assert time.monotonic() < deadline, f"group {pgid} still has {live_members(pgid)}"
        await asyncio.sleep(0.02)


async def read_pid(path: Path, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never written"
        await asyncio.sleep(0.01)
    return int(path.read_text().split()[0])


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(steps.command, "KILL_GRACE", 0.3)
    yield


# --- what runs ------------------------------------------------------------------------------


async def test_list_arguments_are_templated_one_by_one_without_a_shell() -> None:
    """Each list item is one argument: a value with spaces and `;` is data, never shell code."""
    result = await run(
        [
            step("Create Variable", name="v", value="x y; echo pwned"),
            cmd(["printf", "%s|", "{{v}}", "b c", "{{1 + 2}}"]),
            step("Return", value="{{r}}"),
        ]
    )
    assert result.status == "succeeded", result.error
    assert result.value["stdout"] == "x y; echo pwned|b c|3|"
    assert result.value["exit_code"] == 0 and result.value["stderr"] == ""
    assert isinstance(result.value["duration_ms"], int)


async def test_shell_string_runs_under_bin_sh() -> None:
    """`shell: true` runs the string with /bin/sh -c: pipes and expansions work."""
    result = await run_cmd("echo $((20 + 22)) | tr 4 X", shell=True)
    assert result.status == "succeeded", result.error
    assert result.value["stdout"] == "X2\n"


@pytest.mark.parametrize(
    ("fields", "path", "needle"),
    [
        ({"command": "echo {{task.name}}", "shell": True}, "command", "cannot hold {{ }}"),
        ({"command": "echo hi"}, "command", "shell = true"),
        ({"command": ["echo", "hi"], "shell": True}, "command", "one non-empty string"),
        ({"command": []}, "command", "non-empty list"),
        ({"command": ["echo", {"a": 1}]}, "command[1]", "got object"),
        ({"command": ["echo"], "env": ["A=1"]}, "env", "object of variables"),
        ({"command": ["echo"], "env": {"A=B": "1"}}, "env.A=B", "invalid environment"),
        ({"command": ["echo"], "timeout": "soon"}, "timeout", "timeout"),
        ({"command": ["echo"], "ok_exit_codes": [0, 300]}, "ok_exit_codes", "0 to 255"),
        ({"command": ["echo"], "max_output": "lots"}, "max_output", "invalid size"),
        ({"command": ["echo"], "max_output": 0}, "max_output", "at least 1 byte"),
    ],
)
def test_check_errors(fields: dict[str, Any], path: str, needle: str) -> None:
    """Mistakes are `check` errors at the field's path, each saying what to write instead."""
    issues = compile_issues([step("Run Command", **fields)])
    assert issues, fields
    assert issues[0].path == f"function_stack[0].{path}", issues
    assert needle in issues[0].message, issues[0].message


def test_unknown_program_is_a_warning() -> None:
    """A literal program that is not on PATH is worth a warning (the daemon's PATH may differ)."""
    warnings = compile_warnings([step("Run Command", command=["no-such-program-xyz", "a"])])
    assert [w.path for w in warnings] == ["function_stack[0].command[0]"]
    assert compile_warnings([step("Run Command", command=["sh", "-c", "true"])]) == []


@pytest.mark.parametrize(
    ("text", "size"), [(10, 10), ("512", 512), ("64KiB", 65536), ("1MiB", 1 << 20), ("2m", 2 << 20)]
)
def test_parse_size(text: Any, size: int) -> None:
    """max_output takes bytes or binary units."""
    assert parse_size(text) == size


async def test_missing_program_and_cwd_fail_clearly(tmp_path: Path) -> None:
    """A program not on PATH or a missing working directory: CommandError, nothing started."""
    result = await run_cmd(["{{'no-such-program-xyz'}}"])
    assert result.error is not None and result.error["type"] == "CommandError"
    assert "not found on PATH" in result.error["message"]
    result = await run_cmd(["pwd"], cwd=str(tmp_path / "missing"))
    assert result.error is not None and "does not exist" in result.error["message"]


# --- exit codes, environment, input, output ---------------------------------------------------


async def test_exit_code_outside_ok_exit_codes_is_a_command_error() -> None:
    """Exit 3 fails with CommandError carrying the code and stderr; ok_exit_codes accepts it."""
    script = "echo out; echo 'it broke' >&2; exit 3"
    failed = await run_cmd(["sh", "-c", script])
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error["type"] == "CommandError"
    assert failed.error["exit_code"] == 3 and failed.error["stderr"] == "it broke"
    assert failed.error["message"] == '"sh" exited with code 3: it broke'
    assert failed.error["step"] == "function_stack[0]"
    accepted = await run_cmd(["sh", "-c", script], ok_exit_codes=[0, 3])
    assert accepted.status == "succeeded"
    assert accepted.value["exit_code"] == 3 and accepted.value["stdout"] == "out\n"
    strict = await run_cmd(["true"], ok_exit_codes=[1])
    assert strict.error is not None and strict.error["exit_code"] == 0


async def test_command_error_keeps_the_last_kib_of_stderr() -> None:
    """Only the end of a long stderr goes into the error: that is where the reason usually is."""
    script = "head -c 5000 /dev/zero | tr '\\0' a >&2; echo END >&2; false"
    result = await run_cmd(["sh", "-c", script])
    assert result.error is not None
    tail = result.error["stderr"]
    assert len(tail) <= 1024 and tail.endswith("aaaaEND")
    assert result.error["message"].endswith("END")


async def test_killed_by_a_signal_reports_the_signal() -> None:
    """A command killed by a signal has a negative exit code and says which signal."""
    result = await run_cmd(["sh", "-c", "kill -KILL $$"])
    assert result.error is not None
    assert result.error["exit_code"] == -9 and "SIGKILL" in result.error["message"]


async def test_env_merges_over_the_daemon_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`env` values (templated) override the daemon's environment; null unsets a variable."""
    monkeypatch.setenv("CMD_TEST_INHERITED", "from-daemon")
    monkeypatch.setenv("CMD_TEST_DROPPED", "gone")
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    script = 'echo "$CMD_TEST_INHERITED $GREETING ${CMD_TEST_DROPPED-unset} ${NOTIFY_SOCKET-no}"'
    result = await run_cmd(
        ["sh", "-c", script],
        env={"GREETING": "hello {{1 + 1}}", "CMD_TEST_DROPPED": None},
    )
    assert result.status == "succeeded", result.error
    # The daemon's own systemd notify socket is not the command's to use.
    assert result.value["stdout"] == "from-daemon hello 2 unset no\n"


async def test_clean_env_starts_empty() -> None:
    """`clean_env: true`: the command sees only the variables the step gives."""
    result = await run_cmd(["env"], clean_env=True, env={"ONLY": "this", "N": 7})
    assert result.status == "succeeded", result.error
    assert sorted(result.value["stdout"].splitlines()) == ["N=7", "ONLY=this"]


async def test_stdin_is_templated_text() -> None:
    """`stdin` is fed to the command; a non-text value goes as JSON; no stdin reads nothing."""
    result = await run(
        [
            step("Create Variable", name="who", value="world"),
            cmd(["cat"], stdin="hello {{who}}\nbye"),
            step("Create Variable", name="a", value="{{r.stdout}}"),
            cmd(["cat"], stdin={"n": [1, 2]}),
            step("Create Variable", name="b", value="{{r.stdout}}"),
            cmd(["cat"]),
            step("Return", value=["{{a}}", "{{b}}", "{{r.stdout}}"]),
        ]
    )
    assert result.status == "succeeded", result.error
    assert result.value == ["hello world\nbye", '{"n":[1,2]}', ""]


async def test_cwd(tmp_path: Path) -> None:
    """`cwd` sets the working directory; a relative program path is resolved in it."""
    script = tmp_path / "hello.sh"
    script.write_text('#!/bin/sh\necho "hi from $(pwd)"\n')
    script.chmod(0o755)
    result = await run_cmd(["./hello.sh"], cwd=str(tmp_path))
    assert result.status == "succeeded", result.error
    assert result.value["stdout"] == f"hi from {tmp_path}\n"


async def test_max_output_cuts_with_a_marker_and_keeps_counting() -> None:
    """Beyond max_output the stream is read and counted, not kept; a marker says so."""
    result = await run_cmd(
        ["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x; head -c 300 /dev/zero | tr '\\0' y >&2"],
        max_output=1000,
    )
    assert result.status == "succeeded", result.error
    out, err = result.value["stdout"], result.value["stderr"]
    assert out == "x" * 1000 + "\n[output cut at 1000 bytes; 5000 bytes in all]"
    assert err == "y" * 300


async def test_big_output_neither_blocks_the_child_nor_the_loop() -> None:
    """8 MiB on stdout with the default 1 MiB cap: the child is drained to its end (it exits),
    and the event loop keeps ticking every few milliseconds meanwhile."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    try:
        result = await run_cmd(["head", "-c", str(8 << 20), "/dev/zero"], timeout="20s")
    finally:
        done.set()
        await tick
    assert result.status == "succeeded", result.error
    stdout = result.value["stdout"]
    assert stdout.endswith(f"[output cut at {1 << 20} bytes; {8 << 20} bytes in all]")
    assert len(stdout) < (1 << 20) + 100
    assert gaps and max(gaps) < 0.1, max(gaps)


# --- the process group ---------------------------------------------------------------------


async def test_timeout_kills_the_group_including_grandchildren(tmp_path: Path) -> None:
    """On timeout the whole group ends (the backgrounded grandchild too): a TimeoutError."""
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    script = f"echo $$ > {pidfile}; sleep 60 & sleep 60"
    result = await run_cmd(["sh", "-c", script], timeout="0.5s")
    assert time.monotonic() - started < 2.0
    assert result.status == "failed"
    assert result.error is not None and result.error["type"] == "TimeoutError"
    assert "timed out after 0.5s" in result.error["message"]
    await wait_gone(int(pidfile.read_text()))


async def test_sigterm_ignored_gets_sigkill_after_the_grace(
    tmp_path: Path, short_grace: None
) -> None:
    """A command that ignores SIGTERM is killed with SIGKILL once the grace period is over."""
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    result = await run_cmd(
        ["sh", "-c", f"trap '' TERM; echo $$ > {pidfile}; sleep 60 & wait; wait"], timeout="0.3s"
    )
    elapsed = time.monotonic() - started
    assert result.error is not None and result.error["type"] == "TimeoutError"
    assert 0.5 <= elapsed < 2.0, elapsed  # the timeout, then the (shortened) grace
    await wait_gone(int(pidfile.read_text()))


async def test_cancellation_kills_the_group(tmp_path: Path) -> None:
    """A cancelled run (overlap replace, shutdown) ends the command's group before it returns."""
    pidfile = tmp_path / "pid"
    steps_ = compile_steps([cmd(["sh", "-c", f"echo $$ > {pidfile}; sleep 60 & sleep 60"])])
    from daemon.engine.runner import run_stack

    running = asyncio.create_task(run_stack(steps_, resources=Resources()))
    pgid = await read_pid(pidfile)
    assert live_members(pgid)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await wait_gone(pgid, timeout=0.5)


async def test_background_leftovers_end_with_the_command(tmp_path: Path) -> None:
    """What a command leaves running in its group (`sleep 60 &`) is ended when it exits."""
    pidfile = tmp_path / "bg"
    started = time.monotonic()
    result = await run_cmd(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; echo done"])
    assert result.status == "succeeded", result.error
    assert result.value["stdout"] == "done\n"
    assert time.monotonic() - started < 2.0
    bg = int(pidfile.read_text())
    stat = Path(f"/proc/{bg}/stat")
    assert not stat.exists() or stat.read_bytes().split(b") ")[1].startswith(b"Z")


async def test_overlap_replace_kills_the_running_command(tmp_path: Path) -> None:
    """Scheduler, overlap `replace`: the new fire cancels the running command and its group."""
    pids = tmp_path / "pids"
    compiled = compile_steps([cmd(["sh", "-c", f"echo $$ >> {pids}; sleep 60 & sleep 60"])])
    task = dataclasses.replace(make_task("cmd", overlap="replace"), steps=compiled)
    clock = FakeClock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    recorder = ListRecorder()
    scheduler = Scheduler([task], Resources(), clock=clock, recorder=recorder)
    serve = asyncio.create_task(scheduler.serve())
    await scheduler.armed.wait()
    try:
        await clock.advance(1)
        first = await read_pid(pids)
        await clock.advance(1)
        for _ in range(200):
            if recorder.statuses("cmd")[:1] == ["cancelled"]:
                break
            await asyncio.sleep(0.01)
        assert recorder.statuses("cmd")[:1] == ["cancelled"]
        assert "replace" in (recorder.outcomes[0].reason or "")
        await wait_gone(first, timeout=0.5)
        while len(pids.read_text().split()) < 2:
            await asyncio.sleep(0.01)
        second = int(pids.read_text().split()[1])
        assert live_members(second)
    finally:
        scheduler.stop_firing()
        await serve
        await scheduler.cancel_all()
    await wait_gone(second, timeout=0.5)


async def test_output_flood_does_not_delay_another_tasks_fires() -> None:
    """Real clock: while one task's command floods its stdout, another task still fires on
    time (its fire lag stays within a few milliseconds of its lag before the flood)."""
    flood = (
        "import sys, time\n"
        "time.sleep(0.2)\n"
        "chunk = b'x' * 65536\n"
        "end = time.time() + 1.2\n"
        "while time.time() < end:\n"
        "    sys.stdout.buffer.write(chunk)\n"
    )
    noisy = dataclasses.replace(
        make_task("noisy"), steps=compile_steps([cmd([sys.executable, "-c", flood])])
    )
    tick = make_task("tick")
    lags: list[float] = []
    noisy_results: list[RunResult] = []
    # Shift the clock so the first slot is 50 ms away: the test takes ~1.3 s, not up to 2.3 s.
    now = time.time()
    clock = SystemClock(offset=math.ceil(now) - now - 0.05 + 1)

    async def dispatch(task: CompiledTask, resources: Resources, **kw: Any) -> RunResult:
        if task.name == "noisy":
            result = await run_task(task, resources, **kw)
            noisy_results.append(result)
            return result
        scheduled = kw["scheduled_at"] / 1000
        lags.append(clock.now().timestamp() - scheduled)
        ms = int(clock.now().timestamp() * 1000)
        return RunResult("tick", kw["run_id"], kw["slot_id"], "succeeded", "schedule", 1,
                         kw["scheduled_at"], ms, ms)  # fmt: skip

    scheduler = Scheduler([noisy, tick], Resources(), clock=clock, run=dispatch)
    serve = asyncio.create_task(scheduler.serve())
    try:
        deadline = time.monotonic() + 5
        while len(lags) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        scheduler.stop_firing()
        await serve
        await scheduler.drain(5)
        await scheduler.cancel_all()
    assert len(lags) >= 2, lags
    assert noisy_results and noisy_results[0].status == "succeeded", noisy_results
    out = noisy_results[0].trace[0].output["stdout"]
    assert "bytes in all]" in out  # the flood really was beyond the 1 MiB cap
    before, during = (f"{lag * 1000:.1f} ms" for lag in lags[:2])
    print(f"tick fire lag: before {before}, during the flood {during}")
    assert lags[1] < lags[0] + 0.05, lags


# --- secrets ----------------------------------------------------------------------------------


async def test_output_echoing_a_secret_is_masked() -> None:
    """A value from `{{env.X}}` (or a `*_TOKEN` variable) echoed by the command is `***` in the
    step trace output and in the error message and stderr of a failure."""
    resources = Resources(env={"CMD_TEST_SECRET": "s3cr3t-from-env-4711"})
    script = 'echo "t=$TOKEN k=$API_TOKEN"; echo "e=$TOKEN" >&2; exit 4'
    env = {"TOKEN": "{{env.CMD_TEST_SECRET}}", "API_TOKEN": "literal-token-0815"}
    ok = await run([step("Run Command", command=["sh", "-c", script], env=env, ok_exit_codes=[4])],
                   resources=resources)  # fmt: skip
    assert ok.status == "succeeded", ok.error
    output = ok.trace[0].output
    assert output["stdout"] == "t=*** k=***\n" and output["stderr"] == "e=***\n"
    failed = await run([step("Run Command", command=["sh", "-c", script], env=env)],
                       resources=resources)  # fmt: skip
    assert failed.error is not None
    assert "s3cr3t" not in str(failed.error) and "***" in failed.error["message"]
    assert failed.error["stderr"] == "e=***"
