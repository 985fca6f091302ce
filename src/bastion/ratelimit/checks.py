"""Limit checks and their all-or-nothing evaluation.

A request carries one or more :class:`LimitCheck` (per IP, per principal, per route, a
daily quota …). They are evaluated together: **a request refused by any check consumes
nothing from any of them** — refused requests do not consume quota. The store applies this
atomically (one lock in memory, one Lua script in Redis); :func:`evaluate_checks` is the
pure reference the memory store runs and the Lua script mirrors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, get_args

from bastion.errors import TooManyRequests
from bastion.ratelimit.calendar import calendar_quota
from bastion.ratelimit.gcra import gcra
from bastion.ratelimit.rate import Rate
from bastion.ratelimit.sliding_window import sliding_window
from bastion.ratelimit.step import State, Step

__all__ = [
    "Algorithm",
    "CheckOutcome",
    "LimitCheck",
    "LimitResult",
    "bounded_key",
    "evaluate_checks",
    "outcome_of",
    "step",
]

Algorithm = Literal["gcra", "sliding_window", "quota"]
_ALGORITHMS: frozenset[str] = frozenset(get_args(Algorithm))
#: Longer keys are stored by their SHA-256 so attacker-chosen values cannot bloat storage.
_MAX_KEY = 200


def bounded_key(key: str) -> str:
    """``key`` itself, or ``sha256:<hex>`` when longer than 200 bytes."""
    raw = key.encode("utf-8", "surrogatepass")
    if len(raw) > _MAX_KEY:
        return "sha256:" + hashlib.sha256(raw).hexdigest()
    return key


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One limit a request must pass.

    ``key`` names the partition (e.g. ``"ip:203.0.113.9"``, ``"sub:alice|route:/login"``);
    ``algorithm`` is ``"gcra"`` (token bucket with burst), ``"sliding_window"`` or
    ``"quota"`` (calendar day/month, ``rate`` from :func:`parse_quota`); ``cost`` units are
    taken when admitted (0 only reads); ``name`` is the policy name advertised in the
    ``RateLimit`` headers.
    """

    key: str
    rate: Rate
    algorithm: Algorithm = "gcra"
    cost: int = 1
    name: str = ""
    #: The key under which the state is stored. It includes the algorithm and rate, so two
    #: checks with the same ``key`` but different rates never share (and corrupt) one
    #: state, and a changed config starts fresh. Computed once.
    storage_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(
                f"unknown rate-limit algorithm {self.algorithm!r} "
                f"(use one of {', '.join(sorted(_ALGORITHMS))})"
            )
        if not isinstance(self.key, str) or not self.key:
            raise ValueError("a limit check needs a non-empty key")
        if isinstance(self.cost, bool) or not isinstance(self.cost, int) or self.cost < 0:
            raise ValueError(f"cost must be an integer >= 0, got {self.cost!r}")
        if self.cost > self.capacity:
            raise ValueError(
                f"cost {self.cost} exceeds the capacity {self.capacity} of {self.rate}: "
                "such a request could never be admitted"
            )
        if (self.algorithm == "quota") != (self.rate.calendar is not None):
            raise ValueError(
                "algorithm 'quota' needs a calendar rate from parse_quota() and calendar "
                "rates need algorithm 'quota'"
            )
        object.__setattr__(self, "storage_key", self._make_storage_key())

    @property
    def capacity(self) -> int:
        """Most units one request may take: the burst for GCRA, else the limit."""
        return self.rate.burst if self.algorithm == "gcra" else self.rate.limit

    def _make_storage_key(self) -> str:
        rate = self.rate
        spec = rate.calendar or f"{rate.period:g}"
        return f"{self.algorithm}:{rate.limit}:{spec}:{rate.burst}:{bounded_key(self.key)}"


class CheckOutcome(NamedTuple):
    """How one check fared. ``remaining`` is after this request (unchanged if refused).

    A named tuple: one is built for every check of every rate-limited request.
    """

    check: LimitCheck
    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float


class LimitResult(NamedTuple):
    """The verdict on all checks of one request (a named tuple: one per request).

    ``denied_by`` is the index of the binding refusing check (the one with the longest
    ``retry_after``); ``retry_after`` is when every refusing check would admit the request.
    """

    allowed: bool
    checks: Sequence[CheckOutcome] = ()
    retry_after: float = 0.0
    denied_by: int | None = None

    def raise_if_denied(self, *, reason: str = "ratelimit.exceeded") -> None:
        """Raise :class:`TooManyRequests` (with Retry-After and RateLimit headers) if refused."""
        if self.allowed:
            return
        from bastion.ratelimit.headers import ratelimit_headers

        raise TooManyRequests(
            self.retry_after, reason=reason, headers=dict(ratelimit_headers(self))
        )


def step(check: LimitCheck, state: State, now: float, cost: int) -> Step:
    """Run the check's algorithm on ``state`` (pure)."""
    if check.algorithm == "gcra":
        return gcra(state if isinstance(state, float) else None, now, check.rate, cost)
    window = state if isinstance(state, tuple) else None
    if check.algorithm == "sliding_window":
        return sliding_window(window, now, check.rate, cost)
    return calendar_quota(window, now, check.rate, cost)


def evaluate_checks(
    checks: Sequence[LimitCheck], states: Mapping[str, State], now: float
) -> tuple[LimitResult, dict[str, tuple[State, float]]]:
    """Evaluate ``checks`` against stored ``states`` (by storage key) at ``now``.

    Returns the result and the writes to apply: ``{storage_key: (state, ttl)}`` — empty
    when the request is refused. Checks on the same storage key see each other's
    tentative consumption, in order.
    """
    if not checks:
        return LimitResult(allowed=True), {}
    if len(checks) == 1:  # the common case, without the bookkeeping for several
        check = checks[0]
        skey = check.storage_key
        outcome = step(check, states.get(skey), now, check.cost)
        if outcome.allowed:
            return (
                LimitResult(allowed=True, checks=[outcome_of(check, outcome)]),
                {skey: (outcome.state, outcome.ttl)},
            )
    tentative: dict[str, State] = {}
    steps: list[Step] = []
    for check in checks:
        skey = check.storage_key
        before = tentative[skey] if skey in tentative else states.get(skey)
        outcome = step(check, before, now, check.cost)
        steps.append(outcome)
        if outcome.allowed:
            tentative[skey] = outcome.state
    denied = [i for i, s in enumerate(steps) if not s.allowed]
    if not denied:
        writes = {c.storage_key: (s.state, s.ttl) for c, s in zip(checks, steps, strict=True)}
        outcomes = [outcome_of(c, s) for c, s in zip(checks, steps, strict=True)]
        return LimitResult(allowed=True, checks=outcomes), writes
    # Refused: nothing is consumed. Passing checks report their untouched state.
    outcomes = []
    for check, outcome in zip(checks, steps, strict=True):
        if outcome.allowed:
            outcome = step(check, states.get(check.storage_key), now, 0)
            outcome = Step(outcome.state, True, outcome.remaining, outcome.reset_after, 0.0, 0.0)
        outcomes.append(outcome_of(check, outcome))
    binding = max(denied, key=lambda i: steps[i].retry_after)
    return (
        LimitResult(
            allowed=False,
            checks=outcomes,
            retry_after=steps[binding].retry_after,
            denied_by=binding,
        ),
        {},
    )


def outcome_of(check: LimitCheck, outcome: Step) -> CheckOutcome:
    """What one algorithm step means for ``check``, as reported to the caller."""
    reset_after, retry_after = outcome.reset_after, outcome.retry_after
    return CheckOutcome(
        check,
        outcome.allowed,
        check.rate.limit,
        outcome.remaining,
        reset_after if reset_after > 0.0 else 0.0,
        retry_after if retry_after > 0.0 else 0.0,
    )
