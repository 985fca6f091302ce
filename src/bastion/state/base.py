"""The shared-state interface every gateway process talks to.

Two implementations: :class:`~bastion.state.memory.MemoryStateStore` (one process, the
embedded default) and :class:`~bastion.state.redis_store.RedisStateStore` (N stateless
gateways sharing one Redis). Counters (rate limits, concurrency leases, login failures) live
in the store and are changed atomically; the *shared sets* (revoked tokens, per-subject
not-before, blocklist) are mirrored into every process as a :class:`SharedMirror` so the
per-request checks are synchronous dictionary lookups.

Errors: when the backend is unreachable every coroutine raises
``bastion.errors.ServiceUnavailable(reason="state.unavailable")``, so the gateway fails
closed; fail-open is the caller's explicit choice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from bastion.ratelimit.backoff import BackoffPolicy, LoginState
from bastion.ratelimit.checks import LimitCheck, LimitResult

if TYPE_CHECKING:
    from bastion.state.mirror import SharedMirror

__all__ = ["BLOCK_KINDS", "BlockEntry", "BlockKind", "ChangeEvent", "ChangeKind", "StateStore"]

BlockKind = Literal["ip", "principal", "api_key"]
BLOCK_KINDS: frozenset[str] = frozenset({"ip", "principal", "api_key"})

ChangeKind = Literal["revoke_token", "revoke_subject", "block", "unblock", "event", "resync"]


@dataclass(frozen=True, slots=True)
class BlockEntry:
    """One blocklist entry. ``until`` None means until unblocked; for ``ip`` the value may
    be a CIDR network (normalised, e.g. ``203.0.113.0/24``)."""

    kind: BlockKind
    value: str
    until: float | None
    reason: str
    created_at: float

    def active(self, now: float) -> bool:
        return self.until is None or self.until > now

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "until": self.until,
            "reason": self.reason,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BlockEntry:
        kind = data["kind"]
        if kind not in BLOCK_KINDS:
            raise ValueError(f"unknown block kind {kind!r}")
        until = data.get("until")
        return cls(
            kind=kind,
            value=str(data["value"]),
            until=None if until is None else float(until),
            reason=str(data.get("reason", "")),
            created_at=float(data.get("created_at", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A change to the shared state (or a generic event), delivered to ``on_change``.

    ``kind`` ``"resync"`` means the whole mirror was reloaded (e.g. after a reconnect):
    consumers holding derived caches should drop them.
    """

    kind: ChangeKind
    data: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class StateStore(Protocol):
    """Shared state for gateway processes. All methods may raise ServiceUnavailable."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def healthy(self) -> bool: ...

    async def rate_limit(self, checks: Sequence[LimitCheck], now: float) -> LimitResult:
        """Evaluate all checks atomically, all-or-nothing, in one round trip."""
        ...

    async def concurrency_acquire(
        self, key: str, limit: int, lease_id: str, now: float, ttl: float
    ) -> bool: ...
    async def concurrency_release(self, key: str, lease_id: str) -> None: ...

    async def login_failure(self, key: str, now: float, policy: BackoffPolicy) -> LoginState: ...
    async def login_success(self, key: str) -> None: ...
    async def login_state(self, key: str, now: float, policy: BackoffPolicy) -> LoginState: ...

    async def revoke_token(self, jti: str, expires_at: float) -> None: ...
    async def revoke_subject(self, subject: str, not_before: float) -> None: ...
    async def block(
        self, kind: BlockKind, value: str, until: float | None, reason: str
    ) -> None: ...
    async def unblock(self, kind: BlockKind, value: str) -> None: ...
    async def list_blocks(self) -> list[BlockEntry]: ...
    async def publish_event(self, event: Mapping[str, Any]) -> None: ...

    @property
    def mirror(self) -> SharedMirror: ...

    def on_change(self, callback: Callable[[ChangeEvent], None]) -> None: ...
