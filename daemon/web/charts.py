"""The dashboard's pictures as inline SVG: run strips, a duration chart, a 24 h fire timeline."""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

# Every function here is pure: data in, markup out (well-formed XML, so tests parse it). Text
# that comes from data goes through `esc`; numbers are formatted here, never taken as text.
#
# Status is never told by colour alone: a run strip is a win/loss sparkline — runs that
# succeeded rise above the middle line, failures hang below it, slots that never ran are a
# cross (missed) or a ring (skipped) on the line — and every mark has a <title>; `legend()`
# draws the same glyphs with words.

CELL = 10  # one run's column in a strip and the duration chart (viewBox units)
STRIP_H = 28
MID = STRIP_H // 2
ROW_GAP = 6  # between the rows of a wrapped strip

# The glyph (a DEFS id and CSS class) of each run status, and the legend's words for each glyph.
GLYPHS: Mapping[str, str] = {
    "succeeded": "ok",
    "failed": "bad",
    "timed_out": "bad",
    "interrupted": "bad",
    "cancelled": "cx",
    "missed": "ms",
    "skipped": "sk",
    "running": "rn",
    "queued": "rn",
}
UNKNOWN_GLYPH = "un"
LEGEND: Sequence[tuple[str, str]] = (
    ("ok", "succeeded"),
    ("bad", "failed, timed out, interrupted"),
    ("cx", "cancelled"),
    ("ms", "missed"),
    ("sk", "skipped"),
    ("rn", "running"),
)
# Glyphs drawn in a column CELL wide and STRIP_H high, the middle line at MID; pages that show
# charts include DEFS once and marks are <use> of them (a strip of 12 on each of 100 task rows
# stays small). Ids are prefixed: they share the page's id space.
DEFS = (
    '<svg class="chart-defs" width="0" height="0" aria-hidden="true"><defs>'
    '<rect id="cs-ok" class="g-ok" x="1" y="2" width="8" height="11"/>'
    '<rect id="cs-bad" class="g-bad" x="1" y="15" width="8" height="11"/>'
    '<rect id="cs-cx" class="g-cx" x="1" y="15" width="8" height="6"/>'
    '<path id="cs-ms" class="g-ms" d="M2 10l6 8M8 10l-6 8"/>'
    '<circle id="cs-sk" class="g-sk" cx="5" cy="14" r="3"/>'
    '<rect id="cs-rn" class="g-rn" x="1.75" y="2.75" width="6.5" height="9.5"/>'
    '<circle id="cs-un" class="g-un" cx="5" cy="14" r="1.5"/>'
    # A row of equal outcomes in one rect (the compact strip): its glyph repeated every CELL.
    + "".join(
        f'<pattern id="cs-{kind}p" width="10" height="28" patternUnits="userSpaceOnUse">'
        f'<use href="#cs-{kind}"/></pattern>'
        for kind in ("ok", "bad", "cx", "ms", "sk", "rn", "un")
    )
    + "</defs></svg>"
)
# Colours come from the page's variables (light and dark); shapes come from DEFS.
CSS = """
.chart-defs{position:absolute;overflow:hidden}
.g-ok,.d-ok{fill:var(--ok)}.g-bad{fill:var(--bad)}.g-cx{fill:var(--warn)}
.g-ms{fill:none;stroke:var(--warn);stroke-width:2;stroke-linecap:round}
.g-sk{fill:none;stroke:var(--muted);stroke-width:1.5}
.g-rn{fill:none;stroke:var(--run);stroke-width:1.5}.g-un{fill:var(--muted)}
.d-bad,.d-cx{fill-opacity:.25;stroke-width:1.5}.d-bad{fill:var(--bad);stroke:var(--bad)}
.d-cx{fill:var(--warn);stroke:var(--warn)}.d-cut{stroke:var(--card);stroke-width:1.5}
svg .axis{stroke:var(--muted);stroke-width:1}svg .grid{stroke:var(--line);stroke-width:1}
svg .med{stroke:var(--fg);stroke-width:1;stroke-dasharray:3 3;opacity:.6}
svg .hit{fill:transparent}svg a:hover .hit,svg a:focus .hit{fill:var(--line)}
svg.strip,ul.legend svg{display:block;overflow:visible;background:linear-gradient(var(--muted),
var(--muted)) 100% 50%/100% 1px no-repeat}svg.rows{background:none}
svg.wide{display:block;width:100%;height:auto;max-width:720px}
figure.chart{margin:.5rem 0 1rem}figure.chart figcaption{font-size:.85rem;color:var(--muted)}
ul.legend{display:flex;flex-wrap:wrap;gap:.25rem 1rem;list-style:none;padding:0;margin:.25rem 0;
font-size:.85rem}ul.legend li{display:flex;align-items:center;gap:.3rem}
svg.tl{display:block;font-size:12px}svg.tl .m{fill:var(--muted)}
svg.tl text{fill:var(--fg);paint-order:stroke;stroke:var(--card);stroke-width:3px}
svg.tl .hr{fill:var(--muted);font-size:11px}svg.tl .lb{fill:var(--line);opacity:.6}
svg.tl .tk{stroke:var(--accent);stroke-width:2px;vector-effect:non-scaling-stroke}
svg.tl .bd{fill:var(--accent);opacity:.55}svg.tl .ps .tk{stroke:var(--muted)}
svg.tl .ps .bd{fill:var(--muted)}svg.tl a text{fill:var(--accent)}
@media (max-width:700px){svg.tl .o{display:none}}
"""

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def esc(value: object) -> str:
    """Text from data, safe in HTML and XML text and attributes: escaped, and characters XML
    cannot hold (controls, lone surrogates) replaced — they would also fail the UTF-8 encode."""
    text = "" if value is None else str(value)
    return escape(_UNSAFE.sub("\ufffd", text), quote=True)


def _n(x: float) -> str:
    """A coordinate: at most one decimal, no trailing zero (bytes add up over many marks)."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def fmt_ms(ms: float) -> str:
    """A duration for people: 0.5 ms, 840 ms, 1.24 s, 2 min 05 s, 1 h 02 min."""
    if ms < 10:
        return f"{ms:.2g} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.3g} s"
    seconds = int(ms // 1000)
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def glyph(status: str) -> str:
    return GLYPHS.get(status, UNKNOWN_GLYPH)


@dataclass(frozen=True, slots=True)
class RunMark:
    """One run as the pictures need it; `at` is its slot as the page shows times."""

    run_id: str
    status: str
    at: str = ""
    duration_ms: float | None = None
    note: str = ""

    @classmethod
    def from_json(cls, run: Mapping[str, Any], *, full: bool = True) -> RunMark:
        """From a run as `run_json` (or the task view's `recent`) gives it."""
        error = run.get("error")
        note = error.get("type", "") if isinstance(error, Mapping) else ""
        duration = run.get("duration_ms")
        return cls(
            run_id=str(run["run_id"]),
            status=str(run["status"]),
            at=short_time(run.get("scheduled_at"), full=full),
            duration_ms=float(duration) if isinstance(duration, int | float) else None,
            note=str(note or run.get("reason") or ""),
        )

    def title(self, *, with_duration: bool = True) -> str:
        parts = [self.status.replace("_", " ")]
        if self.at:
            parts.append(self.at)
        if with_duration and self.duration_ms is not None:
            parts.append(fmt_ms(self.duration_ms))
        if self.note:
            parts.append(self.note)
        return " · ".join(parts)


def short_time(iso: object, *, full: bool = True) -> str:
    """An RFC 3339 time as `2026-01-05 12:00:05` (or `01-05 12:00:05`), in its own offset."""
    if not isinstance(iso, str) or not iso:
        return ""
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return dt.strftime("%Y-%m-%d %H:%M:%S" if full else "%m-%d %H:%M:%S")


def summary(runs: Sequence[RunMark]) -> str:
    """`47 succeeded, 2 failed, 1 missed`: counts by status, in legend order."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    order = {status: i for i, status in enumerate(GLYPHS)}
    ranked = sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    return ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in ranked) or "no runs"


# --- run strip ------------------------------------------------------------------------------------


def run_strip(
    runs: Sequence[RunMark], *, slots: int = 50, link: bool = True, per_row: int | None = None
) -> str:
    """The last `slots` runs (given newest first) as a win/loss strip, oldest left, newest at
    the right edge. With `link`, each mark opens its run page and the strip scales to the page
    width (`per_row` wraps it for a phone, filled like text from the top left). Without, it is a
    fixed-size glance for the overview's rows (100 of them): its title sums it up, and each
    row of equal outcomes is one rect with one title (none for successes), so a day when
    everything fails does not make the page balloon."""
    shown = list(reversed(runs[:slots]))
    width = slots * CELL
    first = slots - len(shown)
    label = esc(f"last {len(shown)} runs, oldest first: {summary(shown)}")
    # The middle line is the SVG's CSS background (no element per strip), under the runs only.
    line = (
        f' style="background-size:{_n(100 * len(shown) / slots)}% 1px"' if 0 < first < slots else ""
    )
    if not link:
        head = f'<svg class="strip" width="{width}" height="{STRIP_H}" role="img"{line}>'
        rows = itertools.groupby(enumerate(shown), key=lambda item: item[1].status)
        return (
            head
            + f"<title>{label}</title>"
            + "".join(_row(first, list(r)) for _s, r in rows)
            + "</svg>"
        )
    cols, pitch = per_row or slots, STRIP_H + ROW_GAP
    if cols >= slots:
        marks = [
            f'<svg class="strip wide" viewBox="0 0 {width} {STRIP_H}" role="group"'
            f' aria-label="{label}"{line}>'
        ]
    else:  # wrapped, it reads like text: from the top left, the newest last
        first, lines = 0, max(1, math.ceil(len(shown) / cols))
        marks = [
            f'<svg class="strip wide rows" viewBox="0 0 {cols * CELL} {lines * pitch - ROW_GAP}"'
            f' role="group" aria-label="{label}">'
        ]
        for r in range(lines):
            x2 = min(cols, len(shown) - r * cols) * CELL
            y = r * pitch + MID
            marks.append(f'<line class="axis" x2="{x2}" y1="{y}" y2="{y}"/>')
    for i, run in enumerate(shown):
        x, y = ((first + i) % cols) * CELL, ((first + i) // cols) * pitch
        at = f'x="{x}" y="{y}"' if y else f'x="{x}"'
        marks.append(
            f'<a href="/runs/{esc(run.run_id)}"><title>{esc(run.title())}</title>'
            f'<rect class="hit" {at} width="{CELL}" height="{STRIP_H}"/>'
            f'<use href="#cs-{glyph(run.status)}" {at}/></a>'
        )
    marks.append("</svg>")
    return "".join(marks)


def _row(first: int, row: list[tuple[int, RunMark]]) -> str:
    """Consecutive runs of one status in the compact strip: one glyph, or a patterned rect."""
    x = (first + row[0][0]) * CELL
    run, kind = row[0][1], glyph(row[0][1].status)
    if run.status == "succeeded":
        title = ""
    elif len(row) == 1:
        title = f"<title>{esc(run.title(with_duration=False))}</title>"
    else:
        words = f"{len(row)} {run.status.replace('_', ' ')}, {run.at} to {row[-1][1].at}"
        title = f"<title>{esc(words)}</title>"
    if len(row) == 1:
        mark = f'<use href="#cs-{kind}" x="{x}"'
        tag = "use"
    else:
        mark = f'<rect fill="url(#cs-{kind}p)" x="{x}" width="{len(row) * CELL}" height="{STRIP_H}"'
        tag = "rect"
    return f"{mark}>{title}</{tag}>" if title else f"{mark}/>"


def legend(kinds: Sequence[str] | None = None) -> str:
    """The strip's glyphs with their words (uses DEFS), each on a stretch of the middle line."""
    items = []
    for kind, words in LEGEND:
        if kinds is not None and kind not in kinds:
            continue
        items.append(
            f'<li><svg width="{2 * CELL}" height="{STRIP_H}" viewBox="{-CELL // 2} 0 {2 * CELL}'
            f' {STRIP_H}" aria-hidden="true"><use href="#cs-{kind}"/></svg>{esc(words)}</li>'
        )
    return f'<ul class="legend">{"".join(items)}</ul>'


# --- duration chart -------------------------------------------------------------------------------

DUR_TOP = 4
DUR_BASE = 74  # bars stand on this line; runs without a duration get a glyph in the lane below
DUR_H = 92
DUR_LANE = DUR_BASE + 4  # glyphs are drawn from STRIP_H-high cells: their middle lands at +MID


def nice_ceil(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `x` (x > 0)."""
    if x <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(x))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * power >= x * (1 - 1e-9):
            return step * power
    return 10.0 * power


@dataclass(frozen=True, slots=True)
class Scale:
    """The duration chart's vertical scale: `top` ms at the top; bars above are cut."""

    top: float
    longest: float
    median: float | None
    cut: int


def duration_scale(durations: Sequence[float]) -> Scale:
    """A scale that keeps most bars readable: one slow outlier (a timeout among 50 ms runs)
    would squash the rest, so beyond 3x the 90th percentile the top follows the percentile
    and the outliers are drawn cut."""
    if not durations:
        return Scale(1000.0, 0.0, None, 0)
    ordered = sorted(durations)
    longest = ordered[-1]
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    top = nice_ceil(longest if longest > 0 else 1.0)
    if len(ordered) >= 5 and p90 > 0 and longest > 3 * p90:
        top = nice_ceil(p90 * 1.25)
    cut = sum(1 for d in ordered if d > top)
    return Scale(top, longest, statistics.median(ordered), cut)


def duration_chart(runs: Sequence[RunMark], *, slots: int = 50) -> str:
    """Run durations as bars in the strip's columns (newest right, so a bar sits above its
    strip mark): solid for succeeded, pale with an outline for the rest; runs that
    have no duration (missed, skipped, running) are their strip glyph in a lane under the
    zero line. A figure: the scale and median in words above the SVG (text inside a scaled
    SVG would be unreadable on a phone)."""
    shown = list(reversed(runs[:slots]))
    width = slots * CELL
    first = slots - len(shown)
    durations = [r.duration_ms for r in shown if r.duration_ms is not None]
    scale = duration_scale(durations)
    height = DUR_BASE - DUR_TOP
    parts = [
        f'<svg class="dur wide" viewBox="0 0 {width} {DUR_H}" role="group"'
        f' aria-label="run durations, newest right">'
    ]
    for frac in (0.5, 1.0):
        y = _n(DUR_BASE - frac * height)
        parts.append(f'<line class="grid" x1="0" x2="{width}" y1="{y}" y2="{y}"/>')
    parts.append(f'<line class="axis" x1="0" x2="{width}" y1="{DUR_BASE}" y2="{DUR_BASE}"/>')
    if scale.median is not None:
        y = _n(DUR_BASE - min(1.0, scale.median / scale.top) * height)
        parts.append(f'<line class="med" x1="0" x2="{width}" y1="{y}" y2="{y}"/>')
    for i, run in enumerate(shown):
        x = (first + i) * CELL
        kind = glyph(run.status)
        title = f"<title>{esc(run.title())}</title>"
        hit = f'<rect class="hit" x="{x}" y="0" width="{CELL}" height="{DUR_H}"/>'
        if run.duration_ms is None:
            mark = f'<use href="#cs-{kind}" x="{x}" y="{DUR_LANE - 4}"/>'
        else:
            frac = min(1.0, run.duration_ms / scale.top)
            h = max(1.0, frac * height)
            cls = "d-ok" if kind == "ok" else ("d-cx" if kind == "cx" else "d-bad")
            mark = (
                f'<rect class="{cls}" x="{x + 1.75}" y="{_n(DUR_BASE - h)}" width="6.5"'
                f' height="{_n(h)}"/>'
            )
            if run.duration_ms > scale.top:
                # Cut bars: two gaps across the top say "taller than drawn".
                mark += (
                    f'<path class="d-cut" d="M{x} {DUR_TOP + 6}l{CELL} -3'
                    f'M{x} {DUR_TOP + 10}l{CELL} -3"/>'
                )
        parts.append(f'<a href="/runs/{esc(run.run_id)}">{title}{hit}{mark}</a>')
    parts.append("</svg>")
    words = [
        f"scale 0 to {fmt_ms(scale.top)} (grid at {fmt_ms(scale.top / 2)})",
        "solid bars succeeded, outlined ones did not",
    ]
    if scale.median is not None:
        words.append(f"median {fmt_ms(scale.median)} (dashed)")
        words.append(f"longest {fmt_ms(scale.longest)}")
    if scale.cut:
        words.append(f"{scale.cut} cut at the top")
    if not durations:
        words = ["no finished runs yet"]
    caption = " · ".join(words)
    return (
        f'<figure class="chart"><figcaption>Duration: {esc(caption)}</figcaption>'
        f"{''.join(parts)}</figure>"
    )


# --- 24 h fire timeline ---------------------------------------------------------------------------

LANE_H = 30  # a task: its name on one line, its lane under it (names stay readable on phones)
LANE_TOP = 16  # the lane's bar under the name
LANE_BAR = 10
HEAD_H = 18  # hour labels
MAX_TITLE_TIMES = 8
MAX_NAME = 60


@dataclass(frozen=True, slots=True)
class Lane:
    """One task's upcoming fires: each fire (at most a few dozen), or for a task that fires
    more often than that, the spans where it fires (`bands`) and its usual gap (`every`)."""

    name: str
    href: str
    fires: Sequence[float] = ()
    bands: Sequence[tuple[float, float]] = ()
    every: float | None = None
    paused: bool = False
    pending: bool = False  # not computed yet (the page shows it on its next refresh)


def fmt_every(seconds: float) -> str:
    """`every second`, `every 10 s`, `every 5 min`, `every 1.5 h`."""
    if seconds <= 1:
        return "every second"
    if seconds < 60:
        return f"every {seconds:.0f} s"
    if seconds < 3600:
        return f"every {_n(seconds / 60)} min"
    return f"every {_n(seconds / 3600)} h"


def _hour_marks(start: float, end: float, tz: ZoneInfo, step: int) -> list[tuple[float, str, int]]:
    """Local whole hours divisible by `step` within (start, end): (epoch s, label, hour).
    Midnight is labelled with the weekday; a DST day has an hour more or less between marks."""
    out = []
    t = datetime.fromtimestamp(start, tz).replace(minute=0, second=0, microsecond=0).timestamp()
    t += 3600
    while t < end:
        at = datetime.fromtimestamp(t, tz)
        if at.minute == 0 and at.hour % step == 0:
            out.append((t, at.strftime("%a") if at.hour == 0 else at.strftime("%H:%M"), at.hour))
        t += 3600
    return out


def _pct(frac: float) -> str:
    return f"{_n(frac * 100)}%"


def _clock(ts: float, tz: ZoneInfo) -> str:
    at = datetime.fromtimestamp(ts, tz)
    return at.strftime("%H:%M:%S" if at.second else "%H:%M")


def _lane(lane: Lane, y: int, start: float, span: float, tz: ZoneInfo) -> tuple[str, str]:
    """(the name line in the page's pixels, the marks in the stretched minute coordinates)."""
    end = start + span
    fires = [f for f in lane.fires if start <= f < end]
    bands = [(max(a, start), min(b, end)) for a, b in lane.bands if b > start and a < end]
    if lane.pending:
        note = "not computed yet"
    elif bands:
        note = f"about {fmt_every(lane.every)}" if lane.every else "often"
    elif not fires:
        note = "no fire in these hours"
    elif len(fires) <= 3:
        note = ", ".join(_clock(f, tz) for f in fires)
    else:
        note = f"{len(fires)} fires"
    if lane.paused:
        note += " · paused, recorded missed"
    name = lane.name if len(lane.name) <= MAX_NAME else lane.name[: MAX_NAME - 1] + "…"
    label = (
        f'<a href="{esc(lane.href)}"><text x="0" y="{y + 12}">{esc(name)}'
        f'<tspan class="m"> · {esc(note)}</tspan></text></a>'
    )
    bar = y + LANE_TOP
    marks = []
    if bands:
        whole = len(bands) == 1 and bands[0][1] - bands[0][0] >= span - 60
        when = (
            "all day"
            if whole
            else ", ".join(f"{_clock(a, tz)} to {_clock(b, tz)}" for a, b in bands)
        )
        rects = "".join(
            f'<rect class="bd" x="{_n((a - start) / 60)}" y="{bar}"'
            f' width="{_n(max(1.0, (b - a) / 60))}" height="{LANE_BAR}"/>'
            for a, b in bands
        )
        marks.append(f"<g><title>{esc(f'{note}, {when}')}</title>{rects}</g>")
    elif fires:
        # One path for all ticks, each relative to the one before: ~10 bytes a fire.
        x0 = (fires[0] - start) / 60
        d = [f"M{_n(x0)} {bar}v{LANE_BAR}"]
        for prev, cur in itertools.pairwise(fires):
            d.append(f"m{_n((cur - prev) / 60)}-{LANE_BAR}v{LANE_BAR}")
        shown = ", ".join(_clock(f, tz) for f in fires[:MAX_TITLE_TIMES])
        more = f" and {len(fires) - MAX_TITLE_TIMES} more" if len(fires) > MAX_TITLE_TIMES else ""
        title = f"{len(fires)} fire{'s' if len(fires) > 1 else ''}: {shown}{more}"
        marks.append(f'<path class="tk" d="{"".join(d)}"><title>{esc(title)}</title></path>')
    body = "".join(marks)
    return label, (f'<g class="ps">{body}</g>' if lane.paused and body else body)


def timeline(lanes: Sequence[Lane], start: float, span: float, tz: ZoneInfo) -> str:
    """Upcoming fires from `start` (epoch s) over `span` seconds, one lane per task, hours in
    `tz`. The outer SVG has no viewBox: x is a percentage of the page's width and text keeps
    its pixel size, readable on a phone. The lanes are one inner SVG whose viewBox is minutes
    wide, stretched to the width only (its height is its pixels); ticks keep their width by
    `vector-effect`."""
    height = HEAD_H + LANE_H * max(1, len(lanes))
    step = 3 if span > 6 * 3600 else 1
    parts = [
        f'<svg class="tl" width="100%" height="{height}" role="group"'
        f' aria-label="fires in the next {_n(span / 3600)} hours, one lane per task">',
        f'<text class="hr" x="0" y="12">now<tspan class="o">'
        f" {datetime.fromtimestamp(start, tz):%H:%M}</tspan></text>",
    ]
    for t, label, hour in _hour_marks(start, start + span, tz, step):
        frac = (t - start) / span
        x = _pct(frac)
        parts.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{HEAD_H - 2}" y2="{height}"/>')
        if 0.1 < frac < 0.97:  # clear of "now …" and the right edge
            # On a phone every other label, and none near "now …", would overlap: CSS hides them.
            cls = "hr o" if frac < 0.15 or hour % (2 * step) else "hr"
            parts.append(f'<text class="{cls}" x="{x}" y="12" text-anchor="middle">{label}</text>')
    marks = []
    for i, lane in enumerate(lanes):
        label, lane_marks = _lane(lane, HEAD_H + i * LANE_H, start, span, tz)
        parts.append(label)
        marks.append(lane_marks)
    if not lanes:
        parts.append(f'<text class="m" x="0" y="{HEAD_H + 14}">no active scheduled tasks</text>')
    # Every lane's bar is one rect, filled by a pattern a lane high.
    minutes = _n(span / 60)
    lanes_bg = (
        f'<defs><pattern id="tl-lanes" y="{HEAD_H}" width="{minutes}" height="{LANE_H}"'
        f' patternUnits="userSpaceOnUse"><rect class="lb" y="{LANE_TOP}" width="{minutes}"'
        f' height="{LANE_BAR}"/></pattern></defs><rect fill="url(#tl-lanes)" y="{HEAD_H}"'
        f' width="{minutes}" height="{LANE_H * len(lanes)}"/>'
    )
    parts.append(
        f'<svg width="100%" height="{height}" viewBox="0 0 {minutes} {height}"'
        f' preserveAspectRatio="none">{lanes_bg}{"".join(marks)}</svg></svg>'
    )
    return "".join(parts)


__all__ = [
    "CSS",
    "DEFS",
    "GLYPHS",
    "Lane",
    "RunMark",
    "duration_chart",
    "duration_scale",
    "esc",
    "fmt_ms",
    "legend",
    "run_strip",
    "summary",
    "timeline",
]
