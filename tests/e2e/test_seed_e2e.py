"""The seed's examples, pasted verbatim: they pass `check`, and four of them run end to end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from daemon.cli import main
from tests.conftest import fresh_pg_database, run_sync

REPO = Path(__file__).resolve().parents[2]
SEED = Path(__file__).resolve().parents[1] / "data" / "seed"
SEED_FILES = sorted(p.name for p in SEED.glob("*.json"))

# Tables the seed names that the demo schema does not have (the Resource Management example).
EXTRA_SQL = {
    "sqlite": "CREATE TABLE IF NOT EXISTS large_dataset (id INTEGER PRIMARY KEY, data TEXT);\n",
    "postgres": "CREATE TABLE IF NOT EXISTS large_dataset (id bigserial PRIMARY KEY, data text);\n",
}
REAL_HOSTS = (
    "https://api.sendgrid.com",
    "https://api.stripe.com",
    "https://api.third-party.com",
    "https://hooks.slack.com",
)


# --- a loopback stand-in for SendGrid, Stripe, the third-party API and Slack ----------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeApis:
    """Records every request; the third-party `/data` endpoint answers 500."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)

    def to(self, method: str, path: str) -> list[Received]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    async def handle(self, request: web.Request) -> web.Response:
        text = await request.text()
        body = json.loads(text) if text else None
        self.requests.append(Received(request.method, request.path, dict(request.headers), body))
        path = request.path
        if path.startswith("/v1/customers/"):
            customer = path.rsplit("/", 1)[1]
            return web.json_response({"id": customer, "email": f"{customer}@example.com"})
        if path == "/data":
            # Retry-After: 0 keeps the default GET retries of External API Request instant.
            return web.Response(status=500, text="upstream exploded", headers={"Retry-After": "0"})
        return web.json_response({"ok": True}, status=202 if path == "/v3/mail/send" else 200)


@pytest.fixture
def apis() -> Iterator[FakeApis]:
    """The fake APIs on 127.0.0.1, served from a thread with its own loop (the CLI is sync)."""
    fake = FakeApis()
    started = threading.Event()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        fake.url = f"http://127.0.0.1:{port}"

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(5)
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


# --- databases ----------------------------------------------------------------------------------


@pytest.fixture(params=["postgresql", "sqlite"])
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own for each end-to-end run: a new PostgreSQL database, or a file."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'seed.db'}"
        return
    yield from fresh_pg_database("cronstack_seed")


def query(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a read-only query, on either database (SQL written to suit both)."""
    if db_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]

    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(db_url)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return run_sync(fetch())


def make_config(folder: Path, db_url: str) -> Path:
    """A config on `db_url` named as the seed names it, with the demo tables and large_dataset."""
    flavour = "postgres" if db_url.startswith("postgresql") else "sqlite"
    shutil.copytree(REPO / "sql", folder / "sql", dirs_exist_ok=True)
    (folder / "sql" / "extra.sql").write_text(EXTRA_SQL[flavour])
    (folder / "tasks").mkdir(exist_ok=True)
    text = f"""
[daemon]
timezone = "UTC"

[datasources.primary_database]
url = "{db_url}"
init_sql = ["sql/demo_{flavour}.sql", "sql/extra.sql"]

[http]
allow_hosts = ["127.0.0.0/8", "localhost"]

[admin]
listen = ""
"""
    config = folder / "config.toml"
    config.write_text(text)
    return config


def add_task(folder: Path, source: Path, apis: FakeApis | None = None) -> str:
    """Copy a task file verbatim, except the API hosts, which point at the fake APIs."""
    text = source.read_text()
    if apis is not None:
        for host in REAL_HOSTS:
            text = text.replace(host, apis.url)
    (folder / "tasks" / source.name).write_text(text)
    return source.stem


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else err


# --- every seed example passes check ------------------------------------------------------------


@pytest.mark.parametrize("seed", SEED_FILES)
def test_seed_example_passes_check(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_url: str, seed: str
) -> None:
    """Each seed snippet, pasted verbatim as a task file, passes `check` when its tables exist."""
    config = make_config(tmp_path, db_url)
    add_task(tmp_path, SEED / seed)
    code, doc = cli(capsys, "check", "-c", str(config), "--json")
    assert code == 0 and doc["valid"] is True, doc["errors"]
    assert len(doc["tasks"]) == 1


def test_all_seed_examples_check_together(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_url: str
) -> None:
    """All the seed snippets in one config load side by side and are all listed."""
    config = make_config(tmp_path, db_url)
    for seed in SEED_FILES:
        add_task(tmp_path, SEED / seed)
    code, doc = cli(capsys, "check", "-c", str(config), "--json")
    assert code == 0, doc["errors"]
    assert len(doc["tasks"]) == len(SEED_FILES)
    daily = next(t for t in doc["tasks"] if t["name"] == "daily_report_schedule")
    assert (daily["cron"], daily["timezone"]) == ("0 8 * * *", "America/New_York")


# --- end to end with trigger --------------------------------------------------------------------


def trigger(capsys: pytest.CaptureFixture[str], config: Path, task: str) -> dict[str, Any]:
    code, doc = cli(capsys, "trigger", task, "-c", str(config), "--json")
    assert isinstance(doc, dict), doc
    assert code == (0 if doc["status"] == "succeeded" else 1)
    return doc


def test_daily_report_generation(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    fresh_db: str,
    apis: FakeApis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seed Step 3 writes today's report row and mails it with the SendGrid key from env."""
    monkeypatch.setenv("SENDGRID_API_KEY", "sg-test-key")
    config = make_config(tmp_path, fresh_db)
    name = add_task(tmp_path, SEED / "step3_function_stack.json", apis)
    doc = trigger(capsys, config, name)
    assert doc["status"] == "succeeded", doc["error"]
    assert len(doc["steps"]) == 6
    today = datetime.now(UTC).date().isoformat()
    ((report_date, activities, orders, revenue),) = query(
        fresh_db,
        "SELECT report_date, total_activities, total_orders, total_revenue FROM daily_reports",
    )
    assert (str(report_date), activities, orders) == (today, 2, 2)
    assert Decimal(str(revenue)).quantize(Decimal("0.01")) == Decimal("169.90")
    (mail,) = apis.to("POST", "/v3/mail/send")
    assert mail.headers["Authorization"] == "Bearer sg-test-key"
    assert mail.body["personalizations"][0]["subject"] == f"Daily Report - {today}"
    html = mail.body["content"][0]["value"]
    assert "<p>Activities: 2</p><p>Orders: 2</p><p>Revenue: $169.9" in html


def test_session_archival(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fresh_db: str
) -> None:
    """The archival task moves the sessions older than 30 days and deletes them from the source."""
    config = make_config(tmp_path, fresh_db)
    add_task(tmp_path, REPO / "tasks" / "archive_sessions.json")
    assert cli(capsys, "check", "-c", str(config), "--json")[0] == 0  # the db opens: init_sql
    before = query(fresh_db, "SELECT id, token FROM user_sessions ORDER BY id")
    doc = trigger(capsys, config, "Session Archival")
    assert doc["status"] == "succeeded", doc["error"]
    old = [row for row in before if row[1] in ("old-a", "old-b")]
    assert len(old) == 2
    assert query(fresh_db, "SELECT id, token FROM archived_sessions ORDER BY id") == old
    assert [t for _, t in query(fresh_db, "SELECT id, token FROM user_sessions")] == ["fresh"]
    # nothing is both archived and still live
    moved = query(
        fresh_db,
        "SELECT count(*) FROM archived_sessions a JOIN user_sessions u ON a.id = u.id",
    )
    assert moved == [(0,)]


def test_subscription_reminders(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    fresh_db: str,
    apis: FakeApis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the subscription expiring within 24 h is looked up at Stripe and mailed."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk-test")
    monkeypatch.setenv("SENDGRID_API_KEY", "sg-test-key")
    config = make_config(tmp_path, fresh_db)
    add_task(tmp_path, REPO / "tasks" / "subscription_reminders.json", apis)
    doc = trigger(capsys, config, "Subscription Reminders")  # an inactive task: trigger runs it
    assert doc["status"] == "succeeded", doc["error"]
    assert [r.path for r in apis.requests] == ["/v1/customers/cus_demo1", "/v3/mail/send"]
    (lookup,) = apis.to("GET", "/v1/customers/cus_demo1")
    assert lookup.headers["Authorization"] == "Bearer sk-test"
    (mail,) = apis.to("POST", "/v3/mail/send")
    assert mail.body["personalizations"][0]["to"] == [{"email": "cus_demo1@example.com"}]
    assert "https://example.com/account/renew" in mail.body["content"][0]["value"]


def test_seed_subscription_snippet_names_its_undefined_variable(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    fresh_db: str,
    apis: FakeApis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The verbatim seed snippet never defines renewal_link: the mail step fails naming it."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk-test")
    config = make_config(tmp_path, fresh_db)
    name = add_task(tmp_path, SEED / "subscription_management.json", apis)
    doc = trigger(capsys, config, name)
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "ExpressionError"
    assert "renewal_link" in doc["error"]["message"]
    assert doc["error"]["step"] == "function_stack[1].steps[1]"
    assert apis.to("POST", "/v3/mail/send") == []


def test_try_catch_logs_and_alerts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fresh_db: str, apis: FakeApis
) -> None:
    """The Try-Catch example catches a 500, writes error_logs and posts to the Slack webhook."""
    config = make_config(tmp_path, fresh_db)
    name = add_task(tmp_path, SEED / "try_catch.json", apis)
    doc = trigger(capsys, config, name)
    assert doc["status"] == "succeeded", doc["error"]
    assert apis.to("GET", "/data")
    ((task_name, message, occurred_at),) = query(
        fresh_db, "SELECT task_name, error_message, occurred_at FROM error_logs"
    )
    assert task_name == name
    assert "500" in message and occurred_at is not None
    (alert,) = apis.to("POST", "/services/YOUR/SLACK/WEBHOOK")
    assert alert.body["text"] == f"Background task failed: {name} - {message}"
