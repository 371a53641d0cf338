"""XanoScript front-end: fixtures, reference snippets, filter binding, positions, syntax errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.errors import Issue
from daemon.xano import (
    FunctionDoc,
    OtherDoc,
    TaskDoc,
    XanoSyntaxError,
    parse_document,
    parse_expression,
)
from daemon.xano.lexer import MAX_SOURCE_CHARS, dedent_triple
from daemon.xano.nodes import (
    Attr,
    Backtick,
    Binary,
    Call,
    DbRef,
    DecimalLit,
    Filter,
    Foreach,
    IntLit,
    StrLit,
    walk,
)
from daemon.xano.nodes import Path as PathNode
from daemon.xano.parser import MAX_DEPTH

FIXTURES = Path("/work/shared/xano/fixtures/task")


def task(body: str) -> TaskDoc:
    doc = parse_document(f"task t {{\n  stack {{\n{body}\n  }}\n}}\n", "t.xs")
    assert isinstance(doc, TaskDoc)
    return doc


def stack_dump(body: str) -> str:
    return " ".join(s.dump() for s in task(body).stack)


def syntax_error(source: str) -> XanoSyntaxError:
    with pytest.raises(XanoSyntaxError) as info:
        parse_document(source, "t.xs")
    return info.value


# --- the two export-style fixtures -----------------------------------------------------------


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared fixtures not present")
def test_fixture_daily_session_cleanup() -> None:
    """Fixture (a): settings, one daily event, and the stack as the compiler will see it."""
    doc = parse_document((FIXTURES / "daily_session_cleanup.xs").read_text(), "a.xs")
    assert isinstance(doc, TaskDoc)
    assert doc.name == "daily_session_cleanup"
    assert doc.description is not None and doc.description.startswith("Every day at 03:00 UTC")
    assert doc.active is True and doc.datasource is None
    assert doc.tags == ("maintenance",) and doc.history == "inherit"
    assert doc.schedule is not None and [e.dump() for e in doc.schedule] == [
        "(event 2025-01-01T03:00:00+00:00 86400)"
    ]
    assert [s.dump() for s in doc.stack] == [
        "(db.query session (where (< $db.session.expires_at now))"
        ' (sort {session.expires_at: "asc"}) (return {type: "list"}) -> $expired)',
        "(var $deleted (value 0))",
        '(foreach $expired $session (db.del session (field_name "id") (field_value $session.id))'
        " (math.add $deleted (value 1)))",
        '(debug.log (value (~ (~ "daily_session_cleanup removed " (|to_text $deleted))'
        ' " sessions")))',
    ]
    assert doc.warnings == ()


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared fixtures not present")
def test_fixture_hourly_order_stats() -> None:
    """Fixture (b): active/datasource, paged query, conditional, multi-line event with ends_on."""
    doc = parse_document((FIXTURES / "hourly_order_stats.xs").read_text(), "b.xs")
    assert isinstance(doc, TaskDoc)
    assert (doc.active, doc.datasource, doc.history) == (True, "live", 1000)
    assert doc.schedule is not None and len(doc.schedule) == 1
    event = doc.schedule[0]
    assert event.starts_on == datetime(2025, 1, 1, 0, 5, tzinfo=UTC)
    assert event.freq == 3600
    assert event.ends_on == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert [type(s).__name__ for s in doc.stack] == [
        "Call",
        "Call",
        "Call",
        "Call",
        "Call",
        "Conditional",
        "Call",
    ]
    assert doc.stack[0].dump() == (
        '(var $hour_ago (value (|transform_timestamp now "-1 hour" "UTC")))'
    )
    assert doc.stack[2].dump() == (
        "(db.query order (where (&& (>= $db.order.created_at $hour_ago)"
        ' (== $db.order.status "paid"))) (sort {order.created_at: "desc"})'
        ' (return {type: "list", paging: {page: 1, per_page: 500, totals: true}}) -> $page)'
    )
    assert doc.stack[3].dump() == "(var $revenue (value (|sum (|map $page.items $this.total))))"
    assert doc.stack[5].dump() == (
        '(conditional (if (>= $paid_count 100) (var.update $bucket (value "high")))'
        ' (elseif (>= $paid_count 10) (var.update $bucket (value "medium")))'
        ' (else (debug.log (value "quiet hour"))))'
    )
    assert doc.stack[6].dump() == (
        '(db.add hourly_stats (data {hour: (|format_timestamp $hour_ago "Y-m-d H:00" "UTC"),'
        " order_count: $paid_count, revenue: (|round $revenue 2), volume_bucket: $bucket,"
        " computed_at: now}) -> $stats_row)"
    )


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared fixtures not present")
def test_fixture_positions() -> None:
    """Nodes carry the 1-based line and column of their token (operators at the operator)."""
    doc = parse_document((FIXTURES / "daily_session_cleanup.xs").read_text(), "a.xs")
    assert isinstance(doc, TaskDoc)
    query = doc.stack[0]
    assert isinstance(query, Call) and (query.line, query.column) == (4, 5)
    where = query.attrs[0]
    assert (where.key, where.line, where.column) == ("where", 5, 7)
    assert isinstance(where.value, Binary) and (where.value.line, where.value.column) == (5, 38)
    assert isinstance(where.value.left, DbRef)
    assert (where.value.left.line, where.value.left.column) == (5, 15)
    loop = doc.stack[2]
    assert isinstance(loop, Foreach) and (loop.line, loop.column, loop.item) == (14, 5, "session")
    assert (loop.body[1].line, loop.body[1].column) == (21, 9)
    assert doc.schedule is not None and (doc.schedule[0].line, doc.schedule[0].column) == (32, 15)


# --- snippets from XANOSCRIPT.md §1.2 to §4 and §5.2/§5.3 ----------------------------------------

# (expression, S-expression dump)
EXPRESSIONS = [
    # §3.1 variables and paths
    ("$db.session.expires_at < now", "(< $db.session.expires_at now)"),
    ("$var.name", "$name"),
    ("$input.field", "$input.field"),
    ("$auth.id", "$auth.id"),
    ("$env.NAME", "$env.NAME"),
    ("$env.$remote_ip", "$env.$remote_ip"),
    ("$a.items.0", "$a.items[0]"),
    ("$a.items.1.price", "$a.items[1].price"),
    ("$list[0]", "$list[0]"),
    ("$list[$i]", "$list[$i]"),
    ("$list[-1]", "$list[-1]"),
    ("$this", "$this"),
    ("$$.id", "$this.id"),
    ("$index + 1", "(+ $index 1)"),
    ("$error.message", "$error.message"),
    ("$r.response.result", "$r.response.result"),
    # §3.2 operators
    ('"a" ~ $x', '(~ "a" $x)'),
    ('5 == "5"', '(== 5 "5")'),
    ("$a === $b", "(=== $a $b)"),
    ("$a !== $b", "(!== $a $b)"),
    ('$v || "default"', '(|| $v "default")'),
    ('$a ?? "fallback"', '(?? $a "fallback")'),
    ('$paid ? "yes" : "no"', '(? $paid "yes" "no")'),
    ("!$exists", "(! $exists)"),
    ("$x % 2", "(% $x 2)"),
    (
        "$db.t.a == 1 && ($db.t.b >? $x || $db.t.c in [1,2])",
        "(&& (== $db.t.a 1) (|| (>? $db.t.b $x) (in $db.t.c [1 2])))",
    ),
    ('$db.t.name ~ "^x"', '(~ $db.t.name "^x")'),
    ('$db.t.name !~ "^x"', '(!~ $db.t.name "^x")'),
    ("$db.t.tags not in $ids", "(not in $db.t.tags $ids)"),
    ('$db.t.name like "%a%"', '(like $db.t.name "%a%")'),
    ("$db.t.name not ilike? $q", "(not ilike? $db.t.name $q)"),
    ("$db.t.doc @> {a: 1}", "(@> $db.t.doc {a: 1})"),
    ('$db.t.tags overlaps ["a"]', '(overlaps $db.t.tags ["a"])'),
    ('$db.t.title includes "x"', '(includes $db.t.title "x")'),
    ("$db.t.price between [1, 9]", "(between $db.t.price [1 9])"),
    ('$db.t.body search "term"', '(search $db.t.body "term")'),
    ("$db.t.n = 1", "(= $db.t.n 1)"),
    ("$db.t.n ==? $maybe", "(==? $db.t.n $maybe)"),
    (
        '$db.t.created_at > ("now"|timestamp_subtract_days:30)',
        '(> $db.t.created_at (|timestamp_subtract_days "now" 30))',
    ),
    ("$db.doc.vec|cosine_distance:$v", "(|cosine_distance $db.doc.vec $v)"),
    ('"Auction " + $a.id + " sold"', '(+ (+ "Auction " $a.id) " sold")'),
    # §3.3 / §3.4 filters
    ("[]|push:1|push:2", "(|push (|push [] 1) 2)"),
    (
        '"hello"|concat:("world"|capitalize):", "',
        '(|concat "hello" (|capitalize "world") ", ")',
    ),
    ("|uuid", "(|uuid _)"),
    ("|range:1:5", "(|range _ 1 5)"),
    ("$rows|map:$$.id", "(|map $rows $this.id)"),
    ("[1,2,3]|reduce:$$+$result:0", "(|reduce [1 2 3] (+ $this $result) 0)"),
    ('"/^a.*c$/"|regex_matches:"abc"', '(|regex_matches "/^a.*c$/" "abc")'),
    ("$s|sha256", "(|sha256 $s)"),
    ("$s|hmac_sha256:$key", "(|hmac_sha256 $s $key)"),
    ("$ts|timestamp_hour", "(|timestamp_hour $ts)"),
    ('"now"|to_timestamp', '(|to_timestamp "now")'),
    ('$updates|set:"k":$v', '(|set $updates "k" $v)'),
    ("$x|!trim|to_lower", "(|to_lower $x)"),
    # §3.5 expression mode
    ("($stores[$$.id == $x]|first).name", "(|first $stores[? (== $this.id $x)]).name"),
    ("($daily_sales[$$].amount)|sum", "(|sum $daily_sales[? $this].amount)"),
    ("$rows[!$$.deleted]", "$rows[? (! $this.deleted)]"),
    ('$rows["key"]', '$rows["key"]'),
    ("$rows[$i + 1]", "$rows[(+ $i 1)]"),
    ("$products.listing.price", "$products.listing.price"),
    ("[...$a, ...$b]", "[...$a ...$b]"),
    ("{...$a, b: 1}", "{...$a, b: 1}"),
    ("1..10", "(.. 1 10)"),
    ("$0.id", "$0.id"),
    ("`$reserve_met`", "(` $reserve_met)"),
    ("```\n  $a\n    + 1\n```", "(` (+ $a 1))"),
    ("`$s|strlen > 4`", "(` (> (|strlen $s) 4))"),
    # §2.1 literals and casts
    ('!text "[1,2]"|json_decode', '(|json_decode (!text "[1,2]"))'),
    ('!int "42"', '(!int "42")'),
    ('!decimal "1.5"', '(!decimal "1.5")'),
    ('!bool "true"', '(!bool "true")'),
    ('!expr "1 + 1"', '(!expr "1 + 1")'),
    ("-1|abs", "(|abs -1)"),
    ("-$x|abs", "(- (|abs $x))"),
    ("1.50", "1.50"),
    ("'single \\'quoted\\''", "\"single 'quoted'\""),
    ('"tab\\there \\u00e9"', '"tab\\there é"'),
    ('"^\\d+$"', '"^\\\\d+$"'),
    ("null", "null"),
    ("true", "true"),
    # §2.3 objects and arrays, §1.6, §5.3
    ('{session.expires_at: "asc"}', '{session.expires_at: "asc"}'),
    (
        '{type: "list"\n paging: {page: 1, per_page: 500, totals: true}}',
        '{type: "list", paging: {page: 1, per_page: 500, totals: true}}',
    ),
    ('{"items.id": 1, 2: "two"}', '{items.id: 1, "2": "two"}'),
    ("[\n  1\n  2,\n  3,\n]", "[1 2 3]"),
    ('{to  : "+1"\n from: $x}', '{to: "+1", from: $x}'),
    ("{!old: 1, old: 2}", "{old: 2}"),
    (
        '{}\n  |set:"id":$item.partner_id\n  |set:"count":($x|add:$item.followers_count)',
        '(|set (|set {} "id" $item.partner_id) "count" (|add $x $item.followers_count))',
    ),
    (
        '{pre: [{name: "mw", active: true, required: false}]\n post: []}',
        '{pre: [{name: "mw", active: true, required: false}], post: []}',
    ),
    (
        '"removed " ~ ($deleted|to_text) ~ " sessions"',
        '(~ (~ "removed " (|to_text $deleted)) " sessions")',
    ),
]


@pytest.mark.parametrize(("source", "expected"), EXPRESSIONS)
def test_reference_expressions(source: str, expected: str) -> None:
    """Every expression snippet of the reference parses to the expected tree."""
    assert parse_expression(source).dump() == expected


# (statement(s) inside a task stack, S-expression dump of the stack)
STATEMENTS = [
    ("var $x { value = 1 }", "(var $x (value 1))"),
    ('var.update $data.name { value = "x" }', '(var.update $data.name (value "x"))'),
    ("var.update $a.items.1.price { value = 2 }", "(var.update $a.items[1].price (value 2))"),
    ('debug.log { value = "x" }', '(debug.log (value "x"))'),
    (
        'db.get "user" { field_name = "id" field_value = $id } as $u',
        '(db.get "user" (field_name "id") (field_value $id) -> $u)',
    ),
    ("db.query user as $users", "(db.query user -> $users)"),
    ("security.create_uuid as $id", "(security.create_uuid -> $id)"),
    ("util.get_env as $e", "(util.get_env -> $e)"),
    ("array.pop $list as $last", "(array.pop $list -> $last)"),
    ("array.find $a if ($this.id == 3) as $x", "(array.find $a (if (== $this.id 3)) -> $x)"),
    ("array.map ($a) { by = $this.id } as $r", "(array.map $a (by $this.id) -> $r)"),
    (
        "array.union ($a) { value = $b  by = $this.id } as $r",
        "(array.union $a (value $b) (by $this.id) -> $r)",
    ),
    ("math.bitwise.and $x { value = 1 }", "(math.bitwise.and $x (value 1))"),
    ('text.append $s { value = "!" }', '(text.append $s (value "!"))'),
    ("object.keys { value = $obj } as $k", "(object.keys (value $obj) -> $k)"),
    (
        'function.run "cron_jobs/Archive expired events" { input = {a: 1} } as $r',
        '(function.run "cron_jobs/Archive expired events" (input {a: 1}) -> $r)',
    ),
    ('function.run "x" as $f', '(function.run "x" -> $f)'),
    ("function.run fn_Claim as $f", "(function.run fn_Claim -> $f)"),
    ("function.run utils/format_date as $d", "(function.run utils/format_date -> $d)"),
    (
        'api.request {\n  url = "https://x"\n  method = "GET"\n'
        '  headers = []|push:"Authorization: Bearer " ~ $env.TOKEN\n} as $r',
        '(api.request (url "https://x") (method "GET")'
        ' (headers (|push [] (~ "Authorization: Bearer " $env.TOKEN))) -> $r)',
    ),
    (
        'api.lambda { code = """\n      return 1;\n    """ timeout = 10 } as $r',
        '(api.lambda (code "return 1;") (timeout 10) -> $r)',
    ),
    (
        'db.direct_query {\n  sql = "select ?, ?"\n  response_type = "list"\n  arg = 1\n'
        "  arg = $x\n} as $rows",
        '(db.direct_query (sql "select ?, ?") (response_type "list") (arg 1) (arg $x) -> $rows)',
    ),
    (
        "db.bulk.delete t { search = $db.t.expired == true } as $n",
        "(db.bulk.delete t (search (== $db.t.expired true)) -> $n)",
    ),
    (
        'db.edit t { field_name = "id" field_value = 1 data = {!old: 1, name: "x"} }',
        '(db.edit t (field_name "id") (field_value 1) (data {name: "x"}))',
    ),
    ("db.add 48 { data = {} } as row1", "(db.add 48 (data {}) -> $row1)"),
    ("await $req as $res", "(await $req -> $res)"),
    ("await { ids = [] timeout = 10 } as $r", "(await (ids []) (timeout 10) -> $r)"),
    ("util.sleep { value = 0.5 }", "(util.sleep (value 0.5))"),
    ("!var $x { value = 1 }", "(!var $x (value 1))"),
    ("var $x {\n  !value = 1\n  value = 2\n}", "(var $x (value 2))"),
    (
        "db.query t {\n  where = `$db.recipe.is_published`\n} as $r",
        "(db.query t (where (` $db.recipe.is_published)) -> $r)",
    ),
    ('db.add t { data = {}\n  |set:"a":1 } as $row', '(db.add t (data (|set {} "a" 1)) -> $row)'),
    (
        "db.query t {\n  stack {\n    var $a { value = 1 }\n  }\n}",
        "(db.query t (stack (var $a (value 1))))",
    ),
    (
        "conditional {\n  if ($a > 1) {\n    var $b { value = 1 }\n  }\n  elseif ($a > 0)\n"
        "  else {\n  }\n}",
        "(conditional (if (> $a 1) (var $b (value 1))) (elseif (> $a 0)) (else))",
    ),
    (
        'conditional {\n  description = "branch"\n  if (`$a > 1`) {\n  }\n}',
        '(conditional (description "branch") (if (` (> $a 1))))',
    ),
    (
        "switch ($x) {\n  case (1) {\n    var $y { value = 1 }\n  } break\n  case (2) break\n"
        "  default {\n    var $y { value = 0 }\n  }\n}",
        "(switch $x (case 1 (var $y (value 1)) break) (case 2 break) (default (var $y (value 0))))",
    ),
    (
        "foreach ($rows) {\n  each as $row {\n    continue\n  }\n}",
        "(foreach $rows $row (continue))",
    ),
    (
        "foreach ($rows) {\n  each as item {\n    foreach.remove\n    remove\n    break\n  }\n}",
        "(foreach $rows $item (remove) (remove) (break))",
    ),
    ("for (10) {\n  each as $i {\n  }\n}", "(for 10 $i)"),
    (
        "while ($n < 3) {\n  each {\n    math.add $n { value = 1 }\n  }\n}",
        "(while (< $n 3) (math.add $n (value 1)))",
    ),
    (
        'try_catch {\n  try {\n    throw { name = "X" value = "msg" }\n  }\n  catch {\n'
        "    debug.log { value = $error.message }\n  }\n  finally {\n  }\n}",
        '(try_catch (try (throw (name "X") (value "msg")))'
        " (catch (debug.log (value $error.message))) (finally))",
    ),
    (
        'group {\n  description = "setup"\n  stack {\n    var $a { value = 1 }\n  }\n}',
        '(group (description "setup") (var $a (value 1)))',
    ),
    (
        "db.transaction {\n  stack {\n    db.add t { data = {a: 1} }\n  }\n}",
        "(db.transaction (db.add t (data {a: 1})))",
    ),
    ("return { value = $x }", "(return (value $x))"),
    (
        'precondition ($m != null) {\n  error_type = "notfound"\n  error = "missing"\n'
        "  payload = $m\n}",
        '(precondition (!= $m null) (error_type "notfound") (error "missing") (payload $m))',
    ),
    (
        'precondition if (`$m != null`) {\n  error = "missing"\n}',
        '(precondition (` (!= $m null)) (error "missing"))',
    ),
    (
        'db.query t {\n  join = {u: {table: "u", type: "left", where: $db.t.uid == $db.u.id}}\n'
        '  eval = {name: $db.u.name}\n  sort = {t.created_at: "desc"}\n'
        '  return = {type: "list", paging: {page: 1, per_page: 25}}\n} as $r',
        '(db.query t (join {u: {table: "u", type: "left", where: (== $db.t.uid $db.u.id)}})'
        ' (eval {name: $db.u.name}) (sort {t.created_at: "desc"})'
        ' (return {type: "list", paging: {page: 1, per_page: 25}}) -> $r)',
    ),
    (
        "var $a {\n  value = 1 // trailing comment\n} // after the brace\n// own line\n"
        "var $b { value = 2 }",
        "(var $a (value 1)) (var $b (value 2))",
    ),
    (
        "db.query t {\n  where = $db.t.a == 1\n    && $db.t.b == 2\n  search = $x\n}",
        "(db.query t (where (&& (== $db.t.a 1) (== $db.t.b 2))) (search $x))",
    ),
    ("security.create_uuid\nvar $x { value = 1 }", "(security.create_uuid) (var $x (value 1))"),
    (
        'db.get t { field_name = "id" field_value = 1 } as $cache.user',
        '(db.get t (field_name "id") (field_value 1) -> $cache.user)',
    ),
    (
        'function.run "HubSpot/Hubspot -> Update Object" as $h',
        '(function.run "HubSpot/Hubspot -> Update Object" -> $h)',
    ),
]


@pytest.mark.parametrize(("source", "expected"), STATEMENTS)
def test_reference_statements(source: str, expected: str) -> None:
    """Every statement snippet of the reference parses to the expected tree."""
    assert stack_dump(source) == expected


def test_snippet_tables_cover_the_reference() -> None:
    """The brief asks for at least 60 reference snippets across statements and expressions."""
    assert len(EXPRESSIONS) + len(STATEMENTS) >= 60


# --- precedence and filter binding (§3.2, §3.3) ----------------------------------------------

BINDING = [
    ("$x|add:1 * 2", "(|add $x (* 1 2))"),
    ("$a|get:0 == 1", "(|get $a (== 0 1))"),
    ('[]|push:"Bearer " ~ $t|push:"X: y"', '(|push (|push [] (~ "Bearer " $t)) "X: y")'),
    ("($arr|count) > 3", "(> (|count $arr) 3)"),
    ("$x|add:$y|mul:2", "(|mul (|add $x $y) 2)"),
    ('"a" ~ $x|to_upper', '(~ "a" (|to_upper $x))'),
    ("$a|f:($b|g:1):2", "(|f $a (|g $b 1) 2)"),
    ("$a|f:{k: $c ? 1 : 2}", "(|f $a {k: (? $c 1 2)})"),
    ("$x\n  |trim\n  |to_lower", "(|to_lower (|trim $x))"),
    ('$x|set:"a":1\n  |set:"b":2', '(|set (|set $x "a" 1) "b" 2)'),
    ("1 + 2 * 3 - 4 / 5 % 6", "(- (+ 1 (* 2 3)) (% (/ 4 5) 6))"),
    ('"a" ~ 1 + 2', '(+ (~ "a" 1) 2)'),
    ("$a == 1 && $b == 2 || $c", "(|| (&& (== $a 1) (== $b 2)) $c)"),
    ("$a || $b ?? $c", "(?? (|| $a $b) $c)"),
    ("$a ?? $b ? 1 : 2", "(? (?? $a $b) 1 2)"),
    ("$a ? 1 : $b ? 2 : 3", "(? $a 1 (? $b 2 3))"),
    ("!$a && $b", "(&& (! $a) $b)"),
    ("-$a * 2", "(* (- $a) 2)"),
    ("$a < $b == $c", "(== (< $a $b) $c)"),
    ("1..$n + 1", "(.. 1 (+ $n 1))"),
    ("$a ==?$b", "(==? $a $b)"),
    ("$a == $b ? 1 : 2", "(? (== $a $b) 1 2)"),
]


@pytest.mark.parametrize(("source", "expected"), BINDING)
def test_precedence_and_filter_binding(source: str, expected: str) -> None:
    """Operators follow §3.2's recommended precedence; filter arguments bind per §3.3."""
    assert parse_expression(source).dump() == expected


@pytest.mark.parametrize(
    ("source", "column", "suggestion"),
    [
        ("$arr|count > 3", 12, "write ($arr|count) > 3"),
        ('$s|to_text ~ "x"', 12, 'write ($s|to_text) ~ "x"'),
        ("$a|count ? 1 : 2", 10, "write ($a|count) ? 1 : 2"),
        ("$x|f:1|count == [1, 2]", 14, "write ($x|f:1|count) == [1, 2]"),
    ],
)
def test_filter_without_arguments_then_operator(source: str, column: int, suggestion: str) -> None:
    """`$arr|count > 3` is an error (§3.3 rule 2) whose message shows the parenthesised form."""
    with pytest.raises(XanoSyntaxError) as info:
        parse_expression(source)
    assert (info.value.line, info.value.column) == (1, column)
    assert info.value.message.endswith(suggestion)


def test_literal_types() -> None:
    """Integers are int, decimals Decimal (exact source value), strings decoded."""
    whole = parse_expression("[1, -2, 0.10, -1.5]")
    values = [getattr(item, "value", None) for item in getattr(whole, "items", ())]
    assert values == [1, -2, Decimal("0.10"), Decimal("-1.5")]
    assert isinstance(parse_expression("0.10"), DecimalLit)
    assert isinstance(parse_expression("7"), IntLit)


def test_backtick_positions_map_into_the_file() -> None:
    """Tokens inside a backtick expression keep their real line and column."""
    doc = task("    conditional {\n      if (`$a >\n  1`) {\n      }\n    }")
    cond = doc.stack[0].branches[0].cond  # type: ignore[attr-defined]
    assert isinstance(cond, Backtick) and (cond.line, cond.column) == (4, 11)
    assert isinstance(cond.expr, Binary) and (cond.expr.line, cond.expr.column) == (4, 15)
    assert (cond.expr.right.line, cond.expr.right.column) == (5, 3)


def test_positions_after_a_triple_quoted_string() -> None:
    """A multi-line string advances the line count; the next token's position is exact."""
    doc = task(
        '    var $s {\n      value = """\n        a\n        b\n        """\n    }\n    var $t'
    )
    second = doc.stack[1]
    assert (second.line, second.column) == (9, 5)
    first = doc.stack[0].attrs[0].value
    assert isinstance(first, StrLit) and first.value == "a\nb"


def test_crlf_and_bom_give_the_same_positions() -> None:
    """Windows line ends and a BOM do not shift lines or columns."""
    source = "task t {\n  stack {\n    var $x { value = $a|count > 1 }\n  }\n}\n"
    plain = syntax_error(source)
    windows = syntax_error("\ufeff" + source.replace("\n", "\r\n"))
    assert (plain.line, plain.column) == (windows.line, windows.column) == (3, 31)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("\n  SELECT 1\n  FROM t\n", "SELECT 1\nFROM t"),
        ("\n    a\n      b\n  ", "a\n  b"),
        ("one line", "one line"),
        ("\n  a\n\n  b\n", "a\n\nb"),
        ("\n\tx\n\ty\n", "x\ny"),
        ("", ""),
    ],
)
def test_triple_quoted_dedent(body: str, expected: str) -> None:
    """§6.19: drop the first newline, the closing line, and the common indentation."""
    assert dedent_triple(body) == expected


# --- documents -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("schedule = [{starts_on: 2025-01-01 00:00:00+0000, freq: 86400}]", ["0:00 86400 -"]),
        (
            "schedule = [\n    {starts_on: 2025-01-01 09:00:00+0000, freq: 86400}\n"
            "    {starts_on: 2025-01-01 21:00:00+0000, freq: 86400, ends_on: "
            "2025-12-31 23:59:59+0000}\n  ]",
            ["9:00 86400 -", "21:00 86400 2025-12-31 23:59:59+00:00"],
        ),
        (
            "schedule {\n    events = [\n      {starts_on: 2025-03-17 18:33:55+0000, freq: 172800}"
            "\n    ]\n  }",
            ["18:33 172800 -"],
        ),
        (
            "schedule {\n    events = [\n      {\n        starts_on: 2025-03-17 18:34:02+0000,\n"
            "        freq     : 604800,\n      }\n    ]\n  }",
            ["18:34 604800 -"],
        ),
        ("schedule = [{starts_on: 2025-01-01 08:00:00-0500}]", ["13:00 None -"]),
        ('schedule = [{starts_on: "2025-01-01 00:00:00+0000"}]', ["0:00 None -"]),
        ("schedule = []", []),
        ("schedule {\n    events = []\n  }", []),
        ("schedule {\n  }", []),
        ("schedule", []),
    ],
)
def test_schedule_forms(schedule: str, expected: list[str]) -> None:
    """Both schedule syntaxes, separators, offsets, one-shot events and empty schedules."""
    doc = parse_document(f"task t {{\n  stack {{\n  }}\n  {schedule}\n}}\n", "t.xs")
    assert isinstance(doc, TaskDoc) and doc.schedule is not None
    got = []
    for event in doc.schedule:
        start = event.starts_on.astimezone(UTC)
        ends = str(event.ends_on.astimezone(UTC)) if event.ends_on else "-"
        got.append(f"{start.hour}:{start.minute:02d} {event.freq} {ends}")
    assert got == expected


def test_schedule_offsets_are_fixed_aware_datetimes() -> None:
    """A -0500 offset becomes a fixed-offset aware datetime (no DST, §6.8)."""
    doc = parse_document(
        "task t {\n  schedule = [{starts_on: 2025-06-01 08:00:00-0530}]\n}\n", "t.xs"
    )
    assert isinstance(doc, TaskDoc) and doc.schedule
    assert doc.schedule[0].starts_on.tzinfo == timezone(-timedelta(hours=5, minutes=30))


def test_task_without_schedule_and_defaults() -> None:
    """No schedule means None (not empty); active defaults to true; datasource unset."""
    doc = parse_document("task t {\n  stack {\n  }\n}\n", "t.xs")
    assert isinstance(doc, TaskDoc)
    assert (doc.schedule, doc.active, doc.datasource, doc.stack) == (None, True, None, ())


def test_task_settings_and_description_from_comments() -> None:
    """Leading `//` lines are the description; every documented setting is read."""
    source = (
        "// Sync the CRM.\n//   Every hour.\n\n"
        'task "crm sync — Bob\'s" {\n'
        "  active = false\n"
        '  datasource = "test"\n'
        '  tags = ["crm", "sync"]\n'
        '  docs = "see wiki"\n'
        '  middleware = {pre: [{name: "mw", active: true}] post: []}\n'
        "  stack {\n  }\n"
        "  schedule = []\n"
        '  guid = "abc-123"\n'
        "  history = {inherit: true}\n"
        '  test "it works" {\n    expect.to_equal ($x) {\n      value = 1\n    }\n  }\n'
        "}\n"
    )
    doc = parse_document(source, "t.xs")
    assert isinstance(doc, TaskDoc)
    assert doc.name == "crm sync — Bob's"
    assert doc.description == "Sync the CRM.\n  Every hour."
    assert (doc.active, doc.datasource, doc.tags) == (False, "test", ("crm", "sync"))
    assert (doc.docs, doc.guid, doc.history, doc.schedule) == ("see wiki", "abc-123", "inherit", ())
    assert doc.middleware is not None and doc.middleware.dump() == (
        '{pre: [{name: "mw", active: true}], post: []}'
    )
    assert (doc.line, doc.column) == (4, 1)
    assert doc.warnings == ()


def test_description_setting_wins_over_comments() -> None:
    """An explicit `description =` is the description even when comments precede the task."""
    source = '// comment\ntask t {\n  description = """\n    Long\n    text\n  """\n}\n'
    doc = parse_document(source, "t.xs")
    assert isinstance(doc, TaskDoc) and doc.description == "Long\ntext"


@pytest.mark.parametrize(
    ("value", "expected"),
    [('"inherit"', "inherit"), ('"all"', "all"), ("all", "all"), ("false", False), ("1000", 1000)],
)
def test_history_values(value: str, expected: object) -> None:
    """§6.11: every documented history value is kept as written."""
    doc = parse_document(f"task t {{\n  history = {value}\n}}\n", "t.xs")
    assert isinstance(doc, TaskDoc) and doc.history == expected


def test_unknown_task_settings_are_warnings() -> None:
    """Unknown settings are skipped with a warning naming them; parsing goes on."""
    source = (
        'task t {\n  cache = {ttl: 1, headers: ["a"]}\n  retry {\n    max = 3\n  }\n'
        "  stack {\n    var $x { value = 1 }\n  }\n}\n"
    )
    doc = parse_document(source, "t.xs")
    assert isinstance(doc, TaskDoc) and len(doc.stack) == 1
    assert [(w.path, w.line, w.column, w.severity) for w in doc.warnings] == [
        ("cache", 2, 3, "warning"),
        ("retry", 3, 3, "warning"),
    ]


def test_function_document() -> None:
    """A function: name with `/`, typed inputs (§4.7, §5.3 item 12), stack and response."""
    source = (
        "// Clears stale carts.\n"
        'function "cart/clear_stale" {\n'
        "  input {\n"
        "    int forms_limit?=50 filters=min:1|max:200\n"
        "    text? name? filters=trim|lower\n"
        '    text role?="user" {\n      description = "Role"\n    }\n'
        "    text[] tags\n"
        "    int[1:10] scores\n"
        "    object address {\n      schema {\n        text street filters=trim\n      }\n    }\n"
        '    enum status {\n      values = ["a", "b"]\n    }\n'
        "    text phone filters=pattern:^\\+?[1-9]\\d{1,14}$\n"
        "    image ?avatar?\n"
        '    dblink {\n      table = "user"\n    }\n'
        "  }\n"
        "  stack {\n    var $x { value = $input.forms_limit }\n  }\n"
        "  response = $x\n"
        "}\n"
    )
    doc = parse_document(source, "f.xs")
    assert isinstance(doc, FunctionDoc)
    assert (doc.name, doc.description) == ("cart/clear_stale", "Clears stale carts.")
    assert [p.dump() for p in doc.inputs] == [
        "(param int forms_limit? (default 50) (filters min:1 max:200))",
        "(param text? name? (filters trim lower))",
        '(param text role? (default "user") (description "Role"))',
        "(param text[] tags)",
        "(param int[1:10] scores)",
        "(param object address (schema (param text street (filters trim))))",
        '(param enum status (values ["a" "b"]))',
        "(param text phone (filters pattern:^\\+?[1-9]\\d{1,14}$))",
        "(param image? avatar?)",
        '(param dblink (table "user"))',
    ]
    assert doc.inputs[0].filters[1].column == 39
    assert [s.dump() for s in doc.stack] == ["(var $x (value $input.forms_limit))"]
    assert doc.response is not None and doc.response.dump() == "$x"


def test_real_export_style_task() -> None:
    """§5.3: a task as real exports write it (comments, empty stack, guid last, `+` on text)."""
    source = (
        "// Notify when parts arrive\n"
        "\n"
        'task "Bob\'s partsArrival" {\n'
        "  // inside the task, before the stack\n"
        "  stack {\n"
        "    // a comment between statements\n"
        "    db.query parts {\n"
        "      where = $db.parts.arrived == true\n"
        "    } as $arrived\n"
        "\n"
        "    foreach ($arrived) {\n"
        "      each as $part {\n"
        "        conditional {\n"
        "          if (`$part.reserve_met`) {\n"
        "          }\n"
        "        }\n"
        "\n"
        "        db.edit parts {\n"
        '          field_name = "id"\n'
        "          field_value = $part.id\n"
        '          data = {notified_at: "now"}\n'
        "        }\n"
        "\n"
        "        debug.log {\n"
        '          value = "Part " + $part.id + " arrived"\n'
        "        }\n"
        "      }\n"
        "    }\n"
        "  }\n"
        "\n"
        "  schedule = [{starts_on: 2025-05-01 10:00:00+0000, freq: 120}]\n"
        '  guid = "9f0c"\n'
        "}\n"
    )
    doc = parse_document(source, "task/bob_s_parts_arrival.xs")
    assert isinstance(doc, TaskDoc)
    assert (doc.name, doc.description, doc.guid) == (
        "Bob's partsArrival",
        "Notify when parts arrive",
        "9f0c",
    )
    assert [s.dump() for s in doc.stack] == [
        "(db.query parts (where (== $db.parts.arrived true)) -> $arrived)",
        "(foreach $arrived $part (conditional (if (` $part.reserve_met)))"
        ' (db.edit parts (field_name "id") (field_value $part.id) (data {notified_at: "now"}))'
        ' (debug.log (value (+ (+ "Part " $part.id) " arrived"))))',
    ]
    empty = parse_document("task camelCaseTask {\n  stack {}\n}\n", "t.xs")
    assert isinstance(empty, TaskDoc) and empty.stack == ()


def test_function_name_as_a_static_path() -> None:
    """An unquoted function name may be an `a/b` path (§2.2)."""
    doc = parse_document("function utils/format_date {\n  stack {\n  }\n}\n", "f.xs")
    assert isinstance(doc, FunctionDoc) and doc.name == "utils/format_date"


def test_function_old_response_block() -> None:
    """Old beta `response { value = … }` reads as the response expression (§5.2)."""
    doc = parse_document(
        "function f {\n  input {\n  }\n  stack {\n  }\n  response {\n    value = 1\n  }\n}\n",
        "f.xs",
    )
    assert isinstance(doc, FunctionDoc) and doc.response is not None
    assert doc.response.dump() == "1"


@pytest.mark.parametrize(
    ("source", "kind", "name", "warnings"),
    [
        ("table user {\n  schema {\n    int id\n  }\n}\n", "table", "user", 0),
        (
            "query users/{user_id} verb=GET {\n  input {\n    text q filters=pattern:^[{]\n"
            "  }\n  stack {\n    # not xanoscript\n  }\n}\n",
            "query",
            "users/{user_id}",
            1,  # the "{" inside the regex unbalances the count: a warning, not an error
        ),
        ('// an addon\naddon "post comments" {\n  stack {\n  }\n}\n', "addon", "post comments", 0),
        ("middleware auth_check {\n  stack {\n", "middleware", "auth_check", 1),
        ("workspace my_ws {\n  acceptance = {ai_terms: false}\n}\n", "workspace", "my_ws", 0),
        ("realtime_channel chat {\n}\n", "realtime_channel", "chat", 0),
    ],
)
def test_other_documents_are_named_and_skipped(
    source: str, kind: str, name: str, warnings: int
) -> None:
    """Non-task constructs give their keyword and name; their body never fails the load."""
    doc = parse_document(source, "o.xs")
    assert isinstance(doc, OtherDoc)
    assert (doc.kind, doc.name, len(doc.warnings)) == (kind, name, warnings)


def test_syntax_error_as_issue() -> None:
    """A XanoSyntaxError is a ValueError and converts to the project's Issue."""
    error = syntax_error("task t {\n  stack {\n    var $x { value = (1 }\n  }\n}\n")
    assert isinstance(error, ValueError)
    assert str(error).startswith("t.xs:3:25: ")
    assert error.as_issue() == Issue("t.xs", "", error.message, 3, 25)


def test_walk_visits_every_node() -> None:
    """`walk` reaches nested expression nodes (the compiler's and the array-filter rule's tool)."""
    expr = parse_expression("{a: [$x|f:($y + 1)]}")
    kinds = [type(n).__name__ for n in walk(expr)]
    assert kinds == ["ObjectLit", "Entry", "ArrayLit", "Filter", "Var", "Binary", "Var", "IntLit"]
    path = parse_expression("$a.b[0]")
    assert isinstance(path, PathNode) and [s.dump() for s in path.segments] == [".b", "[0]"]
    filtered = parse_expression("$a|f:1")
    assert isinstance(filtered, Filter) and isinstance(filtered.args[0], IntLit)
    attr = Attr(key="k", value=filtered, line=1, column=1)
    assert repr(attr) == "(k (|f $a 1))"


# --- syntax errors: position and message ------------------------------------------------------

T = "task t {\n  stack {\n%s\n  }\n}\n"

# (source, line, column, message fragment)
ERRORS = [
    (
        "task t {\n  stack {\n    var $x { value = 1 }\n",
        4,
        1,
        'expected "}" to close the stack opened at line 2',
    ),
    ("task t {\n  stack {\n  }\n", 4, 1, 'expected "}" to close the task opened at line 1'),
    (
        "task t {\n  stack {\n    debug.log {\n      value = 1\n",
        5,
        1,
        'expected "}" to close the debug.log block opened at line 3',
    ),
    (
        T % "    conditional {\n      if ($a) {\n      }\n      else if ($b) {\n      }\n    }",
        6,
        7,
        '"else if" is not XanoScript: write "elseif (…)"',
    ),
    (
        T % "    var $n { value = $arr|count > 3 }",
        3,
        33,
        "a filter without arguments cannot be followed by an operator: write ($arr|count) > 3",
    ),
    (
        T % "    var $n {\n      value = $a|count\n        && $b\n    }",
        5,
        9,
        "write ($a|count) && $b",
    ),
    (
        T % "    var $o { value = {a: 1, b: 2, a: 3} }",
        3,
        35,
        'duplicate key "a" in the object (first at line 3, column 23)',
    ),
    (
        "task t {\n  schedule = [{starts_on: 2025-13-01 00:00:00+0000, freq: 60}]\n}\n",
        2,
        27,
        'invalid timestamp "2025-13-01 00:00:00+0000": month must be in 1..12',
    ),
    (
        "task t {\n  schedule = [{starts_on: 2025-02-30 00:00:00+0000}]\n}\n",
        2,
        27,
        "day is out of range for month",
    ),
    (
        "task t {\n  schedule = [{starts_on: 2025-01-01 00:00:00}]\n}\n",
        2,
        27,
        "write YYYY-MM-DD HH:MM:SS+0000",
    ),
    ("task t {\n  schedule = [{freq: 60}]\n}\n", 2, 15, "a schedule event needs starts_on"),
    (
        "task t {\n  schedule = [{starts_on: 2025-01-01 00:00:00+0000, every: 60}]\n}\n",
        2,
        53,
        'unknown schedule event key "every"',
    ),
    (
        "task t {\n  schedule = [{starts_on: 2025-01-01 00:00:00+0000, freq: 0}]\n}\n",
        2,
        59,
        "freq is a whole number of seconds greater than 0",
    ),
    (
        T % "    var $o { value = {a = 1} }",
        3,
        25,
        'write "a: value" in an object: keys take ":", not "="',
    ),
    (
        "task t {\n  schedule = [{starts_on = 2025-01-01 00:00:00+0000}]\n}\n",
        2,
        26,
        'keys take ":", not "="',
    ),
    (
        "task a {\n  stack {\n  }\n}\ntask b {\n  stack {\n  }\n}\n",
        5,
        1,
        'a .xs file holds one construct; a second one ("task") starts here',
    ),
    ("task a {\n}\n---\ntask b {\n}\n", 3, 1, "split a multidoc export"),
    ("table a {\n}\ntask b {\n}\n", 3, 1, 'a second one ("task") starts here'),
    # 5000 levels: refused at the level that passes MAX_DEPTH (the task, its stack, the var
    # block and the value already count 4), with a message, never a RecursionError
    (
        T % ("    var $x { value = " + "(" * 5000 + "1" + ")" * 5000 + " }"),
        3,
        119,
        f"nesting deeper than {MAX_DEPTH} levels",
    ),
    (T % ("    var $x { value = " + "[" * 5000 + "]" * 5000 + " }"), 3, 119, "nesting deeper"),
    (T % ("    var $x { value = " + "!" * 5000 + "1 }"), 3, 118, "nesting deeper"),
    (
        "task t {\n  stack {\n" + "    group {\n      stack {\n" * 2500 + "}" * 5000 + "\n}\n",
        101,
        11,
        "nesting deeper",
    ),
    (T % '    var $s { value = "abc }', 3, 22, "unterminated string"),
    (T % '    var $s { value = """\n  abc\n    }', 3, 22, 'unterminated """…""" string'),
    (T % "    var $s { value = `$a > 1 }", 3, 22, "unterminated expression: no closing `"),
    (T % "    var $s { value = 1\x00 }", 3, 23, "invalid character U+0000 outside a string"),
    (T % "    var $s { value = 1 ¤ 2 }", 3, 24, "invalid character '¤' (U+00A4)"),
    (T % "    var $s { value = 1 } # note", 3, 26, '"#" does not start a comment'),
    (
        T % "    var $s { value = 2025-01-01 00:00:00+0000 }",
        3,
        22,
        "a timestamp literal (2025-01-01 00:00:00+0000) is only valid as starts_on/ends_on",
    ),
    (
        T % "    var $s {\n      value = 1\n      value = 2\n    }",
        5,
        7,
        '"value" is given twice in the var block (first at line 4)',
    ),
    ("task t {\n  stack {\n  }\n  stack {\n  }\n}\n", 4, 3, '"stack" is given twice'),
    (
        T % "    foreach ($rows) {\n      var $x { value = 1 }\n    }",
        4,
        7,
        'expected "each" in the foreach',
    ),
    (T % "    foreach ($rows) {\n    }", 4, 5, 'a foreach needs "each as $item { … }"'),
    (
        T % "    var $x { value = $a|f:$b ? 1 : 2 }",
        3,
        30,
        "a ternary inside a filter argument must be in parentheses",
    ),
    ('task t {\n  active = "yes"\n}\n', 2, 3, "active must be true or false"),
    ("$x = 1\n", 1, 1, "expected a construct keyword"),
    ("// only a comment\n", 2, 1, "the file holds no XanoScript construct"),
    ("", 1, 1, "the file holds no XanoScript construct"),
    ("task {\n}\n", 1, 6, "expected the task name"),
    (T % "    var $x { value = $db }", 3, 22, "a column reference is written $db.<table>.<column>"),
    (
        T % "    var $x { value = (1 + 2 }",
        3,
        29,
        'expected ")" to close the "(" at line 3, column 22',
    ),
    (T % "    var $x { value = [1 2] }", 3, 25, 'expected "," or "]" in the list opened at line 3'),
    (T % "    var $x { value: 1 }", 3, 19, 'write "value = …" in a statement block'),
    (
        T % "    switch ($x) {\n      default {\n      }\n      case (1) {\n      }\n    }",
        6,
        7,
        '"case" cannot follow "default"',
    ),
    (T % "    try_catch {\n      catch {\n      }\n    }", 6, 5, 'a try_catch needs a "try'),
    (T % ("    var $x { value = 1" + "0" * 200 + " }"), 3, 22, "number too long (201 digits"),
    ('task t {\n  tags = ["a", 1]\n}\n', 2, 3, "tags must be a list of strings"),
    (T % "    $x = 1", 3, 5, "expected a statement"),
    (T % "    else {\n    }", 3, 5, '"else" is only valid directly inside conditional'),
    (T % "    var $x { value = $a. }", 3, 26, 'expected a field name after "."'),
    ("task t {\n  stack {\n  }\n} extra\n", 4, 3, 'a second one ("extra") starts here'),
]


@pytest.mark.parametrize(("source", "line", "column", "message"), ERRORS)
def test_syntax_errors(source: str, line: int, column: int, message: str) -> None:
    """Invalid input raises XanoSyntaxError at the right place with an actionable message."""
    error = syntax_error(source)
    assert (error.line, error.column) == (line, column), error.message
    assert message in error.message
    assert error.file == "t.xs"


def test_error_table_is_large_enough() -> None:
    """The brief asks for at least 20 invalid inputs."""
    assert len(ERRORS) >= 20


def test_input_size_is_capped() -> None:
    """A file over the size limit is refused before tokenizing."""
    source = "task t {\n  stack {\n  }\n}\n" + "//" + "x" * MAX_SOURCE_CHARS
    error = syntax_error(source)
    assert "file too large" in error.message and (error.line, error.column) == (1, 1)


# pieces of XanoScript, valid and broken, for the fuzz test below
_PIECES = [
    *("task t {", "stack {", "}", "{", "(", ")", "[", "]", "\n", " ", "$x", "$$", "$db.t.c"),
    *("|", ":", '"s"', "'q'", '"""\n a\n"""', "`", "```", "!", "-", "1", "1.5", "..", "..."),
    *(",", "=", "==", "?", "??", "&&", "~", "in", "not", "if", "elseif", "else", "each", "as"),
    *("var", "conditional", "foreach", "switch", "case", "break", "try_catch", "catch"),
    *("schedule", "events", "starts_on", "2025-01-01 00:00:00+0000", "//c\n", "filters=a|b:1"),
    *("input", "response", "value", ".", "$0", "now", "!int", "@>", "group", "return", "#"),
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40), st.booleans())
def test_fuzz_only_syntax_errors(pieces: list[str], wrap: bool) -> None:
    """Whatever the input, the parser returns a document or raises XanoSyntaxError inside it."""
    source = "".join(pieces)
    if wrap:
        source = f"task t {{\n  stack {{\n{source}\n  }}\n}}\n"
    for parse in (lambda text: parse_document(text, "t.xs"), parse_expression):
        try:
            parse(source)
        except XanoSyntaxError as error:
            assert 1 <= error.line <= source.count("\n") + 1
            assert error.column >= 1
