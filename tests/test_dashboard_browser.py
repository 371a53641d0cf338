"""The dashboard in headless Chromium against a real `cronstack run`: login, run now, trace."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
TOKEN = "browser-test-token-0123456789"
EXAMPLE_TASKS = ["Cache Warming", "CRM Data Sync", "Daily Report Generation", "Session Archival"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="headless Chromium is not installed (Debian package `chromium`; .ci/run installs"
        " it with apt-get when it can)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Page:
    """A minimal DevTools-protocol client for one page target."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self.ws.send_str(
            orjson.dumps({"id": msg_id, "method": method, "params": params}).decode()
        )
        async for msg in self.ws:
            data = orjson.loads(msg.data)
            if data.get("id") == msg_id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return dict(data.get("result", {}))
        raise RuntimeError("DevTools connection closed")

    async def eval(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    value = await self.eval(expression)
                except RuntimeError:
                    value = None  # the page is navigating
                if value:
                    return value
                await asyncio.sleep(0.1)

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[str]:
    """`cronstack run` on a copy of the example config, with the admin listener on a free port."""
    work = tmp_path / "site"
    shutil.copytree(REPO / "tasks", work / "tasks")
    shutil.copytree(REPO / "sql", work / "sql")
    (work / "var").mkdir()
    port = _free_port()
    config = (REPO / "config.toml").read_text().replace("127.0.0.1:8765", f"127.0.0.1:{port}")
    (work / "config.toml").write_text(config)
    env = {**os.environ, "CRONSTACK_ADMIN_TOKEN": TOKEN, "CRONSTACK_LOOP": "asyncio"}
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "run", "-c", str(work / "config.toml")],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s, asyncio.timeout(20):
            while True:
                assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
                try:
                    async with s.get(base + "/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    """A fresh headless Chromium (own profile) and one page, over the DevTools protocol."""
    assert CHROMIUM is not None
    port = _free_port()
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chrome'}",
         f"--remote-debugging-port={port}", "--window-size=1280,900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as s:
            targets: list[dict[str, Any]] = []
            async with asyncio.timeout(20):
                while not targets:
                    try:
                        async with s.get(f"http://127.0.0.1:{port}/json/list") as resp:
                            targets = [t for t in await resp.json() if t["type"] == "page"]
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.2)
            async with s.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                p = Page(ws)
                await p.send("Page.enable")
                yield p
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def test_log_in_run_now_and_see_the_step_trace(daemon: str, page: Page) -> None:
    """Log in, see the example tasks, press run-now, land on the run page, see its step trace."""
    ARTIFACTS.mkdir(exist_ok=True)
    await page.send("Page.navigate", url=daemon + "/")
    await page.wait_for("document.getElementById('token') !== null")
    await page.eval(
        f"document.getElementById('token').value = {orjson.dumps(TOKEN).decode()};"
        " document.getElementById('login').click()"
    )
    await page.wait_for("document.getElementById('tasks') !== null")
    text = await page.eval("document.body.innerText")
    for name in EXAMPLE_TASKS:
        assert name in text
    assert "every 30 minutes" in text  # schedules in words
    await page.eval(
        'document.querySelector(\'tr[data-task="Cache Warming"] form[action$="/run"] button\')'
        ".click()"
    )
    await page.wait_for("location.pathname.startsWith('/runs/')")
    await page.wait_for("document.getElementById('trace') !== null", timeout=20)
    steps = await page.eval(
        "[...document.querySelectorAll('#trace tr.step')].map(r => r.innerText)"
    )
    assert steps and any("query_all_records" in s for s in steps)
    facts = await page.eval("document.getElementById('facts').innerText")
    assert "Cache Warming" in facts and re.search(r"succeeded|failed", facts)
    await page.screenshot(ARTIFACTS / "dashboard_run.png")
    # And the tasks page on a phone-sized screen.
    await page.send(
        "Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2,
        mobile=True,
    )  # fmt: skip
    await page.send("Page.navigate", url=daemon + "/")
    await page.wait_for("document.getElementById('tasks') !== null")
    await page.screenshot(ARTIFACTS / "dashboard_tasks_phone.png")
    assert (ARTIFACTS / "dashboard_run.png").stat().st_size > 10_000
