"""Login sessions behind a ``__Host-`` cookie (Secure, HttpOnly, SameSite=Lax, Path=/).

The cookie holds a 256-bit random id; the database holds only its keyed hash. A session
ends after ``idle_ttl`` without use or ``absolute_ttl`` after login, whichever is first,
or at logout (which also revokes the refresh families it produced; see the service).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, or_, select, update

from bastion.identity.schema import sessions
from bastion.identity.sealing import Sealer, new_token
from bastion.identity.settings import SessionSettings
from bastion.identity.storage import Database

__all__ = ["Session", "Sessions"]


@dataclass(frozen=True, slots=True)
class Session:
    id_hash: str
    user_id: str
    created_at: float
    mfa: bool


class Sessions:
    def __init__(self, db: Database, sealer: Sealer, settings: SessionSettings) -> None:
        self._db = db
        self._sealer = sealer
        self.settings = settings

    async def create(self, user_id: str, *, mfa: bool, now: float) -> tuple[str, Session]:
        raw = new_token(32)
        digest = self._sealer.digest(raw)
        async with self._db.write() as conn:
            await conn.execute(
                insert(sessions).values(
                    id_hash=digest,
                    user_id=user_id,
                    created_at=now,
                    last_seen=now,
                    mfa=mfa,
                    revoked_at=None,
                )
            )
        return raw, Session(digest, user_id, now, mfa)

    async def get(self, raw: str | None, now: float) -> Session | None:
        """The live session of a cookie value (touching it), or ``None``."""
        if not raw or len(raw) > 128:
            return None
        digest = self._sealer.digest(raw)
        async with self._db.write() as conn:
            row = (await conn.execute(select(sessions).where(sessions.c.id_hash == digest))).first()
            if (
                row is None
                or row.revoked_at is not None
                or now - row.last_seen >= self.settings.idle_ttl
                or now - row.created_at >= self.settings.absolute_ttl
            ):
                return None
            await conn.execute(
                update(sessions).where(sessions.c.id_hash == digest).values(last_seen=now)
            )
        return Session(digest, row.user_id, row.created_at, bool(row.mfa))

    def digest(self, raw: str) -> str:
        """The stored hash of a raw session id (what refresh families record)."""
        return self._sealer.digest(raw)

    async def end(self, raw: str, now: float) -> str | None:
        """Revoke the session; returns its hash if it existed."""
        digest = self._sealer.digest(raw)
        async with self._db.write() as conn:
            result = await conn.execute(
                update(sessions)
                .where(sessions.c.id_hash == digest, sessions.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return digest if result.rowcount == 1 else None

    async def end_all(self, user_id: str, now: float) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(sessions)
                .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )

    async def purge_expired(self, now: float) -> int:
        async with self._db.write() as conn:
            result = await conn.execute(
                delete(sessions).where(
                    or_(
                        sessions.c.created_at < now - self.settings.absolute_ttl,
                        sessions.c.revoked_at < now - 86400,
                    )
                )
            )
        return result.rowcount or 0

    def cookie(self, raw: str) -> str:
        return (
            f"{self.settings.cookie_name}={raw}; Path=/; Secure; HttpOnly; SameSite=Lax; "
            f"Max-Age={self.settings.absolute_ttl}"
        )

    def clear_cookie(self) -> str:
        return f"{self.settings.cookie_name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
