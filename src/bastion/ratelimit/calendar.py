"""Quotas per UTC calendar day or month: fixed windows on the civil calendar.

A daily quota resets at 00:00 UTC, a monthly one at 00:00 UTC on the 1st. The window
bounds come from the proleptic Gregorian calendar (H. Hinnant's ``days_from_civil`` /
``civil_from_days``, the same arithmetic as the Redis Lua script), so leap years and
months of 28–31 days are exact. State: ``(window_start, count)``.
"""

from __future__ import annotations

import math

from bastion.ratelimit.rate import Calendar, Rate
from bastion.ratelimit.step import Step

__all__ = ["calendar_quota", "calendar_window", "civil_from_days", "days_from_civil"]


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of the date ``days`` after 1970-01-01."""
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def calendar_window(now: float, unit: Calendar) -> tuple[int, int]:
    """(start, end) in Unix seconds of the UTC calendar day or month containing ``now``."""
    days = math.floor(now / 86400)
    if unit == "day":
        return days * 86400, (days + 1) * 86400
    year, month, _ = civil_from_days(days)
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    start = days_from_civil(year, month, 1) * 86400
    return start, days_from_civil(next_year, next_month, 1) * 86400


def calendar_quota(state: tuple[int, ...] | None, now: float, rate: Rate, cost: int = 1) -> Step:
    """One quota decision: at most ``rate.limit`` units per calendar window."""
    if rate.calendar is None:
        raise ValueError("a calendar quota needs a rate from parse_quota() ('N/day', 'N/month')")
    start, end = calendar_window(now, rate.calendar)
    count = state[1] if state is not None and state[0] == start else 0
    until_end = end - now
    if count + cost <= rate.limit:
        return Step(
            state=(start, count + cost),
            allowed=True,
            remaining=rate.limit - count - cost,
            reset_after=until_end,
            retry_after=0.0,
            ttl=until_end,
        )
    return Step(
        state=state,
        allowed=False,
        remaining=max(0, rate.limit - count),
        reset_after=until_end,
        retry_after=until_end,
        ttl=until_end,
    )
