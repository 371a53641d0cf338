"""Xano event schedules: the grid, parsing, words, JSON/TOML loading, `check`, and the scheduler's
policies (overlap, misfire, catch-up, pause, one row per slot) on a fake clock."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.core.events import Event, EventSchedule, parse_instant
from daemon.engine.compiler import CompiledTask
from daemon.state.store import StateStore
from daemon.testing import FakeClock
from tests.conftest import CliRun
from tests.scheduling.test_catch_up import Daemon, rows
from tests.scheduling.test_catch_up import store as store
from tests.scheduling.test_scheduler import Harness, make_task, start
from tests.scheduling.test_scheduler import stopper as stopper

START = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


def t(text: str) -> datetime:
    return parse_instant(text)


def ev(starts_on: str, freq: int | None = None, ends_on: str | None = None) -> Event:
    return Event(t(starts_on), freq, t(ends_on) if ends_on else None)


def event_task(name: str, *events: Event, **policy: Any) -> CompiledTask:
    """A scheduler task on events (make_task builds the rest; its cron is replaced)."""
    base = make_task(name, **policy)
    return dataclasses.replace(base, cron=None, schedule=EventSchedule(events))


# --- the grid -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "after", "expected"),
    [
        # a future start is the first fire
        (
            [ev("2026-01-01T00:00:00Z", 3600)],
            "2025-12-31T23:00:00Z",
            ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"],
        ),
        # a past start never fires retroactively: the next grid point after `after`
        (
            [ev("2025-01-01T03:00:00Z", 86400)],
            "2026-01-05T12:00:00Z",
            ["2026-01-06T03:00:00Z", "2026-01-07T03:00:00Z", "2026-01-08T03:00:00Z"],
        ),
        # exactly on a grid point: strictly after
        (
            [ev("2026-01-01T00:00:00Z", 60)],
            "2026-01-01T00:01:00Z",
            ["2026-01-01T00:02:00Z", "2026-01-01T00:03:00Z", "2026-01-01T00:04:00Z"],
        ),
        # anchored at starts_on (no drift), odd frequencies
        (
            [ev("2026-01-01T00:00:07Z", 45)],
            "2026-01-01T00:00:00Z",
            ["2026-01-01T00:00:07Z", "2026-01-01T00:00:52Z", "2026-01-01T00:01:37Z"],
        ),
        # ends_on is inclusive, and the schedule ends there
        (
            [ev("2026-01-01T00:00:00Z", 3600, "2026-01-01T02:00:00Z")],
            "2026-01-01T00:30:00Z",
            ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"],
        ),
        # no freq: once, then nothing
        ([ev("2026-01-01T08:00:00Z")], "2025-01-01T00:00:00Z", ["2026-01-01T08:00:00Z"]),
        ([ev("2026-01-01T08:00:00Z")], "2026-01-01T08:00:00Z", []),
        # several events are independent and interleave
        (
            [ev("2026-01-01T09:00:00Z", 86400), ev("2026-01-01T21:00:00Z", 86400)],
            "2026-01-01T10:00:00Z",
            ["2026-01-01T21:00:00Z", "2026-01-02T09:00:00Z", "2026-01-02T21:00:00Z"],
        ),
        # two events on the same instant are one slot
        (
            [ev("2026-01-01T00:00:00Z", 1800), ev("2026-01-01T00:00:00Z", 3600)],
            "2025-12-31T23:59:00Z",
            ["2026-01-01T00:00:00Z", "2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z"],
        ),
        # fixed offsets, no DST: +0200 is two hours before UTC
        (
            [ev("2026-03-29 03:00:00+0200", 86400)],
            "2026-03-28T00:00:00Z",
            ["2026-03-29T01:00:00Z", "2026-03-30T01:00:00Z", "2026-03-31T01:00:00Z"],
        ),
    ],
)
def test_next_fires(events: list[Event], after: str, expected: list[str]) -> None:
    """Fires at starts_on + k·freq strictly after the asked time, up to ends_on, in UTC (fewer
    than three listed: the schedule has no more)."""
    schedule = EventSchedule(events)
    fires = schedule.next_n(t(after), 3)
    assert fires == [t(e) for e in expected]
    assert all(f.tzinfo is not None and f.utcoffset() == timedelta(0) for f in fires)


def test_far_grid_points_stay_exact() -> None:
    """Ten years of 7-second steps land exactly on the grid (integer arithmetic, no float drift)."""
    schedule = EventSchedule([ev("2020-01-01T00:00:00.250Z", 7)])
    fire = schedule.next_after(t("2030-06-01T00:00:00Z"))
    elapsed = fire - t("2020-01-01T00:00:00.250Z")
    assert elapsed % timedelta(seconds=7) == timedelta(0)
    assert timedelta(0) < fire - t("2030-06-01T00:00:00Z") <= timedelta(seconds=7)


def test_exhausted_schedule_raises_lookup_error() -> None:
    """Past its last event the schedule says so the way a cron schedule does."""
    with pytest.raises(LookupError):
        EventSchedule([ev("2020-01-01T00:00:00Z", 60, "2020-01-02T00:00:00Z")]).next_after(START)
    with pytest.raises(ValueError, match="aware"):
        EventSchedule([ev("2020-01-01T00:00:00Z")]).next_after(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-01 03:00:00+0000", "2025-01-01T03:00:00+00:00"),
        ("2025-01-01T03:00:00Z", "2025-01-01T03:00:00+00:00"),
        ("2025-01-01T03:00:00z", "2025-01-01T03:00:00+00:00"),
        ("2025-01-01 03:00:00-0530", "2025-01-01T03:00:00-05:30"),
        ("2025-01-01T03:00:00+02:00", "2025-01-01T03:00:00+02:00"),
        ("2025-01-01T03:00:00.5Z", "2025-01-01T03:00:00.500000+00:00"),
    ],
)
def test_parse_instant(text: str, expected: str) -> None:
    """Xano's literal, RFC 3339 with Z or an offset, fractions."""
    assert parse_instant(text).isoformat() == expected


@pytest.mark.parametrize(
    "text", ["2025-01-01 03:00:00", "2025-13-01T00:00:00Z", "tomorrow", "", "2025-01-01Z"]
)
def test_parse_instant_refuses(text: str) -> None:
    """No offset, impossible dates and other words are errors (events are instants)."""
    with pytest.raises(ValueError, match="time"):
        parse_instant(text)


@pytest.mark.parametrize(
    ("freq", "ends_on", "message"),
    [
        (0, None, "freq must be"),
        (-60, None, "freq must be"),
        (60, "2024-12-31T00:00:00Z", "before starts_on"),
    ],
)
def test_invalid_events(freq: int, ends_on: str | None, message: str) -> None:
    """A freq below one second or an ends_on before starts_on cannot make an event."""
    with pytest.raises(ValueError, match=message):
        ev("2025-01-01T00:00:00Z", freq, ends_on)


@pytest.mark.parametrize(
    ("events", "words"),
    [
        ([ev("2025-01-01 03:00:00+0000", 86400)], "every day from 2025-01-01 03:00 UTC"),
        ([ev("2025-01-01 00:05:00+0000", 3600)], "every hour from 2025-01-01 00:05 UTC"),
        ([ev("2025-01-01 00:00:00+0000", 300)], "every 5 minutes from 2025-01-01 00:00 UTC"),
        ([ev("2025-01-01 00:00:00+0000", 45)], "every 45 seconds from 2025-01-01 00:00 UTC"),
        ([ev("2025-01-01 00:00:00+0000", 1209600)], "every 2 weeks from 2025-01-01 00:00 UTC"),
        ([ev("2025-01-01 08:00:30+0200")], "once at 2025-01-01 08:00:30 +0200"),
        (
            [ev("2025-01-01 00:05:00+0000", 3600, "2026-12-31 23:59:59+0000")],
            "every hour from 2025-01-01 00:05 UTC until 2026-12-31 23:59:59 UTC",
        ),
        (
            [ev("2025-01-01 09:00:00+0000", 86400), ev("2025-01-01 21:00:00+0000", 86400)],
            "every day from 2025-01-01 09:00 UTC; every day from 2025-01-01 21:00 UTC",
        ),
    ],
)
def test_describe(events: list[Event], words: str) -> None:
    """`check` shows events in words, like cron's "daily at 09:00"."""
    assert EventSchedule(events).describe() == words


def test_expression_identifies_the_schedule_exactly() -> None:
    """Equal events give equal keys whatever the offset they are written in; any change differs
    (the scheduler memoizes next fires by this key)."""
    a = EventSchedule([ev("2025-01-01 03:00:00+0000", 86400)])
    b = EventSchedule([ev("2025-01-01T05:00:00+02:00", 86400)])
    assert a.expression == b.expression and a == b and a.tz.key == "UTC"
    others = [
        EventSchedule([ev("2025-01-01 03:00:00+0000", 86401)]),
        EventSchedule([ev("2025-01-01 03:00:01+0000", 86400)]),
        EventSchedule([ev("2025-01-01 03:00:00+0000", 86400, "2030-01-01 00:00:00+0000")]),
        EventSchedule([ev("2025-01-01 03:00:00+0000")]),
    ]
    assert len({a.expression, *(o.expression for o in others)}) == 5


# --- the scheduler ---------------------------------------------------------------------------


async def test_scheduler_fires_on_the_grid(stopper: list[Harness]) -> None:
    """Every 10 s from a past starts_on: the next grid point is the first fire, none before."""
    task = event_task("e", ev("2026-01-05T11:59:55Z", 10))
    h = await start([task])
    stopper.append(h)
    await h.clock.advance(60)
    assert h.recorder.seconds("succeeded") == [5.0, 15.0, 25.0, 35.0, 45.0, 55.0]


async def test_scheduler_ends_on_inclusive_and_once(stopper: list[Harness]) -> None:
    """An event with ends_on fires through its last instant; a one-shot fires once; coinciding
    instants of two events are one run."""
    tasks = [
        event_task("ends", ev("2026-01-05T12:00:10Z", 10, "2026-01-05T12:00:30Z")),
        event_task("once", ev("2026-01-05T12:00:20Z")),
        event_task("both", ev("2026-01-05T12:00:10Z", 10), ev("2026-01-05T12:00:20Z", 20)),
    ]
    h = await start(tasks)
    stopper.append(h)
    await h.clock.advance(60)

    def at(name: str) -> list[float]:
        base = START.timestamp() * 1000
        return [(c.scheduled_at - base) / 1000 for c in h.run.calls if c.task == name]

    assert at("ends") == [10.0, 20.0, 30.0]
    assert at("once") == [20.0]
    assert at("both") == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]


async def test_scheduler_overlap_skip_and_misfire(stopper: list[Harness]) -> None:
    """Overlap `skip` records the slot skipped while a run lasts; a suspended clock makes the
    slots beyond misfire_grace missed, as for cron."""
    h = await start([event_task("slow", ev("2026-01-05T12:00:01Z", 1), misfire_grace=2)])
    stopper.append(h)
    h.run.durations["slow"] = 2.5
    await h.clock.advance(4)
    assert h.recorder.statuses("slow")[:3] == ["skipped", "skipped", "succeeded"]
    h.run.durations["slow"] = 0
    await h.clock.jump(30)
    await h.clock.advance(1)
    assert "missed" in h.recorder.statuses("slow")


async def test_store_catch_up_pause_and_one_row_per_slot(store: StateStore) -> None:
    """With the real state store: down across three slots, `catch_up: all` runs each once (as
    catch_up); a paused task's slots are missed; every slot is exactly one row."""
    task = event_task("c", ev("2026-01-05T12:00:00Z", 60), misfire_grace=1, catch_up="all")
    clock = FakeClock(START - timedelta(seconds=30))
    first = Daemon(store, clock, [task])
    await first.start()
    await first.advance(40)  # 12:00 runs
    await first.stop()
    await clock.jump(200)  # down: 12:01, 12:02, 12:03
    second = Daemon(store, clock, [task])
    sched = await second.start()
    await second.advance(20)
    sched.paused = {"c"}
    await second.advance(60)  # 12:04 paused
    sched.paused = set()
    await second.advance(60)  # 12:05 runs
    await second.stop()
    got = [(r["status"], r["trigger"], r["reason"]) for r in await rows(store, "c")]
    assert got == [
        ("succeeded", "schedule", None),
        ("succeeded", "catch_up", None),
        ("succeeded", "catch_up", None),
        ("succeeded", "catch_up", None),
        ("missed", "schedule", "paused"),
        ("succeeded", "schedule", None),
    ]
    assert [r["scheduled_at"] for r in await rows(store, "c")] == [
        int((START + timedelta(minutes=m)).timestamp() * 1000) for m in range(6)
    ]


# --- loading and `check` ---------------------------------------------------------------------


def _config(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / "tasks").mkdir(exist_ok=True)
        (folder / "tasks" / name).write_text(text)
    config = folder / "config.toml"
    config.write_text('[daemon]\ntimezone = "UTC"\n\n[admin]\nlisten = ""\n')
    return config


STACK = '[{"function": "Log", "message": "x"}]'


def test_check_json_events_in_json_and_toml(cli: CliRun, tmp_path: Path) -> None:
    """JSON `{events: [...]}`, the list alone, and TOML (native datetimes too) all load; `check
    --json` shows `cron: null`, the events under `schedule`, and the next fires."""
    files = {
        "a.json": '{"name": "a", "schedule": {"events": [{"starts_on": "2025-01-01T08:00:00Z",'
        ' "freq": 86400}], "catch_up": "latest"}, "function_stack": ' + STACK + "}",
        "b.json": '{"name": "b", "schedule": [{"starts_on": "2025-01-01 09:00:00+0000",'
        ' "freq": 3600, "ends_on": "2026-03-01 11:00:00+0000"}], "function_stack": ' + STACK + "}",
        "c.toml": 'name = "c"\nfunction_stack = [{function = "Log", message = "x"}]\n'
        "[[schedule]]\nstarts_on = 2026-03-01T10:30:00Z\n",
    }
    code, out, err = cli(
        "check",
        "-c",
        str(_config(tmp_path, files)),
        "--json",
        "--from",
        "2026-03-01T10:00:00Z",
        "--next",
        "2",
    )
    assert code == 0, err
    doc = json.loads(out)
    tasks = {t["name"]: t for t in doc["tasks"]}
    assert tasks["a"]["cron"] is None
    assert tasks["a"]["next"] == ["2026-03-02T08:00:00+00:00", "2026-03-03T08:00:00+00:00"]
    assert tasks["b"]["next"] == ["2026-03-01T11:00:00+00:00"]  # ends_on inclusive, then done
    assert tasks["c"]["next"] == ["2026-03-01T10:30:00+00:00"]
    assert tasks["b"]["schedule"] == {
        "events": [
            {
                "starts_on": "2025-01-01T09:00:00+00:00",
                "freq": 3600,
                "ends_on": "2026-03-01T11:00:00+00:00",
            }
        ],
        "description": "every hour from 2025-01-01 09:00 UTC until 2026-03-01 11:00 UTC",
    }
    assert tasks["a"]["schedule"]["events"][0]["freq"] == 86400


@pytest.mark.parametrize(
    ("schedule", "path", "message"),
    [
        (
            '{"events": [{"starts_on": "2025-01-01 08:00:00"}]}',
            "schedule.events[0].starts_on",
            "offset",
        ),
        ('[{"starts_on": "2025-01-01T08:00:00Z", "freq": 0}]', "schedule[0].freq", "freq must be"),
        (
            '[{"starts_on": "2025-01-01T08:00:00Z", "ends_on": "2024-01-01T00:00:00Z"}]',
            "schedule[0].ends_on",
            "before starts_on",
        ),
        (
            '{"cron_expression": "* * * * *", "events": []}',
            "schedule",
            "cron_expression or events",
        ),
        ('{"timezone": "UTC"}', "schedule.cron_expression", "missing required key"),
        ('[{"freq": 60}]', "schedule[0].starts_on", "missing required key"),
    ],
)
def test_check_reports_bad_events(
    cli: CliRun, tmp_path: Path, schedule: str, path: str, message: str
) -> None:
    """Each invalid event is a check error at its own path."""
    text = '{"name": "x", "schedule": ' + schedule + ', "function_stack": ' + STACK + "}"
    code, out, _ = cli("check", "-c", str(_config(tmp_path, {"x.json": text})), "--json")
    assert code == 2
    errors = json.loads(out)["errors"]
    assert [(e["path"], message in e["message"]) for e in errors] == [(path, True)], errors
