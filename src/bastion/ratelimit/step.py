"""The result of one algorithm step: a pure function of (stored state, now)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["State", "Step"]

#: Stored state of one limit: GCRA keeps a float TAT, the window algorithms keep int tuples.
State = float | tuple[int, ...] | None


class Step(NamedTuple):
    """What one algorithm decided for one key at one instant (a named tuple: built on
    every rate-limited request, and cheaper than a frozen dataclass).

    ``state`` is what must be stored if the request is admitted (unchanged when refused);
    ``ttl`` is how long that state must be kept (seconds) before it is meaningless.
    """

    state: State
    allowed: bool
    remaining: int
    reset_after: float
    retry_after: float
    ttl: float


def floor_units(value: float) -> int:
    """Floor a unit count, forgiving float noise (0.99999999 units is 1 unit)."""
    return max(0, int(value + 1e-6))
