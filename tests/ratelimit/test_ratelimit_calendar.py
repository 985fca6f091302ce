"""Calendar quotas reset at UTC midnight and on the 1st of each month."""

from __future__ import annotations

import datetime as dt

import pytest

from bastion.ratelimit import calendar_quota, calendar_window, parse_quota
from bastion.ratelimit.calendar import civil_from_days, days_from_civil

UTC = dt.UTC


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def test_civil_conversions_match_the_standard_library() -> None:
    day = dt.date(1970, 1, 1)
    for offset in range(-800, 200_000, 7):
        date = day + dt.timedelta(days=offset)
        assert days_from_civil(date.year, date.month, date.day) == offset
        assert civil_from_days(offset) == (date.year, date.month, date.day)


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (ts(2024, 2, 29, 23, 59, 59), ts(2024, 2, 1), ts(2024, 3, 1)),
        (ts(2023, 2, 10), ts(2023, 2, 1), ts(2023, 3, 1)),
        (ts(2026, 12, 31, 12), ts(2026, 12, 1), ts(2027, 1, 1)),
        (ts(2026, 1, 1), ts(2026, 1, 1), ts(2026, 2, 1)),
    ],
)
def test_month_window(now: float, start: float, end: float) -> None:
    assert calendar_window(now, "month") == (start, end)


def test_day_window_is_the_utc_day() -> None:
    assert calendar_window(ts(2026, 3, 5, 23, 30), "day") == (ts(2026, 3, 5), ts(2026, 3, 6))


def test_daily_quota_refuses_until_midnight_then_resets() -> None:
    rate = parse_quota("2/day")
    now = ts(2026, 3, 5, 22)
    first = calendar_quota(None, now, rate)
    second = calendar_quota(first.state, now + 1, rate)  # type: ignore[arg-type]
    refused = calendar_quota(second.state, now + 2, rate)  # type: ignore[arg-type]
    assert (first.allowed, second.allowed, refused.allowed) == (True, True, False)
    assert refused.retry_after == pytest.approx(ts(2026, 3, 6) - (now + 2))
    after_midnight = calendar_quota(second.state, ts(2026, 3, 6, 0, 0, 1), rate)  # type: ignore[arg-type]
    assert after_midnight.allowed
    assert after_midnight.remaining == 1


def test_calendar_quota_needs_a_calendar_rate() -> None:
    from bastion.ratelimit import parse_rate

    with pytest.raises(ValueError, match="parse_quota"):
        calendar_quota(None, 0.0, parse_rate("1/day"))
