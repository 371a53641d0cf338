"""The dashboard's SVG pictures: glyphs per status, escaping, sizes, scales, timeline lanes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from daemon.core.cron import CronSchedule
from daemon.web import charts, dashboard
from daemon.web.charts import Lane, RunMark
from daemon.web.upcoming import HORIZON, upcoming

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 1, 5, 12, 7, 13, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script> & \"q\" \x00\x1b\ud800"


def parse(markup: str) -> ET.Element:
    """Well-formed XML (every builder's output is); every glyph used is one DEFS defines."""
    root = ET.fromstring(f"<root>{markup}</root>")
    for href in uses(root):
        assert f'id="{href[1:]}"' in charts.DEFS, href
    return root


def uses(root: ET.Element) -> list[str]:
    return [u.get("href", "") for u in root.iter("use")]


def run(i: int, status: str = "succeeded", ms: float | None = 120.0, note: str = "") -> RunMark:
    """Run `i` of a list given newest first: a higher `i` is an earlier slot."""
    return RunMark(f"{i:032x}", status, f"2026-01-05 12:{59 - i:02d}:00", ms, note)


# status → (glyph, words in its title)
STATUS_TABLE = [
    ("succeeded", "ok", "succeeded"),
    ("failed", "bad", "failed"),
    ("timed_out", "bad", "timed out"),
    ("interrupted", "bad", "interrupted"),
    ("cancelled", "cx", "cancelled"),
    ("missed", "ms", "missed"),
    ("skipped", "sk", "skipped"),
    ("running", "rn", "running"),
    ("queued", "rn", "queued"),
    ("something_new", "un", "something new"),
]


@pytest.mark.parametrize(("status", "kind", "words"), STATUS_TABLE)
def test_each_status_has_its_glyph_and_title(status: str, kind: str, words: str) -> None:
    """A status maps to a glyph drawn from DEFS, and its mark's title names it in words."""
    assert charts.glyph(status) == kind
    root = parse(charts.run_strip([run(1, status, note="paused")]))
    assert uses(root) == [f"#cs-{kind}"]
    assert f'id="cs-{kind}"' in charts.DEFS
    title = next(root.iter("title")).text or ""
    assert title.startswith(words) and "2026-01-05 12:58:00" in title and "paused" in title


def test_every_glyph_in_the_legend_is_defined_once() -> None:
    """The legend draws every glyph a strip can use; DEFS holds each id exactly once."""
    defined = re.findall(r'id="([^"]+)"', charts.DEFS)
    assert len(defined) == len(set(defined))
    legend = parse(charts.legend())
    assert {u[len("#cs-") :] for u in uses(legend)} == set(charts.GLYPHS.values())
    words = ["".join(li.itertext()) for li in legend.iter("li")]
    assert words == [w for _kind, w in charts.LEGEND]
    assert uses(parse(charts.legend(["ms", "ok"]))) == ["#cs-ok", "#cs-ms"]


def test_failed_and_succeeded_differ_in_shape_not_only_colour() -> None:
    """Success rises above the middle line, failure hangs below it, missed is a cross."""
    defs = ET.fromstring(charts.DEFS)
    shapes = {e.get("id"): e for e in defs.iter() if e.get("id")}
    ok, bad = shapes["cs-ok"], shapes["cs-bad"]
    assert int(ok.get("y", "0")) + int(ok.get("height", "0")) <= charts.MID
    assert int(bad.get("y", "0")) > charts.MID
    assert shapes["cs-ms"].tag == "path" and shapes["cs-sk"].tag == "circle"


@pytest.mark.parametrize(
    "markup",
    [
        charts.run_strip([RunMark(HOSTILE, "failed", HOSTILE, 5.0, HOSTILE)]),
        charts.run_strip([RunMark("r", HOSTILE, HOSTILE, None, HOSTILE)], link=False),
        charts.duration_chart([RunMark(HOSTILE, "failed", HOSTILE, 5.0, HOSTILE)]),
        charts.timeline(
            [Lane(HOSTILE, "/tasks/" + HOSTILE, fires=(START.timestamp() + 60,))],
            START.timestamp(),
            86400,
            PARIS,
        ),
        charts.timeline(
            [Lane(HOSTILE, "/x", bands=((START.timestamp(), START.timestamp() + 600),), every=1)],
            START.timestamp(),
            86400,
            PARIS,
        ),
    ],
)
def test_text_from_data_is_escaped(markup: str) -> None:
    """Hostile names, ids and notes stay text: no tag, no raw control or surrogate survives."""
    assert "<script" not in markup and "\x00" not in markup and "\ud800" not in markup
    root = parse(markup)
    assert not list(root.iter("script"))
    texts = "".join(root.itertext()) + "".join(v for e in root.iter() for v in e.attrib.values())
    assert "<script>alert('x')</script> & \"q\" \ufffd\ufffd\ufffd" in texts
    markup.encode()  # a lone surrogate would fail here, as in the HTTP response


def test_empty_data_draws_empty_pictures() -> None:
    """No runs and no lanes: well-formed SVG saying so, no marks."""
    strip = parse(charts.run_strip([]))
    assert uses(strip) == [] and not list(strip.iter("a"))
    chart = charts.duration_chart([])
    assert "no finished runs yet" in chart and not list(parse(chart).iter("a"))
    timeline = charts.timeline([], START.timestamp(), 86400, PARIS)
    assert "no active scheduled tasks" in timeline
    parse(timeline)
    assert charts.summary([]) == "no runs"


def test_one_run_sits_at_the_right_edge() -> None:
    """The newest run is the rightmost column, linked to its run page."""
    root = parse(charts.run_strip([run(7)]))
    (link,) = root.iter("a")
    assert link.get("href") == f"/runs/{7:032x}"
    assert next(link.iter("use")).get("x") == str(49 * charts.CELL)


def test_fifty_runs_newest_right_each_linked() -> None:
    """50 runs (given newest first): 50 links, oldest left; more than 50 are left out."""
    runs = [run(i) for i in range(60)]  # run 0 is the newest
    root = parse(charts.run_strip(runs))
    links = [a.get("href") for a in root.iter("a")]
    assert len(links) == 50
    assert links[0] == f"/runs/{49:032x}" and links[-1] == f"/runs/{0:032x}"
    svg = root.find("svg[@class='strip wide']")
    assert svg is not None and svg.get("viewBox") == "0 0 500 28"


def test_middle_line_runs_under_the_runs_only() -> None:
    """A strip of 14 runs in 50 slots draws its middle line (a CSS background) under 28%."""
    assert 'style="background-size:28% 1px"' in charts.run_strip([run(i) for i in range(14)])
    assert "style=" not in charts.run_strip([run(i) for i in range(50)])
    assert 'style="background-size:50% 1px"' in charts.run_strip(
        [run(i) for i in range(6)], slots=12, link=False
    )


def test_wrapped_strip_reads_like_text() -> None:
    """For a phone, 30 runs in rows of 25: the oldest at the top left, the newest last."""
    root = parse(charts.run_strip([run(i) for i in range(30)], per_row=25))
    svg = root.find("svg")
    assert svg is not None and svg.get("viewBox") == "0 0 250 62"
    places = [(u.get("x"), u.get("y")) for u in svg.iter("use")]
    assert places[0] == ("0", None) and places[24] == ("240", None)
    assert places[25] == ("0", "34") and places[-1] == ("40", "34")
    assert [a.get("href") for a in svg.iter("a")][-1] == f"/runs/{0:032x}"
    assert [line.get("x2") for line in svg.iter("line")] == ["250", "50"]


def test_compact_strip_draws_rows_of_equal_outcomes_as_one_mark() -> None:
    """The overview strip: a row of equal outcomes is one patterned rect, titled unless it
    succeeded; a lone outcome is its glyph; no links (the strip links the task page)."""
    runs = [run(1, "missed", None), run(2), run(3), run(4, "failed"), run(5, "failed"), run(6)]
    root = parse(charts.run_strip(runs, slots=12, link=False))
    svg = root.find("svg[@class='strip']")
    assert svg is not None and svg.get("width") == "120" and svg.get("role") == "img"
    assert svg.findtext("title") == "last 6 runs, oldest first: 3 succeeded, 2 failed, 1 missed"
    marks = [(m.tag, m.get("href") or m.get("fill"), m.get("x"), m.findtext("title")) for m in svg]
    assert marks[1:] == [
        ("use", "#cs-ok", "60", None),
        ("rect", "url(#cs-badp)", "70", "2 failed, 2026-01-05 12:54:00 to 2026-01-05 12:55:00"),
        ("rect", "url(#cs-okp)", "90", None),
        ("use", "#cs-ms", "110", "missed · 2026-01-05 12:58:00"),
    ]
    assert not list(root.iter("a"))


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0 ms"), (0.5, "0.5 ms"), (9.5, "9.5 ms"), (840, "840 ms"), (1240, "1.24 s"),
     (59_999, "60 s"), (125_000, "2 min 05 s"), (3_720_000, "1 h 02 min")],
)  # fmt: skip
def test_durations_read_like_words(ms: float, text: str) -> None:
    """fmt_ms picks the unit a person would."""
    assert charts.fmt_ms(ms) == text


@pytest.mark.parametrize(
    ("x", "top"), [(0.25, 0.25), (0.26, 0.5), (1, 1), (1.01, 2), (2.2, 2.5), (3, 5), (7, 10)]
)
def test_nice_ceil(x: float, top: float) -> None:
    """Scales end on 1, 2, 2.5 or 5 times a power of ten."""
    assert charts.nice_ceil(x) == pytest.approx(top)


def test_one_slow_outlier_is_cut_instead_of_squashing_the_rest() -> None:
    """A 60 s timeout among 100 ms runs: the scale follows the bulk, the outlier is cut."""
    scale = charts.duration_scale([100.0] * 20 + [60_000.0])
    assert scale.top == 200 and scale.cut == 1 and scale.longest == 60_000
    assert charts.duration_scale([100.0, 300.0, 900.0]).top == 1000


def test_duration_chart_bars_and_lane() -> None:
    """Finished runs are bars (solid ok, outlined otherwise); runs without a duration are their
    glyph in the lane under the zero line; every mark links to its run."""
    runs = [run(1, "succeeded", 1000.0), run(2, "failed", 500.0), run(3, "missed", None)]
    markup = charts.duration_chart(runs)
    root = parse(markup)
    bars = {r.get("class"): r for r in root.iter("rect") if r.get("class", "").startswith("d-")}
    assert set(bars) == {"d-ok", "d-bad"}
    assert float(bars["d-ok"].get("height", 0)) == 2 * float(bars["d-bad"].get("height", 0))
    assert uses(root) == ["#cs-ms"]
    assert len(list(root.iter("a"))) == 3
    assert "scale 0 to 1 s" in markup
    assert "median 750 ms" in markup


def test_sparse_lane_draws_each_fire_in_one_path() -> None:
    """An hourly task: 24 ticks in one path, its title listing the first times in the zone."""
    fires = upcoming(CronSchedule("0 * * * *", PARIS), START, START.timestamp() + HORIZON)
    markup = charts.timeline(
        [Lane("hourly", "/tasks/hourly", fires=fires.fires)], START.timestamp(), 86400, PARIS
    )
    root = parse(markup)
    (path,) = root.iter("path")
    assert (path.get("d") or "").count("v") == 24
    title = path.findtext("title") or ""
    assert title.startswith("24 fires: 14:00, 15:00, 16:00") and title.endswith("and 16 more")
    assert "24 fires" in "".join(root.itertext())


def test_every_second_task_is_a_band_not_86400_marks() -> None:
    """An every-second schedule: one band over the whole window, in a few hundred bytes."""
    fires = upcoming(CronSchedule("* * * * * *", PARIS), START, START.timestamp() + HORIZON)
    assert fires.every == 1 and len(fires.fires) < 100
    lane = Lane("busy", "/tasks/busy", fires.fires, fires.bands, fires.every)
    markup = charts.timeline([lane], START.timestamp(), 86400, PARIS)
    root = parse(markup)
    bands = [r for r in root.iter("rect") if r.get("class") == "bd"]
    assert len(bands) == 1 and bands[0].get("x") == "0" and bands[0].get("width") == "1440"
    assert not list(root.iter("path"))
    assert "about every second" in markup and "all day" in markup
    lanes = [
        Lane(f"busy-{i}", f"/tasks/busy-{i}", fires.fires, fires.bands, 1.0) for i in range(100)
    ]
    size = len(charts.timeline(lanes, START.timestamp(), 86400, PARIS).encode())
    assert size < 30_000, size


def test_office_hours_band_sits_at_local_hours() -> None:
    """Every minute 9-17 on weekdays (Paris): bands from 09:00 to 18:00 local time."""
    fires = upcoming(CronSchedule("* 9-17 * * 1-5", PARIS), START, START.timestamp() + HORIZON)
    lane = Lane("office", "/tasks/office", fires.fires, fires.bands, fires.every)
    title = next(parse(charts.timeline([lane], START.timestamp(), 86400, PARIS)).iter("g"))
    assert "about every 1 min" in (title.findtext("title") or "")
    assert "13:07:13 to 18:00, 09:00 to 13:07:13" in (title.findtext("title") or "")


def test_hour_labels_follow_the_zone_across_dst() -> None:
    """On the spring-forward day the labels are still whole local hours; midnight is a day."""
    start = datetime(2026, 3, 28, 12, 30, tzinfo=UTC).timestamp()  # 13:30 in Paris
    root = parse(charts.timeline([], start, 86400, PARIS))
    labels = [t.text for t in root.iter("text") if t.get("text-anchor") == "middle"]
    assert labels == ["18:00", "21:00", "Sun", "03:00", "06:00", "09:00", "12:00"]


def test_paused_and_pending_lanes_say_so() -> None:
    """A paused lane is drawn muted and says its fires are recorded missed; a pending one says
    it is not computed yet; a task with no fire in the window says that."""
    lanes = [
        Lane("p", "/tasks/p", fires=(START.timestamp() + 60,), paused=True),
        Lane("q", "/tasks/q", pending=True),
        Lane("r", "/tasks/r"),
    ]
    markup = charts.timeline(lanes, START.timestamp(), 86400, PARIS)
    text = "".join(parse(markup).itertext())
    assert "paused, recorded missed" in text and "not computed yet" in text
    assert "no fire in these hours" in text
    assert '<g class="ps">' in markup


def overview(statuses: list[str]) -> bytes:
    """The task list of 100 tasks (a third of them every second) with 12 recent runs each and
    the 24 h timeline, as the dashboard renders it."""
    crons = ["* * * * * *"] * 3 + ["*/10 * * * * *", "*/5 * * * *", "0 * * * *", "0 3 * * *"] * 2
    tasks, lanes = [], []
    for i in range(100):
        cron, name = crons[i % len(crons)], f"sync-crm-contacts-{i:03d}"
        schedule = CronSchedule(cron, PARIS)
        recent = [
            {
                "run_id": f"{i:016x}{j:016x}",
                "status": statuses[(i + j) % len(statuses)],
                "scheduled_at": datetime.fromtimestamp(START.timestamp() - 60 * j, PARIS)
                .isoformat(timespec="milliseconds"),
            }
            for j in range(12)
        ]  # fmt: skip
        tasks.append({
            "name": name, "description": "copies new CRM contacts into the warehouse",
            "status": "active", "paused": False, "schedule": schedule.describe(), "cron": cron,
            "timezone": "Europe/Paris", "next": [START.astimezone(PARIS).isoformat()],
            "last_run": {**recent[0], "task": name}, "recent": recent,
        })  # fmt: skip
        fires = upcoming(schedule, START, START.timestamp() + HORIZON)
        lanes.append(Lane(name, f"/tasks/{name}", fires.fires, fires.bands, fires.every))
    page = dashboard.tasks_response(
        tasks, csrf="0" * 64, running=3, lanes=lanes, now=START.timestamp(), tz=PARIS
    )
    assert isinstance(page.text, str)
    return page.text.encode()


def test_overview_for_100_tasks_stays_under_200_kb() -> None:
    """100 tasks incl. every-second ones: under 190 KB with one run in ten failing, and on a day
    when every run fails (a row of failures is one mark); the pictures are ~60 KB of it."""
    usual = overview(["succeeded"] * 9 + ["failed"])
    outage = overview(["failed"])
    assert len(usual) < 190_000, len(usual)
    assert len(outage) < 190_000, len(outage)
    page = usual.decode()
    strips = sum(map(len, re.findall(r'<svg class="strip".*?</svg>', page)))
    timeline = page[page.index('<svg class="tl"') : page.index("</div>", page.index('class="tl"'))]
    assert strips < 35_000 and len(timeline) < 32_000, (strips, len(timeline))
