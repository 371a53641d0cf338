"""Schema versions: a v1 state database with history moves to the latest with nothing lost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from daemon.resources.db import create_datasource
from daemon.resources.db.base import DataSource
from daemon.state.migrations import LATEST, migrate, migrations
from daemon.state.sql import dialect_named
from tests.conftest import fresh_pg_database


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no test has migrated yet (the module's shared PostgreSQL one has been)."""
    if request.param == "postgresql":
        yield from fresh_pg_database("cronstack_migrate")
    else:
        yield f"sqlite:///{tmp_path / 'v1.db'}"


@pytest.fixture
async def v1(empty_url: str, tmp_path: Path) -> AsyncIterator[DataSource]:
    """A state database as cronstack 1 left it: schema version 1 and three run rows."""
    ds = create_datasource("state", empty_url, base_dir=tmp_path)
    await ds.open()
    await ds.execute(
        "CREATE TABLE cronstack_schema_version (version INTEGER PRIMARY KEY,"
        " applied_at BIGINT NOT NULL)",
        [],
    )
    for statement in dict(migrations(ds.dialect))[1]:
        await ds.execute(statement, [])
    await ds.execute("INSERT INTO cronstack_schema_version VALUES (1, 0)", [])
    insert = (
        "INSERT INTO cronstack_runs (run_id, task, slot_id, scheduled_at, trigger, attempt,"
        " instance, status, started_at, trace) VALUES ($1, $2, $3, $4, $5, $6, 'i', $7, $4, $8)"
    )
    trace = '{"steps": 1}'
    insert = dialect_named(ds.dialect).translate(insert)
    for row in [
        ("r1", "a", "a@1000", 1000, "schedule", 1, "succeeded", trace),
        ("r2", "a", "a@1000", 1000, "retry", 2, "failed", None),
        ("r3", "b", "r3", 1500, "manual", 1, "running", None),
    ]:
        await ds.execute(insert, list(row))
    yield ds
    await ds.close()


async def _rows(ds: DataSource) -> list[tuple[object, ...]]:
    rows = await ds.fetch(
        "SELECT run_id, task, slot_id, scheduled_at, trigger, attempt, status, started_at"
        " FROM cronstack_runs ORDER BY run_id",
        [],
    )
    return [tuple(r.values()) for r in rows]


async def test_v1_history_survives_the_move_to_the_latest_version(v1: DataSource) -> None:
    """Every run row is there after the migration, the version is recorded once, and a second
    start migrates nothing."""
    before = await _rows(v1)
    assert await migrate(v1) == LATEST
    assert await _rows(v1) == before
    assert await migrate(v1) == LATEST
    versions = await v1.fetch("SELECT version FROM cronstack_schema_version ORDER BY version", [])
    assert [r["version"] for r in versions] == list(range(1, LATEST + 1))


async def test_a_slot_stays_unique_after_the_migration(v1: DataSource) -> None:
    """The slot key still refuses a second row for one (slot, attempt); other attempts and
    other slots go in."""
    await migrate(v1)
    insert = (
        "INSERT INTO cronstack_runs (run_id, task, slot_id, scheduled_at, trigger, attempt,"
        " instance, status) VALUES ($1, 'a', $2, $3, 'schedule', $4, 'j', 'running')"
        " ON CONFLICT DO NOTHING"
    )
    insert = dialect_named(v1.dialect).translate(insert)
    assert await v1.execute(insert, ["dup", "a@1000", 1000, 1]) == 0
    assert await v1.execute(insert, ["third", "a@1000", 1000, 3]) == 1
    assert await v1.execute(insert, ["next", "a@2000", 2000, 1]) == 1


async def test_the_latest_schema_has_one_task_ordered_index_on_runs(v1: DataSource) -> None:
    """What v2 is for: inserts touch (task, scheduled_at) and (scheduled_at, slot_id, attempt),
    not a second task-ordered b-tree."""
    await migrate(v1)
    if v1.dialect == "postgresql":
        rows = await v1.fetch(
            "SELECT indexdef AS d FROM pg_indexes WHERE tablename = 'cronstack_runs'", []
        )
    else:
        rows = await v1.fetch(
            "SELECT sql AS d FROM sqlite_master WHERE tbl_name = 'cronstack_runs'"
            " AND type = 'index' AND sql IS NOT NULL",
            [],
        )
    defs = sorted(" ".join(str(r["d"]).split()) for r in rows)
    task_first = [d for d in defs if "(task, scheduled_at)" in d or "(task, slot_id" in d]
    assert len(task_first) == 1, defs
    assert any("UNIQUE" in d and "(scheduled_at, slot_id, attempt)" in d for d in defs), defs
    assert not any(d.endswith("(scheduled_at)") for d in defs), defs
