"""Rate limiting for Bastion: rates, algorithms, all-or-nothing checks, headers.

The algorithms are pure functions of ``(stored state, now)``; the shared
:class:`~bastion.state.base.StateStore` runs them atomically (in-process or in one Redis
Lua script). See docs/rate-limiting.md.
"""

from __future__ import annotations

from bastion.ratelimit.backoff import BackoffPolicy, LoginBackoff, LoginState, login_state
from bastion.ratelimit.calendar import calendar_quota, calendar_window
from bastion.ratelimit.checks import (
    Algorithm,
    CheckOutcome,
    LimitCheck,
    LimitResult,
    evaluate_checks,
)
from bastion.ratelimit.concurrency import ConcurrencyLimiter
from bastion.ratelimit.gcra import gcra
from bastion.ratelimit.headers import ratelimit_headers, retry_after_seconds
from bastion.ratelimit.rate import Rate, parse_quota, parse_rate
from bastion.ratelimit.sliding_window import sliding_window
from bastion.ratelimit.step import Step

__all__ = [
    "Algorithm",
    "BackoffPolicy",
    "CheckOutcome",
    "ConcurrencyLimiter",
    "LimitCheck",
    "LimitResult",
    "LoginBackoff",
    "LoginState",
    "Rate",
    "Step",
    "calendar_quota",
    "calendar_window",
    "evaluate_checks",
    "gcra",
    "login_state",
    "parse_quota",
    "parse_rate",
    "ratelimit_headers",
    "retry_after_seconds",
    "sliding_window",
]
