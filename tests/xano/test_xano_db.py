"""XanoScript `db.*` statements on real PostgreSQL and SQLite: where clauses (table-driven),
return types and paging, single-record and bulk statements, transactions, direct queries."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.core.runs import RunResult
from daemon.engine.compiler import compile_stack
from daemon.engine.runner import run_stack
from daemon.resources.db.base import DataSource
from tests.steps.test_database import DAY, T0, resources, seed_orders
from tests.steps.test_database import ds as ds
from tests.xano.test_xano_statements import REGISTRY, build


async def run_xs(ds: DataSource, body: str) -> RunResult:
    steps, errors = build(body)
    assert not errors, errors
    compiled = compile_stack(steps, registry=REGISTRY, base_path="stack", resources=resources(ds))
    return await run_stack(compiled.steps, resources=resources(ds), data_source="primary")


async def value(ds: DataSource, body: str, result: str = "$r") -> Any:
    done = await run_xs(ds, body + f"\n    return {{ value = {result} }}")
    assert done.status == "succeeded", done.error
    return done.value


PRELUDE = f"""
    var $none {{ value = null }}
    var $t0 {{ value = {T0} }}
    var $day {{ value = {DAY} }}"""


@pytest.mark.parametrize(
    ("where", "ids"),
    [
        ('$db.orders.status == "completed"', [1, 2, 4]),
        ("$db.orders.total > 10", [2, 4]),
        ("10 < $db.orders.total", [2, 4]),
        ('$db.orders.status == "completed" && $db.orders.total < 50', [1, 2]),
        ('$db.orders.status == "pending" || $db.orders.total >= 99', [3, 4]),
        ('$db.orders.status in ["pending", "cancelled"]', [3, 5]),
        ('$db.orders.status not in ["completed"]', [3, 5]),
        ("$db.orders.total == null", [5]),
        ("$db.orders.total != null", [1, 2, 3, 4]),
        ('$db.orders.status like "comp%"', [1, 2, 4]),
        ('$db.orders.status like "COMP%"', []),
        ('$db.orders.status ilike "COMP%"', [1, 2, 4]),
        ('$db.orders.status includes "ENDI"', [3]),
        ('$db.orders.status includes "%"', []),
        ('$db.orders.status not includes "pend"', [1, 2, 4, 5]),
        ("$db.orders.total between [5, 15]", [1, 2]),
        ("$db.orders.total not between [5, 15]", [3, 4]),
        ("$db.orders.paid", [1, 2, 4]),
        ("`$db.orders.paid`", [1, 2, 4]),
        ("!$db.orders.paid", [3]),
        ("!($db.orders.total > 10)", [1, 3]),
        ("$db.orders.total >? $none", [1, 2, 3, 4, 5]),
        ("$db.orders.total >? 10", [2, 4]),
        ("$db.orders.status ==? $none && $db.orders.total < 11", [1, 3]),
        ("$db.orders.created_at >= $t0", [1, 2, 3]),
        ("$db.orders.created_at < ($t0 - $day + 1)", [4]),
        ('$db.orders.created_at >= ("2026-03-08T10:00:00Z"|to_timestamp)', [1, 2, 3]),
    ],
)
async def test_where(ds: DataSource, where: str, ids: list[int]) -> None:
    """Each where translates to SQL that selects the same rows on both databases."""
    await seed_orders(ds)
    body = PRELUDE + f'\n    db.query orders {{ where = {where} sort = {{id: "asc"}} }} as $q'
    assert await value(ds, body, "$q|map:$$.id") == ids


async def test_return_types_paging_sort_output(ds: DataSource) -> None:
    """count, exists, single, a paged envelope with totals, sort and output fields."""
    await seed_orders(ds)
    body = """
    db.query orders { where = $db.orders.status == "completed" return = {type: "count"} } as $n
    db.query orders { where = $db.orders.status == "nope" return = {type: "exists"} } as $e
    db.query orders {
      where = $db.orders.total != null
      sort = {orders.total: "desc"}
      return = {type: "single"}
    } as $top
    db.query orders {
      sort = {id: "asc"}
      return = {type: "list", paging: {page: 2, per_page: 2, totals: true}}
    } as $page
    db.query orders {
      sort = {id: "asc"}
      return = {type: "list", paging: {page: 3, per_page: 2}}
    } as $last
    db.query orders {
      where = $db.orders.paid
      sort = {orders.id: "desc"}
      output = ["id", "status"]
    } as $slim
    return { value = [$n, $e, $top.id, $page, $last, $slim] }"""
    done = await run_xs(ds, body)
    assert done.status == "succeeded", done.error
    n, exists, top, page, last, slim = done.value
    assert (n, exists, top) == (3, False, 4)
    items = page.pop("items")
    assert [i["id"] for i in items] == [3, 4]
    assert page == {
        "itemsReceived": 2,
        "curPage": 2,
        "nextPage": 3,
        "prevPage": 1,
        "offset": 2,
        "perPage": 2,
        "itemsTotal": 5,
        "pageTotal": 3,
    }
    assert [i["id"] for i in last["items"]] == [5]
    assert last["nextPage"] is None and "itemsTotal" not in last
    assert slim == [
        {"id": 4, "status": "completed"},
        {"id": 2, "status": "completed"},
        {"id": 1, "status": "completed"},
    ]


async def test_single_record_statements(ds: DataSource) -> None:
    """get (null on a miss), has, add ("now" is the time of writing), edit and patch (a miss
    is ERROR_CODE_NOT_FOUND), add_or_edit, del."""
    await seed_orders(ds)
    body = """
    db.get orders { field_name = "id" field_value = 2 } as $two
    db.get orders { field_name = "id" field_value = 42 } as $none
    db.has orders { field_name = "status" field_value = "pending" } as $has
    db.add orders { data = {status: "new", total: 5, created_at: "now"} } as $added
    db.edit orders { field_name = "id" field_value = 1 data = {status: "edited"} } as $edited
    var $changes { value = {}|set:"total":42 }
    db.patch orders { field_name = "id" field_value = 3 data = $changes } as $patched
    try_catch {
      try {
        db.edit orders { field_name = "id" field_value = 99 data = {status: "x"} }
      }
      catch {
        var $miss { value = $error.code }
      }
    }
    db.add_or_edit orders {
      field_name = "status"
      field_value = "refunded"
      data = {total: 1}
    } as $up
    db.del orders { field_name = "id" field_value = 5 }
    try_catch {
      try {
        db.del orders { field_name = "id" field_value = 5 }
      }
      catch {
        var $miss { value = $miss ~ " " ~ $error.code }
      }
    }
    db.query orders { return = {type: "count"} } as $count
    return { value = [$two.total, $none, $has, $added, $edited.status, $patched.total, $miss,
      $up.status, $count] }"""
    done = await run_xs(ds, body)
    assert done.status == "succeeded", done.error
    total, none, has, added, edited, patched, miss, up, count = done.value
    assert float(total) == 12.5 and none is None and has is True
    assert added["id"] == 6 and added["status"] == "new"
    assert abs(added["created_at"] - T0) > 0 and added["created_at"] > 1_700_000_000_000
    assert (edited, float(patched), miss, up, count) == (
        "edited",
        42.0,
        "ERROR_CODE_NOT_FOUND ERROR_CODE_NOT_FOUND",
        "refunded",
        6,
    )


async def test_bulk_statements_and_truncate(ds: DataSource) -> None:
    """bulk.add ignores ids unless allowed; bulk.update replaces, bulk.patch merges;
    bulk.delete by where; truncate empties the table."""
    body = """
    db.bulk.add orders { items = [{id: 100, status: "a"}, {id: 200, status: "b"}] } as $added
    db.query orders { sort = {id: "asc"} } as $rows
    db.bulk.patch orders { items = [{id: 1, total: 3}] } as $patched
    db.bulk.update orders { items = [{id: 2, status: "c"}] } as $updated
    db.get orders { field_name = "id" field_value = 1 } as $one
    db.bulk.delete orders { where = $db.orders.status == "c" } as $deleted
    db.query orders { return = {type: "count"} } as $left
    db.truncate orders { reset = true }
    db.query orders { return = {type: "count"} } as $none
    return { value = [$added, $rows|map:$$.id, $patched, $updated, $one.status, $one.total,
      $deleted, $left, $none] }"""
    done = await run_xs(ds, body)
    assert done.status == "succeeded", done.error
    added, ids, patched, updated, status, total, deleted, left, none = done.value
    assert (added, ids, patched, updated, status) == (2, [1, 2], 1, 1, "a")
    assert float(total) == 3 and (deleted, left, none) == (1, 1, 0)


async def test_transaction_rolls_back_and_direct_query(ds: DataSource) -> None:
    """db.transaction undoes its statements on a throw; direct_query binds ? args on both
    databases (single: the first row)."""
    await seed_orders(ds)
    body = """
    try_catch {
      try {
        db.transaction {
          stack {
            db.add orders { data = {status: "tx"} }
            db.del orders { field_name = "id" field_value = 1 }
            throw { name = "Abort" value = "undo" }
          }
        }
      }
      catch {
        var $err { value = $error.name }
      }
    }
    db.direct_query {
      sql = "SELECT id, status FROM orders WHERE status = ? AND total > ? ORDER BY id"
      response_type = "list"
      arg = "completed"
      arg = 10
    } as $rows
    db.direct_query {
      sql = "SELECT count(*) AS n FROM orders WHERE status <> '?'"
      response_type = "single"
    } as $one
    return { value = [$err, $rows, $one] }"""
    done = await run_xs(ds, body)
    assert done.status == "succeeded", done.error
    err, rows, one = done.value
    assert err == "Abort"
    assert rows == [{"id": 2, "status": "completed"}, {"id": 4, "status": "completed"}]
    assert one == {"n": 5}


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("db.query orders { where = $db.orders.nope == 1 } as $q", 'unknown column "nope"'),
        ("db.query order { } as $q", 'unknown table "order"'),
        ('db.get orders { field_name = "nope" field_value = 1 } as $q', 'unknown column "nope"'),
        ("db.add orders { data = {nope: 1} } as $q", 'unknown column "nope"'),
        ("db.query orders { where = $db.orders.total == $db.orders.id } as $q", "two columns"),
        ("db.query orders { where = $db.user.id == 1 } as $q", "not the queried table"),
        (
            'db.query orders { where = ($db.orders.status|to_lower) == "x" } as $q',
            "a filter or expression on a column",
        ),
        ('db.query orders { sort = {id: "rand"} } as $q', "rand"),
        ("db.bulk.delete orders { }", "needs a where"),
    ],
)
def test_load_time_errors(ds: DataSource, statement: str, message: str) -> None:
    """Unknown tables and columns, and where clauses SQL cannot express, are check errors
    naming line 3 of the file."""
    steps, errors = build(statement)
    issues = [e.message for e in errors]
    if not errors:
        from daemon.core.errors import ConfigError

        with pytest.raises(ConfigError) as info:
            compile_stack(steps, registry=REGISTRY, base_path="stack", resources=resources(ds))
        found = [i for i in info.value.issues if i.severity == "error"]
        assert all(i.line == 3 for i in found)
        issues = [i.message for i in found]
    else:
        assert errors[0].line == 3
    assert any(message in i for i in issues), issues
