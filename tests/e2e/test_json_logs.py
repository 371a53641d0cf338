"""Everything `cronstack run` prints is JSON lines: library logs, client garbage, outages."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import socket
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from daemon.ops import logs
from daemon.service import _loop_exception
from tests.e2e.test_service import Daemon, wait_for
from tests.support.faultproxy import BackgroundFaultProxy, address_of

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_every_line_json(text: str) -> list[dict[str, Any]]:
    docs = []
    for line in text.splitlines():
        doc = json.loads(line)  # raises on the first line that is not JSON
        assert isinstance(doc, dict) and {"ts", "level", "event"} <= doc.keys(), line
        assert "Traceback" not in line or "exception" in doc, line
        docs.append(doc)
    return docs


async def _long_header(port: int) -> int:
    async with aiohttp.ClientSession() as session:
        headers = {"X-Long": "a" * 10_000}
        try:
            async with session.get(f"http://127.0.0.1:{port}/healthz", headers=headers) as resp:
                return resp.status
        except aiohttp.ClientError:
            return 0  # the server may close instead of answering: the log is what counts


def test_outage_and_client_garbage_print_only_json_lines(tmp_path: Path, pg_url: str) -> None:
    """PostgreSQL behind a fault proxy goes away (refused, connections cut) and comes back; a
    request with a 10,000-character header hits the admin listener. Every line on stdout and
    stderr is one JSON object; asyncpg's pool retries and aiohttp's bad request are single
    warning lines with the error in `error`, no traceback."""
    admin_port = _free_port()
    with BackgroundFaultProxy(address_of(pg_url)) as proxy:
        (tmp_path / "tasks").mkdir()
        (tmp_path / "tasks" / "probe.json").write_text(
            json.dumps(
                {
                    "name": "probe",
                    "schedule": "* * * * * *",
                    "data_source": "pg",
                    "function_stack": [{"function": "Direct Database Query", "sql": "SELECT 1"}],
                }
            )
        )
        config = tmp_path / "config.toml"
        config.write_text(
            f"""
[daemon]
tasks = ["tasks/*.json"]
state = "state"
shutdown_timeout = "2s"

[datasources.pg]
url = "{proxy.url_for(pg_url)}"
min_size = 2

[datasources.state]
url = "sqlite:///state.db"

[admin]
listen = "127.0.0.1:{admin_port}"
"""
        )
        daemon = Daemon(config, {"CRONSTACK_ADMIN_TOKEN": "t0ken"})
        try:
            wait_for(
                lambda: any(e["status"] == "succeeded" for e in daemon.events("run_finished")),
                what="a probe run to succeed",
            )
            assert asyncio.run(_long_header(admin_port)) in (0, 400, 431)
            wait_for(
                lambda: [e for e in daemon.events() if e.get("logger") == "aiohttp.server"],
                what="aiohttp's bad request line",
            )
            proxy.refuse()
            proxy.cut()
            wait_for(
                lambda: [e for e in daemon.events() if e.get("logger") == "asyncpg.pool"],
                what="asyncpg's pool retry line",
            )
            wait_for(
                lambda: any(e["status"] == "failed" for e in daemon.events("run_finished")),
                what="a probe run to fail during the outage",
            )
            proxy.resume()
            seen = len(daemon.events("run_finished"))
            wait_for(
                lambda: any(
                    e["status"] == "succeeded" for e in daemon.events("run_finished")[seen:]
                ),
                what="a probe run to succeed after the outage",
            )
            daemon.signal(signal.SIGTERM)
            assert daemon.wait_exit(10) == 0
            stderr = daemon.stderr()
        finally:
            daemon.close()
    docs = assert_every_line_json("\n".join(daemon.lines))
    assert_every_line_json(stderr)
    bad_request = next(d for d in docs if d.get("logger") == "aiohttp.server")
    assert bad_request["level"] == "warning" and "LineTooLong" in bad_request["error"]
    retry = next(d for d in docs if d.get("logger") == "asyncpg.pool")
    assert retry["level"] == "warning" and "exception" not in retry and retry["error"]
    failed = [d for d in docs if d["event"] == "run_finished" and d["status"] == "failed"]
    assert failed and all(d["error"]["type"] == "DatabaseError" for d in failed)
    assert any("cannot connect to the database (" in d["error"]["message"] for d in failed)


def test_warnings_library_records_and_loop_errors_are_json() -> None:
    """In process: warnings.warn, a library's record with a traceback, asyncio's exception
    handler and an expected connection error each render as one JSON line."""
    stream = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        logs.configure(level="info", fmt="json", stream=stream)
        warnings.warn("careful", RuntimeWarning, stacklevel=1)
        try:
            raise ValueError("a library bug")
        except ValueError:
            logging.getLogger("somelib").exception("it broke")
        logging.getLogger("aiosqlite").debug("executing (never shown: library chatter)")
        loop = asyncio.new_event_loop()
        try:
            bug = RuntimeError("boom")
            reset = ConnectionResetError(104, "reset by peer")
            _loop_exception(loop, {"message": "Task exception never retrieved", "exception": bug})
            _loop_exception(loop, {"message": "Fatal error on transport", "exception": reset})
        finally:
            loop.close()
    structlog.reset_defaults()
    docs = assert_every_line_json(stream.getvalue())
    by_event = {d["event"]: d for d in docs}
    assert by_event["python_warning"]["category"] == "RuntimeWarning"
    assert by_event["python_warning"]["message"] == "careful"
    assert "ValueError: a library bug" in by_event["it broke"]["exception"]
    assert by_event["it broke"]["logger"] == "somelib"
    assert not any("executing" in d["event"] for d in docs)
    loop_lines = [d for d in docs if d["event"] == "loop_exception"]
    assert [d["level"] for d in loop_lines] == ["error", "warning"]
    assert "RuntimeError: boom" in loop_lines[0]["exception"]
    assert loop_lines[1]["error"].startswith("ConnectionResetError") and (
        "exception" not in loop_lines[1]
    )


def test_start_failure_prints_json_on_both_streams(tmp_path: Path) -> None:
    """An invalid config at start: exit 2, the error on stderr as a JSON line naming the file."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "a.json").write_text('{"name": "a", "schedule": "99 * * * *"}')
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\ntasks = ["tasks/*.json"]\n[admin]\nlisten = ""\n')
    daemon = Daemon(config)
    try:
        assert daemon.wait_exit(10) == 2
        stderr = daemon.stderr()
    finally:
        daemon.close()
    assert_every_line_json("\n".join(daemon.lines))
    errors = [d for d in assert_every_line_json(stderr) if d["event"] == "config_error"]
    assert errors and errors[0]["file"].endswith("a.json") and errors[0]["path"] == "schedule"
