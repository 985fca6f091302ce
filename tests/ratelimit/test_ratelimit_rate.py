"""Rates and quotas are parsed from config strings with clear errors."""

from __future__ import annotations

import pytest

from bastion.ratelimit import Rate, parse_quota, parse_rate


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("100/minute", 100, 60),
        ("100/min", 100, 60),
        ("10/second", 10, 1),
        ("10/s", 10, 1),
        ("1000/hour", 1000, 3600),
        ("1000/h", 1000, 3600),
        ("10000/day", 10000, 86400),
        ("50/5m", 50, 300),
        ("7/30s", 7, 30),
        (" 5 / 2h ", 5, 7200),
        ("3/MINUTE", 3, 60),
    ],
)
def test_parse_rate_accepts_documented_forms(text: str, limit: int, period: int) -> None:
    rate = parse_rate(text)
    assert (rate.limit, rate.period, rate.burst) == (limit, period, limit)
    assert rate.calendar is None


def test_burst_defaults_to_limit_and_can_be_set() -> None:
    assert parse_rate("100/minute", burst=10).burst == 10
    assert parse_rate("100/minute").emission_interval == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("100", "expected '<count>/<unit>'"),
        ("abc/minute", "expected '<count>/<unit>'"),
        ("100/fortnight", "unknown unit 'fortnight'"),
        ("0/minute", "count must be at least 1"),
        ("-1/minute", "expected"),
        ("10/0m", "multiple must be at least 1"),
        ("10/400d", "must not exceed one year"),
        ("1.5/second", "expected"),
    ],
)
def test_parse_rate_rejects_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_rate(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("burst", [0, -5, True, 2.5])
def test_bad_burst_is_rejected(burst: object) -> None:
    with pytest.raises(ValueError, match="invalid burst"):
        parse_rate("10/second", burst=burst)  # type: ignore[arg-type]


def test_non_string_rate_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_rate(100)  # type: ignore[arg-type]


def test_parse_quota_day_and_month() -> None:
    assert parse_quota("1000/day") == Rate(1000, 86400.0, 1000, "day")
    month = parse_quota("250000/month")
    assert (month.limit, month.calendar) == (250000, "month")
    with pytest.raises(ValueError, match="'<count>/day' or '<count>/month'"):
        parse_quota("5/hour")
