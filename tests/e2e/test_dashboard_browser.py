"""The dashboard in headless Chromium against a real `cronstack run`: login, run now, trace,
and the pictures (task page, overview timeline) in light and dark, on a desktop and a phone."""

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
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]
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

    async def screenshot(self, path: Path, *, full: bool = False) -> None:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if full:  # the whole page, not only the window
            size = (await self.send("Page.getLayoutMetrics"))["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                              "scale": 1}  # fmt: skip
        shot = await self.send("Page.captureScreenshot", **params)
        path.write_bytes(base64.b64decode(shot["data"]))

    async def open(self, url: str, ready: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for(f"document.readyState === 'complete' && !!({ready})")

    async def scheme(self, dark: bool) -> None:
        """prefers-color-scheme as the page sees it."""
        value = "dark" if dark else "light"
        await self.send(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": value}],
        )

    async def phone(self, on: bool) -> None:
        """A 390x844 phone screen (2x pixels), or back to the desktop window."""
        if on:
            await self.send(
                "Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2,
                mobile=True,
            )  # fmt: skip
        else:
            await self.send("Emulation.clearDeviceMetricsOverride")

    async def log_in(self, base: str) -> None:
        await self.open(base + "/", "document.getElementById('token') !== null")
        await self.eval(
            f"document.getElementById('token').value = {orjson.dumps(TOKEN).decode()};"
            " document.getElementById('login').click()"
        )
        await self.wait_for("document.getElementById('tasks') !== null")


# An every-second task for the pictures: every fourth second fails, and pausing it records
# missed slots; on the timeline it is a band, not 86,400 ticks.
HEARTBEAT = """
name = "Heartbeat"
description = "every second; every fourth one fails"
schedule = "* * * * * *"
[[function_stack]]
function = "Conditional"
condition = "{{ floor(timestamp / 1000) % 4 == 0 }}"
true_steps = [{ function = "Throw Error", message = "every fourth second fails" }]
"""


@asynccontextmanager
async def _cronstack(tmp_path: Path, extra: dict[str, str]) -> AsyncIterator[str]:
    """`cronstack run` on a copy of the example config, with the admin listener on a free port."""
    work = tmp_path / "site"
    shutil.copytree(REPO / "tasks", work / "tasks")
    shutil.copytree(REPO / "sql", work / "sql")
    for name, text in extra.items():
        (work / "tasks" / name).write_text(text)
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
async def daemon(tmp_path: Path) -> AsyncIterator[str]:
    """The daemon on the example tasks."""
    async with _cronstack(tmp_path, {}) as base:
        yield base


@pytest.fixture
async def busy_daemon(tmp_path: Path) -> AsyncIterator[str]:
    """The daemon on the example tasks plus Heartbeat, an every-second task."""
    async with _cronstack(tmp_path, {"heartbeat.toml": HEARTBEAT}) as base:
        yield base


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
    await page.log_in(daemon)
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


async def _api(base: str, method: str, path: str) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as s, s.request(method, base + path, headers=headers) as r:
        assert r.status < 300, (path, r.status, await r.text())
        return await r.json()


async def _history(base: str) -> None:
    """Some of everything: Heartbeat's successes and failures with a few slots missed while
    paused, Cache Warming's successes, Subscription Reminders' failures."""
    await asyncio.sleep(8)
    await _api(base, "POST", "/api/tasks/Heartbeat/pause")
    await asyncio.sleep(3)
    await _api(base, "POST", "/api/tasks/Heartbeat/resume")
    ran = [
        (await _api(base, "POST", f"/api/tasks/{quote(name)}/run"))["run_id"]
        for name in ["Cache Warming"] * 4 + ["Subscription Reminders"] * 2
    ]
    async with asyncio.timeout(30):
        for run_id in ran:
            while (await _api(base, "GET", f"/api/runs/{run_id}"))["status"] == "running":
                await asyncio.sleep(0.2)
    async with asyncio.timeout(30):  # more than a phone's row of 25 marks
        while len((await _api(base, "GET", "/api/runs?task=Heartbeat&limit=50"))["runs"]) < 30:
            await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # the dashboard's snapshot of recent runs refreshes every second


async def _shoot(page: Page, name: str) -> None:
    """Desktop light and dark, phone light and dark, the whole page each; on the phone nothing
    may be wider than the screen."""
    for phone in (False, True):
        await page.phone(phone)
        for dark in (False, True):
            await page.scheme(dark)
            background = await page.eval("getComputedStyle(document.body).backgroundColor")
            assert background == ("rgb(20, 23, 28)" if dark else "rgb(246, 247, 249)")
            if phone:
                width = await page.eval("document.documentElement.scrollWidth")
                assert width <= 390, (name, width)
            shot = ARTIFACTS / f"dashboard_{name}_{'phone' if phone else 'desktop'}_" \
                f"{'dark' if dark else 'light'}.png"  # fmt: skip
            await page.screenshot(shot, full=True)
            assert shot.stat().st_size > 10_000
    await page.phone(False)
    await page.scheme(False)


async def test_pictures_light_dark_desktop_and_phone(busy_daemon: str, page: Page) -> None:
    """The task page's strip and duration chart and the overview's strips and timeline render
    (glyphs coloured from the scheme, every-second task as a band), shot in both schemes on a
    desktop and a phone into test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    await _history(busy_daemon)
    await page.log_in(busy_daemon)
    strip = "#pictures .wide-only svg.strip"
    await page.open(busy_daemon + "/tasks/Heartbeat", f"document.querySelector('{strip}')")
    kinds = await page.eval(
        f"[...document.querySelectorAll('{strip} use')].map(u => u.getAttribute('href'))"
    )
    assert {"#cs-ok", "#cs-bad", "#cs-ms"} <= set(kinds), kinds
    links = await page.eval(f"document.querySelectorAll('{strip} a').length")
    assert links == len(kinds) and links >= 30
    bars = await page.eval("document.querySelectorAll('#pictures svg.dur rect.d-ok').length")
    assert bars >= 1
    # The glyphs take the scheme's colours (a <use> of DEFS, styled by the page's CSS).
    fill = "getComputedStyle(document.getElementById('cs-ok')).fill"
    assert await page.eval(fill) == "rgb(31, 157, 85)"
    await page.scheme(True)
    assert await page.eval(fill) == "rgb(63, 207, 127)"
    await page.scheme(False)
    width = await page.eval(f"document.querySelector('{strip}').getBoundingClientRect().width")
    assert width > 600
    # On a phone the strip wraps into two rows (the one-row strip would give a run 6 px).
    await page.phone(True)
    shown = "[...document.querySelectorAll('#pictures svg.strip')].map(s => s.checkVisibility())"
    assert await page.eval(shown) == [False, True]
    await page.phone(False)
    await _shoot(page, "task")
    # Clicking a mark opens that run.
    await page.eval(f"document.querySelector('{strip} a:last-of-type')"
                    ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")  # fmt: skip
    await page.wait_for("location.pathname.startsWith('/runs/')")
    await page.wait_for("document.getElementById('facts') !== null")
    assert "Heartbeat" in await page.eval("document.getElementById('facts').innerText")

    await page.open(busy_daemon + "/", "document.querySelector('svg.tl')")
    lanes = await page.eval("document.querySelector('svg.tl').textContent")
    assert "Heartbeat · about every second" in lanes and "Cache Warming · 48 fires" in lanes
    bands = await page.eval("document.querySelectorAll('svg.tl rect.bd').length")
    assert bands >= 1  # Heartbeat, and the every-5/15-minute examples
    strips = await page.eval("document.querySelectorAll('#tasks svg.strip').length")
    assert strips >= 3
    await _shoot(page, "overview")
