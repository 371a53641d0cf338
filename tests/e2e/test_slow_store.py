"""`cronstack run` with 100 ms each way to its PostgreSQL state store: fires are not turned into
skips, and a SIGTERM leaves no row running."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pytest

from tests.e2e.test_replicas import Daemon, database, query, started, wait_for, write_config  # noqa: F401
from tests.support.faultproxy import BackgroundFaultProxy, address_of

pytestmark = pytest.mark.slow


def waiting_task(name: str) -> dict[str, object]:
    """An every-second task whose run is claimed first (its step waits, so it is not inline)."""
    return {
        "name": name,
        "schedule": "* * * * * *",
        "function_stack": [
            {"function": "Sleep", "duration": "10ms"},
            {"function": "Create Variable", "name": "x", "value": 1},
        ],
    }


def test_a_slow_state_store_does_not_turn_fires_into_skips(
    tmp_path: Path,
    database: str,  # noqa: F811 - the fixture imported above
) -> None:
    """50 every-second tasks, 200 ms round trips to the store: every slot runs (none skipped
    because the previous run's claim or final state was still on its way), and after SIGTERM
    every row has its final state."""
    with BackgroundFaultProxy(address_of(database)) as proxy:
        url = proxy.url_for(database)
        config = write_config(tmp_path, url, [waiting_task(f"w{i}") for i in range(50)])
        proxy.delay(100)
        daemon = Daemon(config, "slow")
        try:
            wait_for(partial(started, daemon), 30, "the daemon to start")
            first = int(time.time()) + 2
            time.sleep(first + 5 - time.time())
            last = int(time.time()) - 2
            assert daemon.stop() == 0
        finally:
            if daemon.proc.poll() is None:
                daemon.proc.kill()
    rows = query(
        database,
        "SELECT task, scheduled_at, status, reason, started_at FROM cronstack_runs"
        " WHERE scheduled_at BETWEEN $1 AND $2",
        first * 1000,
        last * 1000,
    )
    statuses = [r["status"] for r in rows]

    assert statuses.count("skipped") == 0, [r for r in rows if r["status"] == "skipped"][:3]
    assert len(rows) == 50 * (last - first + 1)
    assert set(statuses) == {"succeeded"}
    left = query(database, "SELECT count(*) AS n FROM cronstack_runs WHERE status = 'running'")
    assert left[0]["n"] == 0
