"""Login backoff: consecutive failures per username slow down, then lock, the account.

After ``free_failures`` consecutive failures each further failure imposes a delay that
grows geometrically (``base_delay * factor ** k``, capped at ``max_delay``); at
``lockout_after`` failures the key is locked for ``lockout_duration``. A success clears the
counter; failures older than ``reset_after`` are forgotten. This follows NIST SP 800-63B-4
§3.2.2 (rate limiting of failed authentication attempts): throttle, do not just count.

State per key is two numbers — the consecutive failure count and the time of the last
failure — so every store keeps it atomically and the lock is derived, never stored.
Backoff uses the caller's clock (``now``): the lock is an absolute time the caller compares
against that same clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bastion.state.base import StateStore

__all__ = [
    "BackoffPolicy",
    "LoginBackoff",
    "LoginState",
    "forgotten",
    "login_state",
    "next_failure",
]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How failures turn into delays and lockouts (all durations in seconds)."""

    free_failures: int = 3
    base_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0
    lockout_after: int = 10
    lockout_duration: float = 900.0
    reset_after: float = 3600.0

    def __post_init__(self) -> None:
        if self.free_failures < 0 or self.lockout_after < 1:
            raise ValueError("free_failures must be >= 0 and lockout_after >= 1")
        if self.base_delay < 0 or self.factor < 1 or self.max_delay < self.base_delay:
            raise ValueError("need base_delay >= 0, factor >= 1 and max_delay >= base_delay")
        if self.lockout_duration <= 0 or self.reset_after <= 0:
            raise ValueError("lockout_duration and reset_after must be positive")

    def delay(self, failures: int) -> float:
        """The enforced wait after ``failures`` consecutive failures (0 if none)."""
        if failures >= self.lockout_after:
            return self.lockout_duration
        extra = failures - self.free_failures
        if extra <= 0:
            return 0.0
        return float(min(self.max_delay, self.base_delay * self.factor ** (extra - 1)))

    @property
    def retention(self) -> float:
        """How long a failure record must be kept."""
        return max(self.reset_after, self.lockout_duration)


@dataclass(frozen=True, slots=True)
class LoginState:
    """Consecutive failures, the last failure time, and the derived lock (if any)."""

    failures: int = 0
    last_failure: float | None = None
    locked_until: float | None = None


def forgotten(failures: int, last_failure: float | None, now: float, policy: BackoffPolicy) -> bool:
    """True when the stored failures no longer count (too old, or none)."""
    if last_failure is None or failures <= 0:
        return True
    keep = policy.reset_after
    if failures >= policy.lockout_after:
        keep = max(keep, policy.lockout_duration)
    return now - last_failure > keep


def login_state(
    failures: int, last_failure: float | None, now: float, policy: BackoffPolicy
) -> LoginState:
    """Derive the :class:`LoginState` at ``now`` from the stored pair (pure)."""
    if forgotten(failures, last_failure, now, policy):
        return LoginState()
    assert last_failure is not None
    delay = policy.delay(failures)
    until: float | None = last_failure + delay
    if delay <= 0 or (until is not None and until <= now):
        until = None
    return LoginState(failures=failures, last_failure=last_failure, locked_until=until)


def next_failure(
    failures: int, last_failure: float | None, now: float, policy: BackoffPolicy
) -> int:
    """The consecutive-failure count after one more failure at ``now``."""
    return 1 if forgotten(failures, last_failure, now, policy) else failures + 1


class LoginBackoff:
    """Per-username backoff over a :class:`~bastion.state.base.StateStore`.

    Call :meth:`check` before verifying a password and refuse while it returns a time;
    then :meth:`record_failure` or :meth:`record_success`. Normalise the key (e.g.
    case-fold the username) before calling.
    """

    def __init__(self, store: StateStore, policy: BackoffPolicy | None = None) -> None:
        self._store = store
        self.policy = policy or BackoffPolicy()

    async def check(self, key: str, now: float) -> float | None:
        """The time until which ``key`` is locked, or None when it may try now."""
        state = await self._store.login_state(key, now, self.policy)
        return state.locked_until

    async def record_failure(self, key: str, now: float) -> LoginState:
        return await self._store.login_failure(key, now, self.policy)

    async def record_success(self, key: str) -> None:
        await self._store.login_success(key)
