"""`[admin]` and `[log.ship]` change on SIGHUP like the rest of the config, in a real daemon."""

from __future__ import annotations

import json
import signal
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_service import Daemon, assert_json_lines, wait_for

pytestmark = pytest.mark.slow


class Collector:
    """A loopback log collector: every line POSTed to it, as parsed JSON."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                collector.lines.extend(json.loads(x) for x in body.splitlines() if x.strip())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/insert"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(port: int, path: str = "/healthz", token: str | None = None) -> int:
    """The HTTP status, or 0 when nothing listens."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, ConnectionError):
        return 0


def write_config(root: Path, admin: str, extra: str = "") -> Path:
    (root / "tasks").mkdir(exist_ok=True)
    (root / "tasks" / "tick.json").write_text(
        json.dumps({"name": "tick", "schedule": "* * * * * *", "function_stack": []})
    )
    config = root / "config.toml"
    config.write_text(
        f'[daemon]\ntasks = ["tasks/*.json"]\nshutdown_timeout = "2s"\n'
        f'[datasources.main]\nurl = "sqlite:///data.db"\n[admin]\n{admin}\n{extra}'
    )
    return config


def reload(daemon: Daemon, event: str) -> dict[str, Any]:
    seen = len(daemon.events(event))
    daemon.signal(signal.SIGHUP)
    return dict(wait_for(lambda: daemon.events(event)[seen:], what=event)[0])


def test_admin_and_log_ship_follow_sighup(tmp_path: Path, collector: Collector) -> None:
    """A new admin address is bound and the old one closed; a new token works at once and the
    old one stops; an address in use rejects the reload and the listener keeps serving;
    `[log.ship]` added on reload starts shipping, removed stops."""
    first, second = free_port(), free_port()
    env = {"TOKEN_A": "token-a", "TOKEN_B": "token-b"}
    config = write_config(tmp_path, f'listen = "127.0.0.1:{first}"\ntoken_env = "TOKEN_A"')
    daemon = Daemon(config, env)
    try:
        wait_for(lambda: daemon.events("started"), what="start")
        assert status(first) == 200

        ship = f'[log.ship]\nurl = "{collector.url}"\nflush_interval = "50ms"\nbatch_size = 1\n'
        write_config(tmp_path, f'listen = "127.0.0.1:{second}"\ntoken_env = "TOKEN_A"', ship)
        reload(daemon, "reload")
        assert status(second) == 200 and status(first) == 0
        wait_for(lambda: any(e["event"] == "run_finished" for e in collector.lines), what="ship")

        write_config(tmp_path, f'listen = "127.0.0.1:{second}"\ntoken_env = "TOKEN_B"', ship)
        reload(daemon, "reload")
        assert status(second, "/api/tasks", "token-b") == 200
        assert status(second, "/api/tasks", "token-a") == 401

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            write_config(tmp_path, f'listen = "127.0.0.1:{busy}"\ntoken_env = "TOKEN_B"', ship)
            rejected = reload(daemon, "reload_rejected")
        assert f"127.0.0.1:{busy}" in rejected["errors"][0]
        assert status(second, "/api/tasks", "token-b") == 200

        write_config(tmp_path, 'listen = ""')
        removed = reload(daemon, "reload")
        assert status(second) == 0
        ticks = len(daemon.events("run_finished"))
        wait_for(lambda: len(daemon.events("run_finished")) >= ticks + 2, what="two more ticks")
        # The old shipper flushed what it held on its way out; nothing logged since was shipped.
        assert collector.lines and max(e["ts"] for e in collector.lines) < removed["ts"]
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit(10) == 0
    finally:
        daemon.close()
    assert_json_lines(daemon.lines)
