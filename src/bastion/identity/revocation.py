"""Revocation state: revoked access-token ids, family revocation, housekeeping.

Revoking a refresh family (RFC 7009 §2.1, RFC 9700 §4.14.2) spends its refresh tokens,
marks it revoked and puts the ``jti`` of every still-valid access token it produced on the
revoked list; :class:`Revoked` lists those so the service can announce them to gateways.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.identity.schema import (
    access_tokens,
    auth_codes,
    refresh_families,
    refresh_tokens,
    revoked_jtis,
    seen_assertions,
)
from bastion.identity.storage import Database

__all__ = ["Revocations", "Revoked", "revoke_families"]


@dataclass(frozen=True, slots=True)
class Revoked:
    """What a revocation ended: access tokens (jti, exp) to announce to gateways."""

    families: tuple[str, ...]
    access_tokens: tuple[tuple[str, float], ...]


async def revoke_families(
    conn: AsyncConnection, families: Sequence[str], reason: str, now: float
) -> Revoked:
    if not families:
        return Revoked((), ())
    await conn.execute(
        update(refresh_families)
        .where(refresh_families.c.family_id.in_(families), refresh_families.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.family_id.in_(families), refresh_tokens.c.consumed_at.is_(None))
        .values(consumed_at=now)
    )
    live = [
        (r.jti, r.expires_at)
        for r in await conn.execute(
            select(access_tokens.c.jti, access_tokens.c.expires_at).where(
                access_tokens.c.family_id.in_(families), access_tokens.c.expires_at > now
            )
        )
    ]
    for jti, exp in live:
        await _add_revoked_jti(conn, jti, exp)
    await conn.execute(delete(access_tokens).where(access_tokens.c.expires_at < now))
    return Revoked(tuple(families), tuple(live))


async def _add_revoked_jti(conn: AsyncConnection, jti: str, exp: float) -> bool:
    """Put ``jti`` on the revoked list; False when it was there already.

    One statement that tolerates a concurrent insert of the same ``jti`` (RFC 7009
    revocation of an access token while /logout revokes its family): a look-then-insert
    made one of the two fail with a duplicate key (PostgreSQL), which failed a sign-out
    after its session had ended, leaving the session's refresh tokens working.
    """
    values = {"jti": jti, "expires_at": exp}
    if conn.dialect.name == "postgresql":
        statement: Any = postgresql.insert(revoked_jtis).values(**values)
    elif conn.dialect.name == "sqlite":
        statement = sqlite.insert(revoked_jtis).values(**values)
    else:  # pragma: no cover - the service runs on PostgreSQL or SQLite
        exists = (
            await conn.execute(select(revoked_jtis.c.jti).where(revoked_jtis.c.jti == jti))
        ).first()
        if exists is None:
            await conn.execute(insert(revoked_jtis).values(**values))
        return exists is None
    result = await conn.execute(statement.on_conflict_do_nothing(index_elements=["jti"]))
    return bool(result.rowcount == 1)


class Revocations:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def revoke_jti(self, jti: str, exp: float, now: float) -> bool:
        async with self._db.write() as conn:
            await conn.execute(delete(revoked_jtis).where(revoked_jtis.c.expires_at < now))
            return await _add_revoked_jti(conn, jti, exp)

    async def is_revoked(self, jti: str) -> bool:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(revoked_jtis.c.jti).where(revoked_jtis.c.jti == jti))
            ).first()
        return row is not None

    async def revoke_family(self, family_id: str, reason: str, now: float) -> Revoked:
        async with self._db.write() as conn:
            return await revoke_families(conn, [family_id], reason, now)

    async def revoke_for(
        self,
        *,
        user_id: str | None = None,
        session_hash: str | None = None,
        reason: str,
        now: float,
    ) -> Revoked:
        """Revoke every live family of a user or of a session."""
        column = (
            refresh_families.c.user_id if user_id is not None else refresh_families.c.session_hash
        )
        value = user_id if user_id is not None else session_hash
        async with self._db.write() as conn:
            rows = await conn.execute(
                select(refresh_families.c.family_id).where(
                    and_(column == value, refresh_families.c.revoked_at.is_(None))
                )
            )
            return await revoke_families(conn, [r.family_id for r in rows], reason, now)

    async def purge_expired(self, now: float) -> int:
        """Housekeeping: delete rows that can no longer matter. Returns rows removed."""
        removed = 0
        async with self._db.write() as conn:
            for table, column in (
                (access_tokens, access_tokens.c.expires_at),
                (revoked_jtis, revoked_jtis.c.expires_at),
                (seen_assertions, seen_assertions.c.expires_at),
                (auth_codes, auth_codes.c.expires_at),
            ):
                result = await conn.execute(delete(table).where(column < now))
                removed += result.rowcount or 0
            ended = select(refresh_families.c.family_id).where(refresh_families.c.expires_at < now)
            result = await conn.execute(
                delete(refresh_tokens).where(refresh_tokens.c.family_id.in_(ended))
            )
            removed += result.rowcount or 0
            result = await conn.execute(
                delete(refresh_families).where(refresh_families.c.expires_at < now)
            )
            removed += result.rowcount or 0
        return removed
