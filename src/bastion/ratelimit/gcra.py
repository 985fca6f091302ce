"""GCRA, the generic cell rate algorithm (ITU-T I.371), as a pure function.

Token-bucket semantics with one stored number per key, the *theoretical arrival time*
(TAT). With emission interval ``T = period / limit`` and tolerance ``tau = burst * T``:

* a request of ``cost`` units computes ``new_tat = max(tat, now) + cost * T``;
* it is admitted when ``new_tat - tau <= now`` and then ``new_tat`` is stored;
* otherwise it is refused, nothing is stored, and it may retry after ``new_tat - tau - now``.

So a fresh key admits ``burst`` units at once, then one unit every ``T`` seconds; after
``burst * T`` seconds idle the bucket is full again (``reset_after``). ``remaining`` never
exceeds what a full bucket holds (the 1 µs tolerance would otherwise add ``EPSILON / T``
units at very high rates).
The Redis implementation is the same arithmetic in Lua (``state/lua/rate_limit.lua``), in
microseconds, with the same 1 µs tolerance.
"""

from __future__ import annotations

import math

from bastion.ratelimit.rate import Rate
from bastion.ratelimit.step import Step

__all__ = ["EPSILON", "gcra"]

#: Time tolerance (1 µs). Unix timestamps near 1.8e9 s have a float resolution of about
#: 0.24 µs, so exact boundaries (the last unit of a burst at one instant) need a tolerance
#: above that or a full burst is refused by rounding noise.
EPSILON = 1e-6


def gcra(tat: float | None, now: float, rate: Rate, cost: int = 1) -> Step:
    """One GCRA decision for a key whose stored TAT is ``tat`` (None: never seen)."""
    interval = rate.emission_interval
    tolerance = interval * rate.burst
    base = now if tat is None or tat < now else tat
    new_tat = base + cost * interval
    allow_at = new_tat - tolerance
    if allow_at > now + EPSILON:
        return Step(
            state=tat,
            allowed=False,
            remaining=max(
                0, min(rate.burst, math.floor((now + EPSILON - (base - tolerance)) / interval))
            ),
            reset_after=base - now,
            retry_after=allow_at - now,
            ttl=base - now,
        )
    # Positional (state, allowed, remaining, reset_after, retry_after, ttl): the hot path.
    remaining = min(rate.burst - cost, math.floor((now + EPSILON - allow_at) / interval))
    return Step(new_tat, True, remaining if remaining > 0 else 0, new_tat - now, 0.0, new_tat - now)
