"""Rates: how many units per period, parsed from the configuration.

``parse_rate("100/minute")`` → 100 requests per 60 s, burst 100. Accepted forms::

    N/second  N/s  N/sec        N/minute  N/m  N/min
    N/hour    N/h  N/hr         N/day     N/d
    N/5m  N/30s  N/2h  N/1d     (a multiple of a unit)

``parse_quota("10000/day")`` and ``parse_quota("250000/month")`` build calendar quotas:
fixed windows on UTC calendar days or months (see :mod:`bastion.ratelimit.calendar`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["MONTH_NOMINAL", "Calendar", "Rate", "parse_quota", "parse_rate"]

Calendar = Literal["day", "month"]

#: Nominal length of a calendar month (30 days), used only where a duration is needed.
MONTH_NOMINAL = 30 * 86400

_UNITS: dict[str, int] = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}

_RATE = re.compile(r"^\s*(\d{1,12})\s*/\s*(\d{0,9})\s*([a-z]+)\s*$")
#: Largest accepted period (one year); larger values are almost surely config typos.
_MAX_PERIOD = 366 * 86400


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` units per ``period`` seconds; ``burst`` units may be spent at once (GCRA).

    ``calendar`` is set only for calendar quotas; then ``period`` is nominal.
    """

    limit: int
    period: float
    burst: int
    calendar: Calendar | None = None
    #: Seconds between two units at the sustained rate (GCRA's T), computed once.
    emission_interval: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"rate limit must be at least 1, got {self.limit}")
        if not 0 < self.period <= _MAX_PERIOD:
            raise ValueError(f"rate period must be in (0, 1 year], got {self.period} s")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst}")
        object.__setattr__(self, "emission_interval", self.period / self.limit)

    @property
    def window(self) -> int:
        """The period in whole seconds (at least 1), as advertised in headers."""
        return max(1, round(self.period))

    def __str__(self) -> str:
        if self.calendar:
            return f"{self.limit}/{self.calendar}"
        text = f"{self.limit}/{self.period:g}s"
        return text if self.burst == self.limit else f"{text} burst {self.burst}"


def parse_rate(text: str, burst: int | None = None) -> Rate:
    """Parse ``"N/unit"`` or ``"N/<k><unit>"`` into a :class:`Rate`.

    Raises ``ValueError`` with a message naming the bad value and the accepted forms.
    """
    if not isinstance(text, str):
        raise ValueError(f"rate must be a string like '100/minute', got {type(text).__name__}")
    match = _RATE.match(text.lower())
    if match is None:
        raise ValueError(
            f"invalid rate {text!r}: expected '<count>/<unit>' such as '100/minute', "
            "'10/second', '1000/hour', '10000/day' or '50/5m'"
        )
    count_text, multiple_text, unit = match.groups()
    if unit not in _UNITS:
        raise ValueError(
            f"invalid rate {text!r}: unknown unit {unit!r} "
            "(use second, minute, hour or day; s, m, h, d)"
        )
    multiple = int(multiple_text) if multiple_text else 1
    if multiple < 1:
        raise ValueError(f"invalid rate {text!r}: the period multiple must be at least 1")
    count = int(count_text)
    if count < 1:
        raise ValueError(f"invalid rate {text!r}: the count must be at least 1")
    period = multiple * _UNITS[unit]
    if period > _MAX_PERIOD:
        raise ValueError(f"invalid rate {text!r}: the period must not exceed one year")
    if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
        raise ValueError(f"invalid burst {burst!r} for rate {text!r}: must be an integer >= 1")
    return Rate(limit=count, period=float(period), burst=burst if burst is not None else count)


_QUOTA = re.compile(r"^\s*(\d{1,12})\s*/\s*(day|d|month|mo)\s*$")


def parse_quota(text: str) -> Rate:
    """Parse ``"N/day"`` or ``"N/month"`` into a calendar quota (fixed UTC windows)."""
    if not isinstance(text, str):
        raise ValueError(f"quota must be a string like '10000/day', got {type(text).__name__}")
    match = _QUOTA.match(text.lower())
    if match is None:
        raise ValueError(
            f"invalid quota {text!r}: expected '<count>/day' or '<count>/month' (UTC calendar)"
        )
    count = int(match.group(1))
    if count < 1:
        raise ValueError(f"invalid quota {text!r}: the count must be at least 1")
    if match.group(2) in ("day", "d"):
        return Rate(limit=count, period=86400.0, burst=count, calendar="day")
    return Rate(limit=count, period=float(MONTH_NOMINAL), burst=count, calendar="month")
