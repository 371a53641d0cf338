"""The dashboard's HTML: server-rendered pages, inline CSS and SVG, no scripts or outside assets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from daemon.core.secrets import mask
from daemon.web import charts
from daemon.web.views import RECENT_RUNS

# Colours of the outcome marks; the text label is always there too (colour-blind users, phones).
STATUS_CLASS = {
    "succeeded": "ok",
    "failed": "bad",
    "timed_out": "bad",
    "interrupted": "bad",
    "cancelled": "warn",
    "skipped": "muted",
    "missed": "warn",
    "running": "run",
}

# Status colours: at least 3:1 against the cards in both schemes (WCAG non-text contrast); in
# the dark scheme they are lighter and the pills' text turns dark.
CSS = """
:root{--fg:#1d2330;--muted:#667085;--bg:#f6f7f9;--card:#fff;--line:#e3e6eb;--ok:#1f9d55;
--bad:#d64545;--warn:#c2620a;--run:#2f6fdb;--accent:#2f6fdb}
@media (prefers-color-scheme:dark){:root{--fg:#e6e8ec;--muted:#98a2b3;--bg:#14171c;--card:#1c2027;
--line:#2c323b;--ok:#3fcf7f;--bad:#f26d6d;--warn:#f0a044;--run:#6b9cf5;--accent:#6b9cf5}
.pill,button.primary{color:#14171c!important}}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,
sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.25rem;align-items:center;padding:.75rem 1rem;
background:var(--card);border-bottom:1px solid var(--line)}
header b{font-size:1.05rem}header nav a{margin-right:1rem}a{color:var(--accent)}
main{padding:1rem;max-width:1200px;margin:auto}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1rem;
margin-bottom:1rem;overflow-x:auto}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.45rem .5rem;
border-bottom:1px solid var(--line);vertical-align:top}th{font-size:.8rem;color:var(--muted);
font-weight:600;text-transform:uppercase;letter-spacing:.03em}
.muted{color:var(--muted)}small{color:var(--muted)}code{font-size:.85em}
.pill{display:inline-block;padding:0 .5rem;border-radius:999px;font-size:.8rem;color:#fff}
.pill.ok{background:var(--ok)}.pill.bad{background:var(--bad)}.pill.warn{background:var(--warn)}
.pill.run{background:var(--run)}.pill.muted{background:var(--muted)}
form.inline{display:inline}button{font:inherit;padding:.3rem .7rem;border-radius:6px;
border:1px solid var(--line);background:var(--card);color:var(--fg);cursor:pointer;
min-height:2.2rem}button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
.actions,.actions form{display:flex;gap:.35rem;flex-wrap:wrap}.actions form{flex-wrap:nowrap}
.actions button{white-space:nowrap}
.phone-only{display:none}
@media (max-width:700px){.wide-only{display:none}.phone-only{display:block}}
.bar{height:10px;background:var(--accent);border-radius:2px;min-width:2px}
.bar.bad{background:var(--bad)}.flash{background:#e8f1ff;color:#1d2330;padding:.5rem .75rem;
border-radius:6px;margin-bottom:1rem}.err{color:var(--bad)}
pre{white-space:pre-wrap;word-break:break-all;margin:.25rem 0 0;font-size:.8rem;max-height:12rem;
overflow:auto}
input,select{font:inherit;padding:.35rem;border-radius:6px;border:1px solid var(--line);
background:var(--card);color:var(--fg);min-height:2.2rem}
.filters{display:flex;gap:.5rem;flex-wrap:wrap;align-items:end}
ul.plain{list-style:none;margin:0;padding:0}#facts th{width:8rem}
@media (max-width:700px){
 table.stack thead{display:none}table.stack tr{display:block;border-bottom:1px solid var(--line);
 padding:.5rem 0}table.stack td{display:block;border:0;padding:.15rem 0}
 table.stack td[data-label]::before{content:attr(data-label) ": ";color:var(--muted);
 font-size:.8rem}}
"""
CSS += charts.CSS


def _h(value: Any) -> str:
    # Also replaces what no page may hold (controls, lone surrogates from a task file's JSON).
    return charts.esc(value)


def page(
    title: str, body: str, *, refresh: int | None = None, nav: bool = True, charts_: bool = False
) -> str:
    head_refresh = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    links = '<nav><a href="/">Tasks</a><a href="/runs">Runs</a></nav>' if nav else ""
    defs = charts.DEFS if charts_ else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"{head_refresh}<title>{_h(title)} · cronstack</title><style>{CSS}</style></head>"
        f"<body>{defs}<header><b>cronstack</b>{links}</header><main>{body}</main></body></html>"
    )


def _html(text: str, status: int = 200) -> web.Response:
    resp = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    # No framing (clickjacking on the buttons), no referrer leaks, nothing from elsewhere.
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self';"
        " frame-ancestors 'none'"
    )
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _pill(status: str) -> str:
    return f'<span class="pill {STATUS_CLASS.get(status, "muted")}">{_h(status)}</span>'


def _when(iso: str | None) -> str:
    if not iso:
        return '<span class="muted">—</span>'
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return _h(iso)
    return f'<time datetime="{_h(iso)}">{_h(dt.strftime("%Y-%m-%d %H:%M:%S %Z"))}</time>'


def _task_buttons(base: str, paused: bool, csrf: str, *, extra: str = "") -> str:
    """Run now and Pause (or Resume) in one form: one CSRF field per task row, not two (100
    rows), the second button posting to its own action."""
    toggle = "resume" if paused else "pause"
    return (
        f'<form class="inline" method="post" action="{_h(base)}/run">'
        f'<input type="hidden" name="csrf" value="{_h(csrf)}">{extra}'
        '<button class="primary" type=submit>Run now</button>'
        f'<button type=submit formaction="{_h(base)}/{toggle}">{toggle.title()}</button></form>'
    )


# --- pages ----------------------------------------------------------------------------------------


def login_response(*, next_path: str = "/", status: int = 200, error: str = "") -> web.Response:
    problem = f'<p class="err" role="alert">{_h(error)}</p>' if error else ""
    body = (
        '<div class="card" style="max-width:420px;margin:2rem auto">'
        "<h1>Sign in</h1><p class=muted>Paste the admin token (the value of the variable named by"
        " <code>[admin] token_env</code>).</p>"
        f'{problem}<form method="post" action="/login">'
        f'<input type="hidden" name="next" value="{_h(next_path)}">'
        '<p><input type="password" name="token" id="token" autocomplete="current-password"'
        ' required style="width:100%" aria-label="admin token"></p>'
        '<button class="primary" type="submit" id="login">Sign in</button></form></div>'
    )
    return _html(page("Sign in", body, nav=False), status)


def error_response(status: int, message: str) -> web.Response:
    body = (
        f'<div class="card"><h1>{status}</h1><p class="err">{_h(message)}</p>'
        '<p><a href="/">Back to tasks</a></p></div>'
    )
    return _html(page(f"Error {status}", body), status)


def task_href(name: str) -> str:
    return f"/tasks/{quote(name, safe='')}"


def _timeline_card(lanes: Sequence[charts.Lane], start: float, tz: ZoneInfo, title: str) -> str:
    return (
        f'<div class="card" id="timeline"><h2>{_h(title)}</h2>'
        f'<p class="muted">Each tick is a fire (hours in {_h(tz.key)}); a band is a task that'
        " fires too often to draw each one. Paused tasks' fires are grey: they will be recorded"
        f" missed.</p>{charts.timeline(lanes, start, UPCOMING_SPAN, tz)}</div>"
    )


UPCOMING_SPAN = 24 * 3600.0


def tasks_response(
    tasks: Sequence[Mapping[str, Any]],
    *,
    csrf: str,
    running: int,
    flash: str = "",
    lanes: Sequence[charts.Lane] = (),
    now: float = 0.0,
    tz: ZoneInfo | None = None,
) -> web.Response:
    rows = []
    for t in tasks:
        name = t["name"]
        base = task_href(name)
        status = "paused" if t["paused"] else t["status"]
        status_cls = "warn" if t["paused"] else ("ok" if t["status"] == "active" else "muted")
        recent = [charts.RunMark.from_json(r, full=False) for r in t["recent"]]
        strip = (
            f'<a href="{base}">{charts.run_strip(recent, slots=RECENT_RUNS, link=False)}</a>'
            if recent
            else ""
        )
        last = t["last_run"]
        last_html = (
            f'{_pill(last["status"])} <a href="/runs/{quote(last["run_id"])}">'
            f"{_when(last['scheduled_at'])}</a>"
            if last
            else '<span class="muted">never</span>'
        )
        nxt = t["next"][0] if t["next"] else None
        rows.append(
            f'<tr data-task="{_h(name)}">'
            f'<td data-label="Task"><a href="{base}"><b>{_h(name)}</b></a><br>'
            f"<small>{_h(t['description'])}</small></td>"
            f'<td data-label="Status"><span class="pill {status_cls}">{_h(status)}</span></td>'
            f'<td data-label="Schedule">{_h(t["schedule"])}<br>'
            f"<small><code>{_h(t['cron'] or '-')}</code> · {_h(t['timezone'])}</small></td>"
            f'<td data-label="Next">{_when(nxt)}</td>'
            f'<td data-label="Last">{last_html}{strip}</td>'
            f'<td data-label="Actions"><div class="actions">'
            f"{_task_buttons(base, t['paused'], csrf)}"
            f'<a href="/runs?task={quote(name)}">history</a></div></td></tr>'
        )
    note = f'<div class="flash" role="status">{_h(flash)}</div>' if flash else ""
    timeline = _timeline_card(lanes, now, tz, "Next 24 hours") if tz is not None else ""
    body = (
        f"{note}<div class=card><h1>Tasks</h1><p class=muted>{len(tasks)} tasks,"
        f" {running} running now. Last runs, oldest to newest:</p>{charts.legend()}"
        '<table class="stack" id="tasks"><thead><tr><th>Task</th><th>Status</th>'
        "<th>Schedule</th><th>Next fire</th><th>Last runs</th><th></th></tr></thead><tbody>"
        f"{''.join(rows)}</tbody></table></div>{timeline}"
        f'<form method="post" action="/logout"><input type="hidden" name="csrf"'
        f' value="{_h(csrf)}"><button type="submit">Sign out</button></form>'
    )
    return _html(page("Tasks", body, refresh=30, charts_=True))


def task_response(
    task: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    *,
    csrf: str,
    lane: charts.Lane | None,
    now: float,
    tz: ZoneInfo,
) -> web.Response:
    """One task: its facts and buttons, its last runs as a strip and a duration chart (newest
    right, each mark opens its run), and its next 24 hours."""
    name = task["name"]
    base = task_href(name)
    back = f'<input type="hidden" name="next" value="{_h(base)}">'
    status = "paused" if task["paused"] else task["status"]
    status_cls = "warn" if task["paused"] else ("ok" if task["status"] == "active" else "muted")
    nexts = "".join(f"<li>{_when(n)}</li>" for n in task["next"]) or "<li>none</li>"
    facts = "".join(
        f"<tr><th>{_h(k)}</th><td>{v}</td></tr>"
        for k, v in (
            ("status", f'<span class="pill {status_cls}">{_h(status)}</span>'),
            (
                "schedule",
                f"{_h(task['schedule'])} · <code>{_h(task['cron'] or '-')}</code>"
                f" · {_h(task['timezone'])}",
            ),
            ("next fires", f'<ul class="plain">{nexts}</ul>'),
        )
    )
    marks = [charts.RunMark.from_json(r) for r in runs]
    kinds = {charts.glyph(m.status) for m in marks}
    if marks:
        pictures = (
            f'<p class="muted">{_h(charts.summary(marks))}, from {_h(marks[-1].at)} to'
            f" {_h(marks[0].at)} ({_h(task['timezone'])}); oldest left, newest right. Each"
            " mark opens its run.</p>"
            f"{charts.legend(sorted(kinds, key=_legend_order))}"
            f"{charts.duration_chart(marks)}{_strips(marks)}"
        )
    else:
        pictures = '<p class="muted">no runs yet</p>'
    timeline = _timeline_card([lane], now, tz, "Next 24 hours") if lane is not None else ""
    body = (
        f'<div class="card"><h1>{_h(name)}</h1><p class="muted">{_h(task["description"])}</p>'
        f'<table id="facts">{facts}</table><div class="actions" style="margin-top:.75rem">'
        f"{_task_buttons(base, task['paused'], csrf, extra=back)}"
        f'<a href="/runs?task={quote(name)}">full history</a></div></div>'
        f'<div class="card" id="pictures"><h2>Last {len(marks)} runs</h2>{pictures}</div>'
        f"{timeline}"
    )
    return _html(page(name, body, refresh=30, charts_=True))


def _strips(marks: Sequence[charts.RunMark]) -> str:
    """The strip in one row of 50 under the duration chart; on a phone, where a run would be
    6 px wide, in two rows of 25 instead (CSS shows one of them)."""
    if len(marks) <= PHONE_ROW:
        return charts.run_strip(marks)
    return (
        f'<div class="wide-only">{charts.run_strip(marks)}</div><div class="phone-only">'
        f"{charts.run_strip(marks, per_row=PHONE_ROW)}</div>"
    )


PHONE_ROW = 25


def _legend_order(kind: str) -> int:
    order = [k for k, _ in charts.LEGEND]
    return order.index(kind) if kind in order else len(order)


def runs_response(
    runs: Sequence[Mapping[str, Any]],
    filters: Mapping[str, str],
    task_names: Sequence[str],
    statuses: Sequence[str],
) -> web.Response:
    def options(values: Sequence[str], chosen: str | None) -> str:
        out = ['<option value="">all</option>']
        for v in values:
            sel = " selected" if v == chosen else ""
            out.append(f'<option value="{_h(v)}"{sel}>{_h(v)}</option>')
        return "".join(out)

    rows = []
    for r in runs:
        error = r.get("error") or {}
        why = (
            f'<span class="err">{_h(error.get("type"))}: {_h(mask(str(error.get("message"))))}'
            "</span>"
            if error
            else _h(r.get("reason") or "")
        )
        took = f"{r['duration_ms']} ms" if r.get("duration_ms") is not None else "—"
        rows.append(
            f'<tr><td data-label="Run"><a href="/runs/{quote(r["run_id"])}">'
            f"<code>{_h(r['run_id'][:12])}</code></a></td>"
            f'<td data-label="Task">{_h(r["task"])}</td>'
            f'<td data-label="Status">{_pill(r["status"])}</td>'
            f'<td data-label="Trigger">{_h(r["trigger"])} #{_h(r["attempt"])}</td>'
            f'<td data-label="Scheduled">{_when(r["scheduled_at"])}</td>'
            f'<td data-label="Took">{took}</td><td data-label="Note">{why}</td></tr>'
        )
    limit = filters.get("limit", "50")
    body = (
        '<div class=card><h1>Runs</h1><form class="filters" method="get" action="/runs">'
        f'<label>Task<br><select name="task">{options(task_names, filters.get("task"))}'
        "</select></label>"
        f'<label>Status<br><select name="status">{options(statuses, filters.get("status"))}'
        "</select></label>"
        f'<label>Limit<br><input name="limit" value="{_h(limit)}" size="4" inputmode="numeric">'
        '</label><button type="submit">Filter</button></form></div>'
        '<div class=card><table class="stack" id="runs"><thead><tr><th>Run</th><th>Task</th>'
        "<th>Status</th><th>Trigger</th><th>Scheduled</th><th>Took</th><th>Note</th></tr>"
        f"</thead><tbody>{''.join(rows) or '<tr><td colspan=7 class=muted>no runs</td></tr>'}"
        "</tbody></table></div>"
    )
    return _html(page("Runs", body, refresh=15))


def run_response(run: Mapping[str, Any]) -> web.Response:
    steps = run.get("steps") or []
    longest = max((float(s.get("duration_ms") or 0) for s in steps), default=0.0) or 1.0
    rows = []
    for s in steps:
        ms = float(s.get("duration_ms") or 0)
        width = max(1.0, 100.0 * ms / longest)
        bad = " bad" if s.get("status") == "failed" else ""
        output = s.get("output")
        out_html = f"<pre>{_h(mask(str(output)))}</pre>" if output not in (None, "") else ""
        rows.append(
            f'<tr class="step"><td data-label="Step"><code>{_h(s.get("path"))}</code><br>'
            f"<small>{_h(s.get('function'))}</small></td>"
            f'<td data-label="Status">{_pill(str(s.get("status")))}</td>'
            f'<td data-label="Duration" style="min-width:8rem">{ms:.1f} ms'
            f'<div class="bar{bad}" style="width:{width:.1f}%"></div></td>'
            f'<td data-label="Output">{out_html}</td></tr>'
        )
    error = run.get("error")
    err_html = (
        f'<p class="err" role="alert"><b>{_h(error.get("type"))}</b>:'
        f" {_h(mask(str(error.get('message'))))}"
        f" {('at <code>' + _h(error.get('step')) + '</code>') if error.get('step') else ''}</p>"
        if error
        else ""
    )
    if steps:
        trace = (
            '<table class="stack" id="trace"><thead><tr><th>Step</th><th>Status</th>'
            f"<th>Duration</th><th>Output (masked)</th></tr></thead><tbody>{''.join(rows)}"
            "</tbody></table>"
        )
    elif run["status"] in ("running", "queued"):
        trace = '<p class="muted">running… the trace appears when the run ends.</p>'
    else:
        trace = (
            '<p class="muted">no step trace (the run did not start, or request_history is off)</p>'
        )
    reason = f"<p>{_h(run['reason'])}</p>" if run.get("reason") else ""
    facts = "".join(
        f"<tr><th>{_h(k)}</th><td>{v}</td></tr>"
        for k, v in (
            (
                "task",
                f'<a href="{task_href(run["task"])}">{_h(run["task"])}</a> · <a href="/runs?'
                f'{urlencode({"task": run["task"]})}">history</a>',
            ),
            ("status", _pill(run["status"])),
            ("trigger", f"{_h(run['trigger'])} #{_h(run['attempt'])}"),
            ("scheduled", _when(run["scheduled_at"])),
            ("started", _when(run["started_at"])),
            ("finished", _when(run["finished_at"])),
            ("duration", f"{run['duration_ms']} ms" if run.get("duration_ms") is not None else "—"),
            ("instance", _h(run.get("instance"))),
        )
    )
    body = (
        f"<div class=card><h1>Run <code>{_h(run['run_id'])}</code></h1>{err_html}{reason}"
        f'<table id="facts">{facts}</table></div>'
        f"<div class=card><h2>Step trace</h2>{trace}</div>"
    )
    return _html(
        page(
            f"Run {run['run_id'][:12]}",
            body,
            refresh=1 if run["status"] in ("running", "queued") else None,
        )
    )


__all__ = [
    "error_response",
    "login_response",
    "run_response",
    "runs_response",
    "task_response",
    "tasks_response",
]
