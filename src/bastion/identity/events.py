"""What the token service tells the outside world: revocation hooks and audit events.

* :class:`IdentityEvents` — the hook the gateway connects to its shared revocation state.
  ``token_revoked(jti, exp)`` for one access token; ``subject_revoked(subject, not_before)``
  when every token of a subject issued before ``not_before`` must stop working (password
  change, account disabled). Default: :class:`NoEvents`.
* :class:`Audit` — one JSON line per security event (login success/failure, MFA, token
  issued, refresh rotated, refresh reuse detected, token revoked, lockout, key rotated).
  Identifiers are keyed hashes (:meth:`Sealer.audit_id`); no secret ever enters a line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO, runtime_checkable

from bastion.identity.sealing import Sealer
from bastion.jsonutil import dumps

__all__ = ["AUDIT_EVENTS", "Audit", "IdentityEvents", "NoEvents"]


@runtime_checkable
class IdentityEvents(Protocol):
    async def token_revoked(self, jti: str, exp: float) -> None: ...

    async def subject_revoked(self, subject: str, not_before: float) -> None: ...


class NoEvents:
    async def token_revoked(self, jti: str, exp: float) -> None:
        return None

    async def subject_revoked(self, subject: str, not_before: float) -> None:
        return None


AUDIT_EVENTS = frozenset(
    {
        "login.success",
        "login.failure",
        "login.locked",
        "mfa.success",
        "mfa.failure",
        "mfa.enrolled",
        "mfa.reset",
        "token.issued",
        "token.denied",
        "refresh.rotated",
        "refresh.reuse_detected",
        "token.revoked",
        "session.logout",
        "password.changed",
        "key.rotated",
        "client.auth_failed",
        "code.reuse_detected",
    }
)

#: Fields whose values are identifiers: they are hashed before they are written.
_HASHED = frozenset({"user", "username", "session", "family"})
_SECRET_WORDS = ("password", "secret", "token", "code", "assertion", "seed", "otp")


class Audit:
    """Writes audit events as JSON lines; ``sink=None`` keeps them in ``records`` only."""

    def __init__(
        self,
        sealer: Sealer,
        sink: TextIO | None = sys.stdout,
        clock: Callable[[], float] = time.time,
        keep: bool = False,
    ) -> None:
        self._sealer = sealer
        self._sink = sink
        self._clock = clock
        self._keep = keep
        self.records: list[dict[str, Any]] = []

    def emit(self, event: str, **fields: Any) -> None:
        if event not in AUDIT_EVENTS:
            raise ValueError(f"unknown audit event {event}")
        record: dict[str, Any] = {"ts": round(self._clock(), 3), "event": event}
        for key, value in fields.items():
            if value is None:
                continue
            if any(word in key for word in _SECRET_WORDS) and key not in ("token_type",):
                raise ValueError(f"audit field {key!r} looks like a secret")
            record[key] = self._sealer.audit_id(str(value)) if key in _HASHED else value
        if self._keep:
            self.records.append(record)
        if self._sink is not None:
            self._sink.write(dumps(record).decode() + "\n")
