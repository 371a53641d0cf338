"""Cron expressions: parsing, DST-aware next fire times (via cronsim), plain-word descriptions."""

from __future__ import annotations

import calendar
import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

# cronsim does not know the `@` macros; Debian cron's meanings.
MACROS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_FIELD_NAMES = ["second", "minute", "hour", "day-of-month", "month", "day-of-week"]
_DAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_DOW_ALIASES = {name[:3].upper(): i for i, name in enumerate(_DAY_NAMES)}


def _nearest_weekday(year: int, month: int, day: int) -> int | None:
    """Day of month of the weekday nearest to `day` (Quartz `W`), never leaving the month."""
    last = calendar.monthrange(year, month)[1]
    if day > last:
        return None
    weekday = date(year, month, day).weekday()  # Monday = 0
    if weekday == 5:  # Saturday: the Friday before, or the Monday after on the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before on the last day
        return day + 1 if day < last else day - 2
    return day


@functools.lru_cache(maxsize=4096)
def _validate(cron: str) -> None:
    """Parse once per distinct expression: 10,000 tasks often share a handful of them."""
    CronSim(cron, datetime(2000, 1, 1, tzinfo=UTC))


class CronSchedule:
    """A validated cron expression evaluated in one IANA timezone.

    Five fields, or six with leading seconds. DST follows Debian cron (docs/contract.md "Cron"):
    a job at a
    fixed local time that falls in a spring-forward gap fires once at the first instant after the
    gap, one whose time repeats in fall-back fires once (the first occurrence); jobs with `*` in the
    minute or hour field fire once per real interval, through both the gap and the repeated hour.
    """

    def __init__(self, expression: str, tz: ZoneInfo) -> None:
        self.expression = expression
        self.tz = tz
        self._description: str | None = None
        # Messages quote the expression: a hostile one must not turn into a megabyte of error.
        expression = expression if len(expression) <= 100 else expression[:100] + "…"
        if len(self.expression) > 1000:
            raise ValueError(f'invalid cron expression "{expression}": longer than 1000 characters')
        text = " ".join(self.expression.split())
        if not text:
            raise ValueError(f'invalid cron expression "{expression}": it is empty')
        if text.startswith("@"):
            macro = MACROS.get(text.lower())
            if macro is None:
                known = ", ".join(MACROS)
                raise ValueError(
                    f'invalid cron expression "{expression}": unknown macro "{text}"'
                    f" (known: {known})"
                )
            text = macro
        fields = text.upper().split()
        if len(fields) not in (5, 6):
            raise ValueError(
                f'invalid cron expression "{expression}": expected 5 fields'
                f" (minute hour day-of-month month day-of-week) or 6 with leading seconds,"
                f" got {len(fields)}"
            )
        # Quartz's "no specific value" marker means the same as `*` here.
        fields = ["*" if f == "?" else f for f in fields]
        self.has_seconds = len(fields) == 6
        if not self.has_seconds:
            fields.insert(0, "0")
        self._fields = fields
        self._weekday_day: int | None = None  # `15W`: cronsim lacks it, we filter candidates
        dom = fields[3]
        if dom.endswith("W") and dom != "LW":
            number = dom[:-1]
            if not number.isdigit() or not 1 <= int(number) <= 31:
                raise ValueError(
                    f'invalid cron expression "{expression}": bad day-of-month "{dom}"'
                    ' ("W" takes one day, like "15W")'
                )
            if fields[5] != "*":
                raise ValueError(
                    f'invalid cron expression "{expression}": "{dom}" cannot be combined with'
                    " a day-of-week"
                )
            self._weekday_day = int(number)
            # Candidates: the days the nearest weekday can be; the exact day is checked per month.
            low, high = max(1, self._weekday_day - 2), min(31, self._weekday_day + 2)
            fields[3] = f"{low}-{high}"
        self._cron = " ".join(fields)
        # cronsim's Debian-style DST handling (walking local wall time) applies to 5-field
        # expressions with a fixed minute and hour; extend it to 6-field ones so `0 30 2 * * *`
        # does not silently skip the spring-forward day.
        self._wall_clock = not fields[1].startswith("*") and not fields[2].startswith("*")
        try:
            _validate(self._cron)
        except CronSimError as exc:
            raise ValueError(
                f'invalid cron expression "{expression}": {self._reason(exc)}'
            ) from None
        except (ValueError, IndexError) as exc:
            raise ValueError(f'invalid cron expression "{expression}": {exc}') from None

    def _reason(self, exc: CronSimError) -> str:
        """cronsim says "Bad minute"; add the offending field's text."""
        message = str(exc)
        for index, name in enumerate(_FIELD_NAMES):
            if message == f"Bad {name}":
                return f'bad {name} field "{self._fields[index]}"'
        return message.lower() or "malformed"

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.tz.key!r})"

    def _iterator(self, start: datetime) -> CronSim:
        it = CronSim(self._cron, start)
        if self._wall_clock and it.fixup_tz is None and start.tzinfo is not UTC:
            # Same switch cronsim makes itself for 5-field fixed-time jobs.
            it.fixup_tz = it.dt.tzinfo
            it.dt = it.dt.replace(tzinfo=None)
        return it

    def next_after(self, after: datetime) -> datetime:
        """The first fire strictly after `after` (an aware datetime), as an aware time in `tz`.

        Pure. Raises ValueError if `after` is naive, LookupError if nothing fires for 50 years.
        """
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("next_after needs an aware datetime")
        after = after.astimezone(self.tz)
        start = after
        while True:
            try:
                it = self._iterator(start)
                candidate = next(it)
                # Wall-clock iteration can land on the first (earlier) occurrence of a repeated
                # hour when `after` is in the second one; those fires already happened.
                while not self._later(candidate, after) or not self._day_ok(candidate):
                    if not self._day_ok(candidate):
                        # Skip the rest of a rejected `W` candidate day in one jump.
                        next_day = datetime.combine(candidate.date() + timedelta(days=1), time())
                        it = self._iterator(next_day.replace(tzinfo=self.tz) - timedelta(seconds=1))
                    candidate = next(it)
            except StopIteration:
                raise LookupError(
                    f'cron expression "{self.expression}" has no fire time in the next 50 years'
                ) from None
            # Normalise: a time cronsim returns is real and unambiguous in `tz`.
            result = candidate.astimezone(UTC).astimezone(self.tz)
            # Compare in UTC: datetimes sharing a tzinfo compare by wall time, ignoring `fold`,
            # so 01:00 EST (second pass) would look earlier than 01:45 EDT.
            if result.astimezone(UTC) > after.astimezone(UTC):
                return result
            start = result

    def _later(self, candidate: datetime, after: datetime) -> bool:
        return candidate.astimezone(UTC) > after.astimezone(UTC)

    def _day_ok(self, candidate: datetime) -> bool:
        if self._weekday_day is None:
            return True
        wanted = _nearest_weekday(candidate.year, candidate.month, self._weekday_day)
        return wanted == candidate.day

    def next_n(self, after: datetime, n: int) -> list[datetime]:
        """The next `n` fires strictly after `after`, in order."""
        result: list[datetime] = []
        current = after
        for _ in range(n):
            current = self.next_after(current)
            result.append(current)
        return result

    def describe(self) -> str:
        """Plain words for common shapes ("every 5 minutes", "daily at 09:00"), else the text."""
        # Once per schedule object: tasks with the same expression share one (`check` of
        # 100,000 tasks asked 200,000 times).
        if self._description is None:
            self._description = self._words()
        return self._description

    def _words(self) -> str:
        text = " ".join(self.expression.split())
        if text.lower() in MACROS:
            return {
                "@hourly": "every hour",
                "@daily": "daily at 00:00",
                "@midnight": "daily at 00:00",
                "@weekly": "every Sunday at 00:00",
                "@monthly": "on day 1 of every month at 00:00",
                "@yearly": "every year on January 1 at 00:00",
                "@annually": "every year on January 1 at 00:00",
            }[text.lower()]
        sec, minute, hour, dom, month, dow = self._fields
        if self._weekday_day is not None or sec != "0":
            if self.has_seconds and [minute, hour, dom, month, dow] == ["*"] * 5:
                if sec == "*":
                    return "every second"
                if sec.startswith("*/") and sec[2:].isdigit():
                    return f"every {sec[2:]} seconds"
            return self.expression
        if [hour, dom, month, dow] == ["*"] * 4:
            if minute == "*":
                return "every minute"
            if minute.startswith("*/") and minute[2:].isdigit():
                return f"every {int(minute[2:])} minutes"
            if minute.isdigit():
                return "every hour" if minute == "0" else f"every hour at minute {int(minute)}"
        if not (minute.isdigit() and hour.isdigit()):
            return self.expression
        at = f"{int(hour):02d}:{int(minute):02d}"
        if month != "*":
            return self.expression
        if dom == "*" and dow == "*":
            return f"daily at {at}"
        if dom == "*":
            days = self._weekday_names(dow)
            if days is not None:
                return f"every {days} at {at}"
        if dow == "*" and dom.isdigit():
            return f"on day {int(dom)} of every month at {at}"
        if dow == "*" and dom == "L":
            return f"on the last day of every month at {at}"
        return self.expression

    @staticmethod
    def _weekday_names(dow: str) -> str | None:
        if dow in ("1-5", "MON-FRI"):
            return "weekday"
        names: list[str] = []
        for part in dow.split(","):
            index = _DOW_ALIASES.get(part)
            if index is None and part.isdigit() and int(part) <= 7:
                index = int(part) % 7
            if index is None:
                return None
            names.append(_DAY_NAMES[index])
        return ", ".join(names)


@functools.lru_cache(maxsize=4096)
def shared_schedule(expression: str, tz: ZoneInfo) -> CronSchedule:
    """One schedule object per (expression, zone), shared by the tasks that have it: schedules
    are immutable (their words are worked out once), and 10,000 tasks often share a handful."""
    return CronSchedule(expression, tz)


def cron_problem(expression: str) -> str | None:
    """Why a cron expression is invalid, or None. Validity does not depend on the zone, so a
    valid expression is checked once (the UTC schedule is cached by `shared_schedule`)."""
    try:
        shared_schedule(expression, ZoneInfo("UTC"))
    except ValueError as exc:
        return str(exc)
    return None
