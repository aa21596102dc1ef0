"""When monitors run: fixed intervals (`every 15m`, no hourly minimum) or cron expressions.

`Schedule.next_after(t)` is the first scheduled time strictly after `t`. Interval schedules are anchored at
the monitor's creation, so a scheduler that was down skips the missed slots instead of running them all.
Cron: five fields (minute hour day-of-month month day-of-week) with `*`, lists, ranges, steps and names
(`MON`, `JAN`), plus `@hourly`, `@daily`, `@weekly`, `@monthly`; day-of-month and day-of-week combine with
OR when both are restricted, as in cron. Times are UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic

from tideml.errors import ValidationError

__all__ = ["CronExpression", "Schedule", "format_duration", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_COMPOUND = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def parse_duration(text: str | int | float | timedelta, *, field: str = "every") -> timedelta:
    """`90s`, `15m`, `1h30m`, `1d`, `2w`, ISO 8601 `PT1H`, or seconds as a number."""
    if isinstance(text, timedelta):
        value = text
    elif isinstance(text, int | float):
        value = timedelta(seconds=float(text))
    else:
        s = text.strip().lower().replace(" ", "")
        iso = _ISO.match(text.strip().upper())
        if iso and any(iso.groups()):
            d, h, m, sec = (int(g) if g else 0 for g in iso.groups())
            value = timedelta(days=d, hours=h, minutes=m, seconds=sec)
        elif _COMPOUND.fullmatch(s):
            value = timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(s)))
        elif _NUMBER.fullmatch(s):
            value = timedelta(seconds=float(s))
        else:
            raise ValidationError(
                f"{text!r} is not a duration",
                obj="schedule",
                field=field,
                fix="write e.g. 90s, 15m, 1h, 1h30m, 1d or PT1H",
            )
    if value.total_seconds() <= 0:
        raise ValidationError(
            f"{text!r} is not a positive duration", obj="schedule", field=field, fix="write e.g. 15m or 1h"
        )
    return value


def format_duration(value: timedelta) -> str:
    """`1h30m` for 5400 seconds."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


_NAMES = {
    "month": {m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())},  # noqa: SIM905
    "dow": {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])},
}
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("dow", 0, 7))


class CronExpression:
    """A parsed five-field cron expression (UTC)."""

    def __init__(self, expr: str) -> None:
        self.expr = expr.strip()
        text = _MACROS.get(self.expr.lower(), self.expr)
        parts = text.split()
        if len(parts) != 5:
            raise ValidationError(
                f"{expr!r} has {len(parts)} fields, cron needs 5 (minute hour day month weekday)",
                obj="schedule",
                field="cron",
                fix="write e.g. '0 * * * *' (hourly) or '*/15 * * * *'",
            )
        sets = [self._field(p, name, lo, hi) for p, (name, lo, hi) in zip(parts, _FIELDS, strict=True)]
        self.minutes, self.hours, self.days, self.months, dows = sets
        self.dows = {d % 7 for d in dows}
        self.day_any = parts[2] == "*"
        self.dow_any = parts[4] == "*"

    def _field(self, text: str, name: str, lo: int, hi: int) -> set[int]:
        out: set[int] = set()
        for item in text.split(","):
            step = 1
            if "/" in item:
                item, step_text = item.split("/", 1)
                step = self._int(step_text, name)
                if step <= 0:
                    raise self._error(name, f"step {step} must be positive")
            if item == "*":
                start, end = lo, hi if name != "dow" else 6
            elif "-" in item:
                a, b = item.split("-", 1)
                start, end = self._value(a, name), self._value(b, name)
            else:
                start = self._value(item, name)
                end = start if step == 1 else hi
            if not (lo <= start <= hi and lo <= end <= hi) or start > end:
                raise self._error(name, f"{item!r} is outside {lo}-{hi}")
            out.update(range(start, end + 1, step))
        return out

    def _value(self, text: str, name: str) -> int:
        names = _NAMES.get(name, {})
        if text.upper() in names:
            return names[text.upper()]
        return self._int(text, name)

    def _int(self, text: str, name: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise self._error(name, f"{text!r} is not a number") from None

    def _error(self, name: str, why: str) -> ValidationError:
        return ValidationError(
            f"cron {self.expr!r}: {name} field: {why}",
            obj="schedule",
            field="cron",
            fix="see `man 5 crontab`",
        )

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = ((t.weekday() + 1) % 7) in self.dows
        if self.day_any and self.dow_any:
            return True
        if self.day_any:
            return dow
        if self.dow_any:
            return dom
        return dom or dow

    def next_after(self, after: datetime) -> datetime:
        """The first matching minute strictly after `after`."""
        t = (after.astimezone(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
        limit = t + timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if t.hour not in self.hours:
                t = (t + timedelta(hours=1)).replace(minute=0)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            return t
        raise ValidationError(
            f"cron {self.expr!r} never matches",
            obj="schedule",
            field="cron",
            fix="check the day and month fields",
        )


class Schedule(pydantic.BaseModel):
    """How often a monitor runs and how much capture each run looks at."""

    model_config = pydantic.ConfigDict(extra="forbid")

    every_seconds: float | None = pydantic.Field(None, gt=0)
    cron: str | None = None
    window_seconds: float | None = pydantic.Field(
        None, gt=0, description="Default: the interval (1h for cron)."
    )
    anchor: datetime | None = None

    @pydantic.model_validator(mode="after")
    def _one(self) -> Schedule:
        if self.cron is not None:
            CronExpression(self.cron)
        return self

    @classmethod
    def build(
        cls, *, every: Any = None, cron: str | None = None, window: Any = None, anchor: datetime | None = None
    ) -> Schedule:
        """From user input (`every="1h"` or `cron="0 * * * *"`; neither means on demand only)."""
        if every is not None and cron is not None:
            raise ValidationError(
                "give either an interval or a cron expression",
                obj="schedule",
                field="every",
                fix="drop one of them",
            )
        if cron is not None:
            CronExpression(cron)  # a bad expression is a tideml error naming the field, not pydantic's
        return cls(
            every_seconds=parse_duration(every).total_seconds() if every is not None else None,
            cron=cron,
            window_seconds=parse_duration(window, field="window").total_seconds()
            if window is not None
            else None,
            anchor=anchor,
        )

    @property
    def on_demand(self) -> bool:
        """True when the monitor runs only when asked."""
        return self.every_seconds is None and self.cron is None

    @property
    def window(self) -> timedelta:
        """How far back a run looks."""
        if self.window_seconds is not None:
            return timedelta(seconds=self.window_seconds)
        if self.every_seconds is not None:
            return timedelta(seconds=self.every_seconds)
        return timedelta(hours=1)

    def next_after(self, after: datetime) -> datetime | None:
        """The next scheduled time strictly after `after` (None for on-demand monitors)."""
        if self.cron is not None:
            return CronExpression(self.cron).next_after(after)
        if self.every_seconds is None:
            return None
        anchor = (self.anchor or after).astimezone(UTC)
        step = self.every_seconds
        elapsed = (after.astimezone(UTC) - anchor).total_seconds()
        k = int(elapsed // step) + 1 if elapsed >= 0 else 0
        nxt = anchor + timedelta(seconds=k * step)
        if nxt <= after:
            nxt += timedelta(seconds=step)
        return nxt

    def describe(self) -> str:
        """`every 1h`, `cron 0 * * * *` or `on demand`."""
        if self.cron is not None:
            return f"cron {self.cron}"
        if self.every_seconds is not None:
            return f"every {format_duration(timedelta(seconds=self.every_seconds))}"
        return "on demand"
