"""Duration strings: parsing and formatting."""

from __future__ import annotations

import pytest

from daemon.core.durations import MAX_DURATION, MAX_RETENTION, format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("7d", 604800),
        ("2w", 1209600),
        ("1.5h", 5400),
        ("1m30s250ms", 90.25),
        (" 10S ", 10),
        ("45", 45),
        ("0", 0),
        (3600, 3600),
        (0.25, 0.25),
    ],
)
def test_parse(value: str | float, seconds: float) -> None:
    """Units ms s m h d w combine; a bare number is seconds."""
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-5s", "must not be negative"),
        (-1, "must not be negative"),
        ("", "empty"),
        ("soon", 'invalid duration "soon"'),
        ("5 minutes", "expected a duration like"),
        ("1h1h", 'unit "h" given twice'),
        ("5x", "expected a duration like"),
        (True, "invalid duration True"),
        (float("nan"), "invalid duration"),
    ],
)
def test_parse_errors(value: str | float, message: str) -> None:
    """Garbage and negative values raise ValueError with a clear message."""
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.5, "500ms"),
        (30, "30s"),
        (5400, "1h30m"),
        (90061, "1d1h1m1s"),
        (1.25, "1s250ms"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    """format_duration is compact and parses back to the same value."""
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "maximum", "message"),
    [
        (1e300, MAX_DURATION, "must be at most 366d"),
        ("99999999999999999999d", MAX_DURATION, "must be at most 366d"),
        ("367d", MAX_DURATION, "must be at most 366d"),
        (10**400, MAX_DURATION, "must be at most 366d"),
        (-(10**400), MAX_DURATION, "must not be negative"),
        ("9" * 400 + "s", MAX_DURATION, "must be at most 366d"),
        (float("inf"), MAX_RETENTION, "invalid duration"),
        ("40000d", MAX_RETENTION, "must be at most 36525d"),
    ],
)
def test_bounds(value: str | float, maximum: float, message: str) -> None:
    """A duration is finite, not negative and at most the setting's maximum."""
    with pytest.raises(ValueError, match=message):
        parse_duration(value, maximum)


@pytest.mark.parametrize(
    ("value", "maximum", "seconds"),
    [("366d", MAX_DURATION, 366 * 86400), ("36525d", MAX_RETENTION, 36525 * 86400)],
)
def test_bounds_are_inclusive(value: str, maximum: float, seconds: float) -> None:
    """The maximum itself is allowed."""
    assert parse_duration(value, maximum) == seconds
