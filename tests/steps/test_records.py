"""Xano's record steps and Database Transaction on real PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.core.errors import DatabaseError, StepError
from daemon.resources.db.base import DataSource
from tests.steps.test_database import ds as ds
from tests.steps.test_database import run, seed_orders, step_issues


def rec(function: str, **fields: Any) -> dict[str, Any]:
    return {"function": function, "table": "orders", **fields}


async def statuses(ds: DataSource) -> list[tuple[int, str]]:
    rows = await run(ds, [rec("Query All Records", sort="id")])
    return [(r["id"], r["status"]) for r in rows]


async def test_add_or_edit_updates_the_first_match_or_inserts(ds: DataSource) -> None:
    """A match is updated (the lowest id of several); no match inserts data plus the field."""
    await seed_orders(ds)
    row = await run(
        ds,
        [
            rec(
                "Add or Edit Record",
                field_name="status",
                field_value="completed",
                data={"total": 1},
            )
        ],
    )
    assert (row["id"], row["status"], float(row["total"])) == (1, "completed", 1.0)
    row = await run(
        ds,
        [rec("Add or Edit Record", field_name="status", field_value="refunded", data={"total": 7})],
    )
    assert (row["id"], row["status"], float(row["total"])) == (6, "refunded", 7.0)
    row = await run(
        ds,
        [
            rec(
                "Add or Edit Record",
                field_name="id",
                field_value="{{ 3 }}",
                data="{{ {'status': 'shipped'} }}",
            )
        ],
    )
    assert (row["id"], row["status"]) == (3, "shipped")


async def test_patch_record_changes_given_keys_and_misses_fail(ds: DataSource) -> None:
    """Patch changes only `data`'s keys of the first match; no match fails with NOT_FOUND."""
    await seed_orders(ds)
    row = await run(
        ds,
        [rec("Patch Record", field_name="id", field_value=2, data={"status": "refunded"})],
    )
    assert (row["id"], row["status"], float(row["total"])) == (2, "refunded", 12.5)
    with pytest.raises(DatabaseError) as info:
        await run(ds, [rec("Patch Record", field_name="id", field_value=99, data={"paid": True})])
    assert info.value.extra["code"] == "ERROR_CODE_NOT_FOUND"
    assert "no record" in info.value.message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("id", 1, True), ("id", 42, False), ("status", "pending", True), ("status", "x", False)],
)
async def test_has_record(ds: DataSource, field: str, value: Any, expected: bool) -> None:
    """Has Record answers whether a row matches."""
    await seed_orders(ds)
    assert await run(ds, [rec("Has Record", field_name=field, field_value=value)]) is expected


async def test_bulk_update_replaces_and_bulk_patch_merges(ds: DataSource) -> None:
    """Bulk Update sets every column (left-out ones null); Bulk Patch only the given keys;
    both count the records they updated (an unknown id counts nothing)."""
    await seed_orders(ds)
    count = await run(
        ds,
        [rec("Bulk Update Records", items=[{"id": 1, "status": "x"}, {"id": 77, "status": "y"}])],
    )
    assert count == 1
    row = await run(ds, [rec("Get Record", record_id=1)])
    assert (row["status"], row["total"], row["paid"]) == ("x", None, None)
    count = await run(
        ds,
        [rec("Bulk Patch Records", items=[{"id": 2, "status": "p"}, {"id": 3, "paid": True}])],
    )
    assert count == 2
    assert (await statuses(ds))[:3] == [(1, "x"), (2, "p"), (3, "pending")]
    assert (await run(ds, [rec("Get Record", record_id=3)]))["paid"] is True


async def test_bulk_item_errors_roll_back_everything(ds: DataSource) -> None:
    """An item without its id, or with an unknown column, fails the step; nothing is kept."""
    await seed_orders(ds)
    before = await statuses(ds)
    for items in ([{"id": 1, "status": "a"}, {"status": "b"}], [{"id": 1, "nope": 1}]):
        with pytest.raises(DatabaseError):
            await run(ds, [rec("Bulk Patch Records", items=items)])
    assert await statuses(ds) == before


async def test_bulk_delete_and_clear_all(ds: DataSource) -> None:
    """Bulk Delete removes what its filter matches; Clear All Records empties the table and
    (reset) restarts ids."""
    await seed_orders(ds)
    assert await run(ds, [rec("Bulk Delete Records", filter={"status": "completed"})]) == 3
    assert [s for _, s in await statuses(ds)] == ["pending", "cancelled"]
    await run(ds, [rec("Clear All Records", reset=True)])
    assert await statuses(ds) == []
    row = await run(ds, [rec("Add Record", data={"status": "new"})])
    assert row["id"] == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (rec("Bulk Delete Records", filter={}), "filter: an empty filter deletes every record"),
        (rec("Has Record", field_name="nope", field_value=1), 'field_name: unknown column "nope"'),
        (
            rec("Patch Record", field_name="id", field_value=1, data={"nope": 1}),
            'data.nope: unknown column "nope"',
        ),
    ],
)
async def test_load_time_errors(ds: DataSource, raw: dict[str, Any], expected: str) -> None:
    """Unknown columns and an unguarded bulk delete are found when the task loads."""
    issues = step_issues([raw], ds)
    assert any(expected in i for i in issues), issues


def tx(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"function": "Database Transaction", "steps": list(steps)}


async def test_transaction_commits(ds: DataSource) -> None:
    """Statements inside a transaction are kept together when it ends well."""
    await run(ds, [tx(rec("Add Record", data={"status": "a"}), rec("Add Record", data={}))])
    assert [s for _, s in await statuses(ds)] == ["a", "new"]


async def test_transaction_rolls_back_on_error(ds: DataSource) -> None:
    """An error inside undoes every statement of the block (adds, edits, bulk adds) and
    propagates; the data source is usable afterwards."""
    await seed_orders(ds)
    before = await statuses(ds)
    stack = [
        tx(
            rec("Add Record", data={"status": "gone"}),
            rec("Edit Record", record_id=1, data={"status": "changed"}),
            rec("Bulk Add Records", items=[{"status": "b1"}, {"status": "b2"}]),
            {"function": "Throw Error", "message": "boom"},
        )
    ]
    with pytest.raises(StepError, match="boom"):
        await run(ds, stack)
    assert await statuses(ds) == before
    await run(ds, [rec("Add Record", data={"status": "after"})])
    assert (await statuses(ds))[-1][1] == "after"


async def test_nested_transaction_is_a_savepoint(ds: DataSource) -> None:
    """A failing inner block caught by Try-Catch undoes only itself; the outer block commits."""
    inner = tx(rec("Add Record", data={"status": "inner"}), {"function": "Throw Error"})
    stack = [
        tx(
            rec("Add Record", data={"status": "outer"}),
            {"function": "Try-Catch", "try_steps": [inner], "catch_steps": []},
            rec("Add Record", data={"status": "outer2"}),
        )
    ]
    await run(ds, stack)
    assert [s for _, s in await statuses(ds)] == ["outer", "outer2"]


async def test_return_inside_a_transaction_commits(ds: DataSource) -> None:
    """Return (and Break) are not errors: the block commits, then the signal goes on."""
    loop = {
        "function": "For Loop",
        "iterations": 5,
        "steps": [
            tx(
                rec("Add Record", data={"status": "{{ 'n' + index }}"}),
                {"function": "Break Out"},
            )
        ],
    }
    await run(ds, [loop])
    assert [s for _, s in await statuses(ds)] == ["n0"]


async def test_other_runs_wait_for_a_transaction(ds: DataSource) -> None:
    """A statement from another task during a transaction never lands inside it (it waits on
    SQLite, runs on another connection on PostgreSQL), so a rollback keeps it."""
    import asyncio

    started = asyncio.Event()

    async def other() -> None:
        await started.wait()
        await run(ds, [rec("Add Record", data={"status": "other"})])

    async def failing() -> None:
        async with ds.transaction():
            await ds.execute(
                "INSERT INTO orders (status) VALUES (" + ds.placeholder(1) + ")", ["tx"]
            )
            started.set()
            await asyncio.sleep(0.05)
            raise RuntimeError("rollback")

    task = asyncio.create_task(other())
    with pytest.raises(RuntimeError):
        await failing()
    await task
    assert [s for _, s in await statuses(ds)] == ["other"]


@pytest.mark.parametrize(
    ("filter_", "ids"),
    [
        ({"status": {"includes": "ENDI"}}, [3]),
        ({"status": {"not_includes": "pend"}}, [1, 2, 4, 5]),
        ({"status": {"not like": "comp%"}}, [3, 5]),
        ({"total": {"between": [5, 15]}}, [1, 2]),
        ({"total": {"not_between": ["{{ 5 }}", 15]}}, [3, 4]),
        ({"total": {">=?": "{{ null }}"}}, [1, 2, 3, 4, 5]),
        ({"total": {">=?": "{{ 12 }}"}}, [2, 4]),
        ({"$or": [{"status": {"=?": "{{ null }}"}}, {"total": {"<": 4}}]}, [3]),
    ],
)
async def test_json_filter_operators(ds: DataSource, filter_: Any, ids: list[int]) -> None:
    """The operators XanoScript's where needs are JSON filter operators too (`?`: drop the
    condition when its value is null)."""
    await seed_orders(ds)
    rows = await run(ds, [rec("Query All Records", filter=filter_, sort="id")])
    assert [r["id"] for r in rows] == ids


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"return_type": "count", "filter": {"paid": True}}, 3),
        ({"return_type": "exists", "filter": {"status": "x"}}, False),
        ({"return_type": "single", "sort": "-id"}, 5),
        ({"paging": {"page": 1, "per_page": 2, "metadata": False}, "sort": "id"}, [1, 2]),
        ({"paging": {"page": 2, "per_page": 2, "metadata": False}}, [3, 4]),  # by primary key
        ({"return_type": "single", "filter": {"status": "completed"}}, 1),
        (
            {"paging": {"page": "{{ 3 }}", "per_page": 2, "totals": True}, "sort": "id"},
            {
                "itemsReceived": 1,
                "curPage": 3,
                "nextPage": None,
                "prevPage": 2,
                "offset": 4,
                "perPage": 2,
                "itemsTotal": 5,
                "pageTotal": 3,
                "items": [5],
            },
        ),
    ],
)
async def test_query_return_types_and_paging(ds: DataSource, fields: Any, expected: Any) -> None:
    """Query All Records' Xano return types and paging envelope in JSON."""
    await seed_orders(ds)
    got = await run(ds, [rec("Query All Records", **fields)])
    if isinstance(got, dict) and "items" in got:
        got = {**got, "items": [r["id"] for r in got["items"]]}
    elif isinstance(got, list):
        got = [r["id"] for r in got]
    elif isinstance(got, dict):
        got = got["id"]
    assert got == expected


async def test_direct_query_qmarks_and_single(ds: DataSource) -> None:
    """`placeholders: "?"` runs the same SQL on both databases; single gives the first row."""
    await seed_orders(ds)
    row = await run(
        ds,
        [
            {
                "function": "Direct Database Query",
                "sql": "SELECT count(*) AS n FROM orders WHERE status = ? AND total > ?",
                "params": ["completed", 10],
                "placeholders": "?",
                "response_type": "single",
            }
        ],
    )
    assert row == {"n": 2}
