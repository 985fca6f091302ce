"""In-process state store: the embedded default for a single gateway process.

Every operation runs without awaiting inside, so on one event loop it is atomic. Time is
the ``now`` the caller passes (inject a clock in tests). Expired counters are swept
periodically, so attacker-chosen keys (random usernames, spoofed IPs) cannot grow memory
without bound beyond their TTL. A sweep reads every counter, so it comes at most once per
as many operations as there are counters (and every ``sweep_every`` at the most often):
amortised O(1) per operation however many clients are counted (one sweep of a million
counters took 0.4 s on the development machine: every 4,096 operations, that was about
100 µs per request, in 0.4 s pauses). Between two sweeps at most as many counters are
added as there were at the first, so the store holds at most about twice the counters
still live (or ``sweep_every`` more).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bastion.jsonutil import dumps, loads_strict
from bastion.ratelimit.backoff import BackoffPolicy, LoginState, login_state, next_failure
from bastion.ratelimit.checks import (
    LimitCheck,
    LimitResult,
    evaluate_checks,
    step,
)
from bastion.ratelimit.step import State, Step
from bastion.state.base import BlockEntry, BlockKind, ChangeEvent
from bastion.state.mirror import SharedMirror, normalize_block_value

__all__ = ["MemoryStateStore"]

_log = logging.getLogger(__name__)


# Login failure records (one per username): swept oldest first once there are this many,
# a few per failure, and never more than _LOGINS_MAX (about 200 bytes each). Beyond the cap
# the oldest records go even if not yet reset: a flood of fresh usernames must not grow
# memory. (The previous sweep rebuilt the whole dict on every failure past 16,384 records:
# 177 ms per failure at 100,000.)
_LOGINS_SWEEP_ABOVE = 16_384
_LOGINS_MAX = 200_000
_LOGINS_SWEEP_STEP = 64


class MemoryStateStore:
    """All shared state in this process. Same contract as the Redis store."""

    def __init__(
        self, *, sweep_every: int = 4096, clock: Callable[[], float] | None = None
    ) -> None:
        import time

        self._clock = clock or time.time
        self._mirror = SharedMirror()
        self._limits: dict[str, tuple[State, float]] = {}
        self._leases: dict[str, dict[str, float]] = {}
        self._logins: dict[str, tuple[int, float]] = {}
        self._callbacks: list[Callable[[ChangeEvent], None]] = []
        self._sweep_every = max(1, sweep_every)
        self._ops = 0
        self._next_sweep = self._sweep_every

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def healthy(self) -> bool:
        return True

    @property
    def mirror(self) -> SharedMirror:
        return self._mirror

    def on_change(self, callback: Callable[[ChangeEvent], None]) -> None:
        self._callbacks.append(callback)

    # -- counters --------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        self._ops += 1
        if self._ops >= self._next_sweep:
            self._sweep(now)
            held = len(self._limits) + len(self._leases)
            self._next_sweep = self._ops + max(self._sweep_every, held)

    def _sweep(self, now: float) -> None:
        self._limits = {k: v for k, v in self._limits.items() if v[1] > now}
        for key in [k for k, leases in self._leases.items() if max(leases.values()) <= now]:
            del self._leases[key]
        # Lapsed blocks and revocations of expired tokens (with Redis, its resync does this).
        self._mirror.prune(now)

    def admit_step(self, check: LimitCheck, now: float) -> Step | None:
        """The common case without the general machinery: one check, decided at once.

        The algorithm's step when ``check`` admits the request (its state updated, as
        :meth:`rate_limit` would), or None when it refuses, having changed nothing: the
        caller then asks :meth:`rate_limit` for the full refusal (Retry-After, headers).
        """
        self._tick(now)
        outcome = step(check, self._state(check.storage_key, now), now, check.cost)
        if not outcome.allowed:
            return None
        self._keep(check.storage_key, outcome.state, outcome.ttl, now)
        return outcome

    async def rate_limit(self, checks: Sequence[LimitCheck], now: float) -> LimitResult:
        self._tick(now)
        states = {c.storage_key: self._state(c.storage_key, now) for c in checks}
        result, writes = evaluate_checks(checks, states, now)
        for key, (state, ttl) in writes.items():
            self._keep(key, state, ttl, now)
        return result

    def _state(self, key: str, now: float) -> State:
        """The stored state of ``key``, None when absent or expired."""
        stored = self._limits.get(key)
        return stored[0] if stored is not None and stored[1] > now else None

    def _keep(self, key: str, state: State, ttl: float, now: float) -> None:
        self._limits[key] = (state, now + ttl if ttl > 0.0 else now)

    async def concurrency_acquire(
        self, key: str, limit: int, lease_id: str, now: float, ttl: float
    ) -> bool:
        self._tick(now)
        leases = {k: v for k, v in self._leases.get(key, {}).items() if v > now}
        if lease_id in leases or len(leases) < limit:
            leases[lease_id] = now + ttl
            self._leases[key] = leases
            return True
        self._leases[key] = leases
        return False

    async def concurrency_release(self, key: str, lease_id: str) -> None:
        leases = self._leases.get(key)
        if leases is not None:
            leases.pop(lease_id, None)
            if not leases:
                del self._leases[key]

    async def login_failure(self, key: str, now: float, policy: BackoffPolicy) -> LoginState:
        failures, last = self._logins.get(key, (0, None))
        count = next_failure(failures, last, now, policy)
        logins = self._logins
        logins.pop(key, None)  # re-inserted last: the dict stays ordered by last failure
        logins[key] = (count, now)
        if len(logins) > _LOGINS_SWEEP_ABOVE:
            # Oldest first: drop records whose failures have reset, and (a hard cap, as a
            # flood of fresh usernames must not grow memory) the oldest beyond the cap.
            # Each record is looked at once before it is dropped or the walk stops.
            excess = len(logins) - _LOGINS_MAX
            for old in list(itertools.islice(logins, _LOGINS_SWEEP_STEP)):
                if excess > 0 or not login_state(*logins[old], now, policy).failures:
                    del logins[old]
                    excess -= 1
                else:
                    break
        return login_state(count, now, now, policy)

    async def login_success(self, key: str) -> None:
        self._logins.pop(key, None)

    async def login_state(self, key: str, now: float, policy: BackoffPolicy) -> LoginState:
        failures, last = self._logins.get(key, (0, None))
        return login_state(failures, last, now, policy)

    # -- shared sets ----------------------------------------------------------------

    def _emit(self, event: ChangeEvent) -> None:
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:
                _log.exception("state change callback failed")

    async def revoke_token(self, jti: str, expires_at: float) -> None:
        if not jti:
            raise ValueError("revoke_token needs a non-empty jti")
        self._mirror.revoke_token(jti, float(expires_at))
        self._emit(ChangeEvent("revoke_token", {"jti": jti, "expires_at": float(expires_at)}))

    async def revoke_subject(self, subject: str, not_before: float) -> None:
        if not subject:
            raise ValueError("revoke_subject needs a non-empty subject")
        self._mirror.revoke_subject(subject, float(not_before))
        self._emit(
            ChangeEvent("revoke_subject", {"subject": subject, "not_before": float(not_before)})
        )

    async def block(self, kind: BlockKind, value: str, until: float | None, reason: str) -> None:
        entry = BlockEntry(
            kind=kind,
            value=normalize_block_value(kind, value),
            until=None if until is None else float(until),
            reason=reason,
            created_at=self._clock(),
        )
        self._mirror.block(entry)
        self._emit(ChangeEvent("block", entry.to_json()))

    async def unblock(self, kind: BlockKind, value: str) -> None:
        normalized = normalize_block_value(kind, value)
        self._mirror.unblock(kind, normalized)
        self._emit(ChangeEvent("unblock", {"kind": kind, "value": normalized}))

    async def list_blocks(self) -> list[BlockEntry]:
        now = self._clock()
        return [entry for entry in self._mirror.blocks() if entry.active(now)]

    async def publish_event(self, event: Mapping[str, Any]) -> None:
        # Round-trip through JSON so subscribers see exactly what Redis would deliver.
        self._emit(ChangeEvent("event", loads_strict(dumps(dict(event)))))
