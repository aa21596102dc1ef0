"""Schedules: durations, cron expressions and interval slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tideml.errors import ValidationError
from tideml.monitor import CronExpression, Schedule, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("1d", 86400),
        ("2w", 1_209_600),
        ("PT1H", 3600),
        ("P1DT2H", 93600),
        ("45", 45),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["soon", "1x", "", "0m", "P", "-5m"])
def test_bad_durations_name_the_field(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_duration(text, field="window")
    assert info.value.field == "window"


def test_cron_next_times() -> None:
    saturday = datetime(2026, 1, 3, 12, 7, tzinfo=UTC)
    assert CronExpression("*/15 9-17 * * MON-FRI").next_after(saturday) == datetime(
        2026, 1, 5, 9, 0, tzinfo=UTC
    )
    assert CronExpression("@hourly").next_after(saturday) == datetime(2026, 1, 3, 13, 0, tzinfo=UTC)
    assert CronExpression("30 2 1 * *").next_after(saturday) == datetime(2026, 2, 1, 2, 30, tzinfo=UTC)
    assert CronExpression("0 0 29 2 *").next_after(saturday) == datetime(2028, 2, 29, 0, 0, tzinfo=UTC)
    # day of month OR day of week when both are given, as cron does
    assert CronExpression("0 0 10 * SUN").next_after(saturday) == datetime(2026, 1, 4, 0, 0, tzinfo=UTC)
    assert CronExpression("0 0 * * 7").next_after(saturday) == datetime(2026, 1, 4, 0, 0, tzinfo=UTC)
    every_minute = CronExpression("* * * * *")
    assert every_minute.next_after(saturday) == saturday.replace(minute=8)


@pytest.mark.parametrize("expr", ["61 * * * *", "* * *", "*/0 * * * *", "a * * * *", "0 0 31 2 *"])
def test_bad_cron_expressions(expr: str) -> None:
    with pytest.raises(ValidationError) as info:
        CronExpression(expr).next_after(datetime(2026, 1, 1, tzinfo=UTC))
    assert info.value.field == "cron"


def test_interval_slots_are_anchored_and_skip_missed_ones() -> None:
    anchor = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    s = Schedule.build(every="1h", anchor=anchor)
    assert s.next_after(anchor) == anchor + timedelta(hours=1)
    assert s.next_after(anchor + timedelta(hours=5, minutes=1)) == anchor + timedelta(hours=6)
    assert s.next_after(anchor + timedelta(hours=6)) == anchor + timedelta(hours=7)
    assert s.window == timedelta(hours=1) and s.describe() == "every 1h"
    assert Schedule.build(cron="@daily", window="6h").window == timedelta(hours=6)
    on_demand = Schedule.build()
    assert (
        on_demand.on_demand and on_demand.next_after(anchor) is None and on_demand.describe() == "on demand"
    )
    with pytest.raises(ValidationError):
        Schedule.build(every="1h", cron="@daily")
