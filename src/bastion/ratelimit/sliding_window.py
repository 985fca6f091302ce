"""Sliding window as two weighted fixed windows (the "sliding window counter").

Time is cut into fixed windows of ``period`` seconds aligned to the Unix epoch. The
estimated count at ``now`` is ``previous * (1 - elapsed / period) + current``, where
``elapsed`` is the time since the current window began: the previous window's requests
are assumed evenly spread, and the part of it still inside the sliding window counts.
A request of ``cost`` units is admitted when ``estimate + cost <= limit``.

Why not an exact log: an exact log stores one entry per admitted request (memory grows with
the limit, a Redis sorted set per key); the weighted counter stores three integers per key
and is exact at window boundaries in the way users notice (never more than ``limit`` inside
any one fixed window). ``burst`` does not apply to this algorithm.

State: ``(window_index, current_count, previous_count)``.
"""

from __future__ import annotations

import math

from bastion.ratelimit.rate import Rate
from bastion.ratelimit.step import Step, floor_units

__all__ = ["sliding_window"]


def sliding_window(state: tuple[int, ...] | None, now: float, rate: Rate, cost: int = 1) -> Step:
    """One sliding-window decision for a key whose stored state is ``state``."""
    period = rate.period
    limit = rate.limit
    index = math.floor(now / period)
    current, previous = 0, 0
    if state is not None:
        stored_index, stored_current, stored_previous = state
        if stored_index == index:
            current, previous = stored_current, stored_previous
        elif stored_index == index - 1:
            previous = stored_current
    start = index * period
    elapsed = (now - start) / period
    estimate = previous * (1.0 - elapsed) + current
    if estimate + cost <= limit + 1e-9:
        new_current = current + cost
        after = previous * (1.0 - elapsed) + new_current
        return Step(
            state=(index, new_current, previous),
            allowed=True,
            remaining=floor_units(limit - after),
            reset_after=_reset_after(now, start, period, new_current, previous),
            retry_after=0.0,
            ttl=start + 2 * period - now,
        )
    return Step(
        state=state,
        allowed=False,
        remaining=floor_units(limit - estimate),
        reset_after=_reset_after(now, start, period, current, previous),
        retry_after=_retry_after(now, start, period, limit, cost, current, previous),
        ttl=start + 2 * period - now,
    )


def _reset_after(now: float, start: float, period: float, current: int, previous: int) -> float:
    """Seconds until the estimate decays to zero if nothing more is admitted."""
    if current > 0:
        return start + 2 * period - now
    if previous > 0:
        return start + period - now
    return 0.0


def _retry_after(
    now: float, start: float, period: float, limit: int, cost: int, current: int, previous: int
) -> float:
    """Seconds until ``cost`` units fit: the estimate falls linearly within a window."""
    room = limit - cost - current
    if previous > 0 and room >= 0:
        # previous * (1 - f) <= room  ⇔  f >= 1 - room / previous
        at = start + (1.0 - room / previous) * period
        return max(0.0, at - now)
    # Next window: the current count becomes the previous one.
    room = limit - cost
    at = start + period
    if current > room:
        at += (1.0 - room / current) * period
    return max(0.0, at - now)
