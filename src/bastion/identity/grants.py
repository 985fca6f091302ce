"""Authorization codes and refresh-token families (RFC 6749 §4.1, §6; RFC 9700 §4.5, §4.14).

* Codes: hashed at rest, ``code_ttl`` <= 60 s, bound to client, redirect URI and PKCE
  challenge, redeemed by one atomic ``UPDATE … WHERE consumed_at IS NULL``. Each code
  carries the id of the refresh family its redemption creates, so a second redemption
  revokes everything the first produced (RFC 6749 §4.1.2, RFC 9700 §4.5). A code whose
  login session has ended (logout, password change) or that predates the user's
  ``not_before`` redeems to nothing.
* Refresh tokens: opaque, hashed at rest, rotated on every use; consuming one is a single
  conditional UPDATE, so of two concurrent refreshes exactly one wins. Presenting a spent
  token revokes the whole family (reuse detection, RFC 9700 §4.14.2). Idle expiry per
  token, absolute expiry per family.
* Access tokens issued from a family are recorded (jti, exp) so revoking the family also
  revokes them (RFC 7009 §2.1) and the gateway hears about each one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.identity.oautherrors import InvalidGrant, OAuthError
from bastion.identity.revocation import Revoked, revoke_families
from bastion.identity.rfc9068 import IssuedToken
from bastion.identity.schema import (
    access_tokens,
    auth_codes,
    refresh_families,
    refresh_tokens,
    revoked_jtis,
    sessions,
    users,
)
from bastion.identity.sealing import Sealer, new_token
from bastion.identity.settings import TokenSettings
from bastion.identity.storage import Database

__all__ = ["CodeGrant", "Grants", "RefreshGrant", "ReuseDetected"]


@dataclass(frozen=True, slots=True)
class CodeGrant:
    client_id: str
    user_id: str
    session_hash: str | None
    redirect_uri: str
    scope: str
    resource: str | None
    code_challenge: str
    family_id: str


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    family_id: str
    client_id: str
    user_id: str
    scope: str
    resource: str | None


class ReuseDetected(Exception):
    def __init__(self, family_id: str, revoked: Revoked) -> None:
        super().__init__("a spent credential was presented again")
        self.family_id = family_id
        self.revoked = revoked


class Grants:
    def __init__(self, db: Database, sealer: Sealer, settings: TokenSettings) -> None:
        self._db = db
        self._sealer = sealer
        self._settings = settings

    # -- authorization codes --------------------------------------------------------
    async def create_code(
        self,
        *,
        client_id: str,
        user_id: str,
        session_hash: str | None,
        redirect_uri: str,
        scope: str,
        resource: str | None,
        code_challenge: str,
        now: float,
    ) -> str:
        code = new_token(32)
        async with self._db.write() as conn:
            await conn.execute(delete(auth_codes).where(auth_codes.c.expires_at < now - 3600))
            await conn.execute(
                insert(auth_codes).values(
                    code_hash=self._sealer.digest(code),
                    client_id=client_id,
                    user_id=user_id,
                    session_hash=session_hash,
                    redirect_uri=redirect_uri,
                    scope=scope,
                    resource=resource,
                    code_challenge=code_challenge,
                    family_id=new_token(16),
                    expires_at=now + self._settings.code_ttl,
                    consumed_at=None,
                )
            )
        return code

    async def redeem_code(
        self,
        code: str,
        now: float,
        prepare: Callable[[CodeGrant], Awaitable[IssuedToken | OAuthError]],
        *,
        with_refresh: bool,
    ) -> tuple[CodeGrant, IssuedToken, str | None] | OAuthError | None:
        """Consume ``code`` and create what it grants, atomically.

        ``prepare`` checks the grant and signs the access token inside the transaction;
        an error it returns is handed back after the code was burnt. ``None`` for an
        unknown or expired code, and :class:`InvalidGrant` for one whose login has ended
        since (:meth:`_login_ended`). Raises :class:`ReuseDetected` (after the revocation
        of the family committed) if the code was already consumed.
        """
        if not 0 < len(code) <= 256:
            return None
        digest = self._sealer.digest(code)
        reuse: ReuseDetected | None = None
        async with self._db.write() as conn:
            won = await conn.execute(
                update(auth_codes)
                .where(auth_codes.c.code_hash == digest, auth_codes.c.consumed_at.is_(None))
                .values(consumed_at=now)
            )
            row = (
                await conn.execute(select(auth_codes).where(auth_codes.c.code_hash == digest))
            ).first()
            if row is None:
                return None
            if won.rowcount != 1:
                revoked = await revoke_families(conn, [row.family_id], "code_reuse", now)
                reuse = ReuseDetected(row.family_id, revoked)
            elif row.expires_at <= now:
                return None
            elif await self._login_ended(conn, row):
                return InvalidGrant("the code is invalid or expired", reason="code.login_ended")
            else:
                grant = CodeGrant(
                    client_id=row.client_id,
                    user_id=row.user_id,
                    session_hash=row.session_hash,
                    redirect_uri=row.redirect_uri,
                    scope=row.scope,
                    resource=row.resource,
                    code_challenge=row.code_challenge,
                    family_id=row.family_id,
                )
                prepared = await prepare(grant)
                if isinstance(prepared, OAuthError):
                    return prepared
                await self._insert_family(conn, row, now)
                refresh = None
                if with_refresh:
                    refresh = await self._new_refresh(
                        conn, row.family_id, row.scope, row.resource, now
                    )
                await conn.execute(
                    insert(access_tokens).values(
                        jti=prepared.jti, family_id=row.family_id, expires_at=prepared.expires_at
                    )
                )
                return grant, prepared, refresh
        raise reuse

    async def _login_ended(self, conn: AsyncConnection, code_row: Any) -> bool:
        """Has the login behind this code ended since it was issued?

        Yes if its session was revoked (logout, password change, disable) or is gone, if the
        session began before the user's ``not_before``, or if the user is gone. A code with
        no session is compared with ``not_before`` by the time it was issued. The user and
        session rows are read under a lock (PostgreSQL; SQLite serialises writers anyway),
        so a logout or password change committing meanwhile waits for this redemption and
        then revokes the family it creates.
        """
        user = (
            await conn.execute(
                select(users.c.not_before).where(users.c.id == code_row.user_id).with_for_update()
            )
        ).first()
        if user is None:
            return True
        if code_row.session_hash is None:
            issued_at = code_row.expires_at - self._settings.code_ttl
            return bool(issued_at < user.not_before)
        session = (
            await conn.execute(
                select(sessions.c.created_at, sessions.c.revoked_at)
                .where(sessions.c.id_hash == code_row.session_hash)
                .with_for_update()
            )
        ).first()
        return (
            session is None
            or session.revoked_at is not None
            or session.created_at < user.not_before
        )

    async def _insert_family(self, conn: AsyncConnection, code_row: Any, now: float) -> None:
        await conn.execute(
            insert(refresh_families).values(
                family_id=code_row.family_id,
                client_id=code_row.client_id,
                user_id=code_row.user_id,
                session_hash=code_row.session_hash,
                created_at=now,
                expires_at=now + self._settings.refresh_absolute_ttl,
                revoked_at=None,
                revoked_reason=None,
            )
        )

    # -- refresh families -----------------------------------------------------------
    async def _family_live_locked(self, conn: AsyncConnection, family_id: str, now: float) -> bool:
        """Is the family live? Locks its row (PostgreSQL) so revocation cannot interleave."""
        row = (
            await conn.execute(
                select(refresh_families.c.revoked_at, refresh_families.c.expires_at)
                .where(refresh_families.c.family_id == family_id)
                .with_for_update()
            )
        ).first()
        return row is not None and row.revoked_at is None and row.expires_at > now

    async def _new_refresh(
        self, conn: AsyncConnection, family_id: str, scope: str, resource: str | None, now: float
    ) -> str:
        token = new_token(32)
        await conn.execute(
            insert(refresh_tokens).values(
                token_hash=self._sealer.digest(token),
                family_id=family_id,
                scope=scope,
                resource=resource,
                created_at=now,
                expires_at=now + self._settings.refresh_idle_ttl,
                consumed_at=None,
            )
        )
        return token

    async def rotate(
        self,
        token: str,
        client_id: str,
        now: float,
        prepare: Callable[[RefreshGrant], Awaitable[IssuedToken | OAuthError]],
    ) -> tuple[RefreshGrant, IssuedToken, str] | OAuthError | None:
        """Spend ``token``, mint through ``prepare`` and return the next token, atomically.

        The row is read under a lock first, so a wrong client or a refused scope leaves the
        token unspent. ``None`` if unknown, expired or revoked. Raises
        :class:`ReuseDetected` (after the family's revocation committed) on a spent token.
        """
        if not 0 < len(token) <= 256:
            return None
        digest = self._sealer.digest(token)
        joined = refresh_tokens.join(
            refresh_families, refresh_tokens.c.family_id == refresh_families.c.family_id
        )
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    select(
                        refresh_tokens,
                        refresh_families.c.client_id,
                        refresh_families.c.user_id,
                        refresh_families.c.revoked_at,
                        refresh_families.c.expires_at.label("family_exp"),
                    )
                    .select_from(joined)
                    .where(refresh_tokens.c.token_hash == digest)
                    .with_for_update()
                )
            ).first()
            if row is None or row.client_id != client_id:
                return None
            if row.revoked_at is not None:
                # A revoked family (sign-out, password change, RFC 7009) marks its tokens
                # spent too: the client's next refresh is refused, not reported as theft.
                return None
            if row.consumed_at is not None:
                revoked = await revoke_families(conn, [row.family_id], "refresh_reuse", now)
                reuse = ReuseDetected(row.family_id, revoked)
            elif row.expires_at <= now or row.family_exp <= now:
                return None
            else:
                grant = RefreshGrant(
                    row.family_id, row.client_id, row.user_id, row.scope, row.resource
                )
                prepared = await prepare(grant)
                if isinstance(prepared, OAuthError):
                    return prepared
                won = await conn.execute(
                    update(refresh_tokens)
                    .where(
                        refresh_tokens.c.token_hash == digest,
                        refresh_tokens.c.consumed_at.is_(None),
                    )
                    .values(consumed_at=now)
                )
                if won.rowcount != 1:  # cannot happen under the row lock; fail closed
                    return None
                nxt = await self._new_refresh(conn, row.family_id, row.scope, row.resource, now)
                await conn.execute(
                    insert(access_tokens).values(
                        jti=prepared.jti, family_id=row.family_id, expires_at=prepared.expires_at
                    )
                )
                return grant, prepared, nxt
        raise reuse  # only after the revocation has committed

    async def refresh_info(self, token: str, now: float) -> RefreshGrant | None:
        """An active (unspent, unexpired, unrevoked) refresh token's grant, for introspection."""
        digest = self._sealer.digest(token)
        joined = refresh_tokens.join(
            refresh_families, refresh_tokens.c.family_id == refresh_families.c.family_id
        )
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        refresh_tokens,
                        refresh_families.c.client_id,
                        refresh_families.c.user_id,
                        refresh_families.c.revoked_at,
                        refresh_families.c.expires_at.label("family_exp"),
                    )
                    .select_from(joined)
                    .where(refresh_tokens.c.token_hash == digest)
                )
            ).first()
        if (
            row is None
            or row.consumed_at is not None
            or row.revoked_at is not None
            or min(row.expires_at, row.family_exp) <= now
        ):
            return None
        return RefreshGrant(row.family_id, row.client_id, row.user_id, row.scope, row.resource)

    # -- access tokens and revocation -----------------------------------------------
    async def record_access(self, jti: str, family_id: str, exp: float, now: float) -> bool:
        """Remember an access token of a family; False (and revoked) if the family ended."""
        async with self._db.write() as conn:
            live = await self._family_live_locked(conn, family_id, now)
            await conn.execute(
                insert(access_tokens).values(jti=jti, family_id=family_id, expires_at=exp)
            )
            if not live:
                await conn.execute(insert(revoked_jtis).values(jti=jti, expires_at=exp))
        return live
