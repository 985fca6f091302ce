"""ES256 signing keys with scheduled rotation, published as a JWKS (RFC 7517).

Life of a key: ``next`` (published in the JWKS, not signing yet, so every verifier's cache
learns it before the first token appears) → ``active`` (signs) → ``retiring`` (published
until ``retire_at`` = rotation time + the longest token lifetime, so tokens it signed keep
verifying) → deleted. Private keys are sealed at rest with the service secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey, KeySet
from sqlalchemy import delete, insert, select, update

from bastion.identity.schema import signing_keys
from bastion.identity.sealing import Sealer, new_token
from bastion.identity.settings import IdentitySettings
from bastion.identity.storage import Database
from bastion.jsonutil import dumps, loads_strict

__all__ = ["KeyStore", "RotationResult"]

_PURPOSE = "signing-key"
_RETIRE_MARGIN = 60.0


@dataclass(frozen=True, slots=True)
class RotationResult:
    active_kid: str
    next_kid: str
    retired_kids: tuple[str, ...]


class KeyStore:
    """Reads keys from the database, caches them briefly, rotates on schedule."""

    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        settings: IdentitySettings,
        clock: Callable[[], float] = time.time,
        cache_seconds: float = 5.0,
    ) -> None:
        self._db = db
        self._sealer = sealer
        self._settings = settings
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._loaded_at = -1e18
        self._signing: tuple[str, ECKey] | None = None
        self._jwks: dict[str, Any] = {"keys": []}
        self._keyset = KeySet([])

    def _new_key(self, now: float, state: str) -> dict[str, Any]:
        kid = new_token(12)
        key = ECKey.generate_key(
            "P-256", parameters={"kid": kid, "use": "sig", "alg": "ES256"}, private=True
        )
        sealed = self._sealer.seal(key.as_pem(private=True), _PURPOSE)
        return {
            "kid": kid,
            "state": state,
            "sealed_private": sealed,
            "public_jwk": dumps(key.as_dict(private=False)).decode(),
            "created_at": now,
            "activated_at": now if state == "active" else None,
            "retire_at": None,
        }

    async def ensure(self) -> None:
        """Create the first active key and a published next key if they are missing."""
        now = self._clock()
        async with self._db.write() as conn:
            states = {row.state for row in await conn.execute(select(signing_keys.c.state))}
            if "active" not in states:
                await conn.execute(insert(signing_keys).values(self._new_key(now, "active")))
            if "next" not in states:
                await conn.execute(insert(signing_keys).values(self._new_key(now, "next")))
        await self.reload()

    async def rotate(self, *, force: bool = False) -> RotationResult:
        """Sign with the published next key, retire the old one, publish a new next key.

        Unless ``force``, the next key must have been published for ``publish_ahead`` seconds.
        """
        now = self._clock()
        retire_at = now + self._settings.longest_token_lifetime + _RETIRE_MARGIN
        async with self._db.write() as conn:
            rows = {r.state: r for r in await conn.execute(select(signing_keys))}
            nxt = rows.get("next")
            if nxt is None:
                raise RuntimeError("no next key: run ensure() first")
            if not force and now - nxt.created_at < self._settings.keys.publish_ahead:
                raise RuntimeError("the next key has not been published long enough")
            await conn.execute(
                update(signing_keys)
                .where(signing_keys.c.state == "active")
                .values(state="retiring", retire_at=retire_at)
            )
            await conn.execute(
                update(signing_keys)
                .where(signing_keys.c.kid == nxt.kid)
                .values(state="active", activated_at=now)
            )
            fresh = self._new_key(now, "next")
            await conn.execute(insert(signing_keys).values(fresh))
            retired = await self._purge(conn, now)
        await self.reload()
        return RotationResult(nxt.kid, fresh["kid"], retired)

    async def _purge(self, conn: Any, now: float) -> tuple[str, ...]:
        gone = [
            r.kid
            for r in await conn.execute(
                select(signing_keys.c.kid).where(
                    signing_keys.c.state == "retiring", signing_keys.c.retire_at <= now
                )
            )
        ]
        if gone:
            await conn.execute(delete(signing_keys).where(signing_keys.c.kid.in_(gone)))
        return tuple(gone)

    async def maintain(self) -> RotationResult | None:
        """Scheduled work: drop expired retiring keys; rotate when the interval is over."""
        now = self._clock()
        async with self._db.write() as conn:
            await self._purge(conn, now)
            active = (
                await conn.execute(
                    select(signing_keys.c.activated_at).where(signing_keys.c.state == "active")
                )
            ).first()
        if active is not None and now - (active.activated_at or 0) >= (
            self._settings.keys.rotation_interval
        ):
            try:
                return await self.rotate()
            except RuntimeError:
                return None
        await self.reload()
        return None

    async def reload(self) -> None:
        async with self._db.read() as conn:
            rows = list(await conn.execute(select(signing_keys)))
        now = self._clock()
        published = []
        signing: tuple[str, ECKey] | None = None
        for row in rows:
            if row.state == "retiring" and (row.retire_at or 0) <= now:
                continue
            published.append(loads_strict(row.public_jwk))
            if row.state == "active":
                pem = self._sealer.open(row.sealed_private, _PURPOSE)
                signing = (
                    row.kid,
                    ECKey.import_key(pem, {"kid": row.kid, "use": "sig", "alg": "ES256"}),
                )
        published.sort(key=lambda jwk: str(jwk["kid"]))
        self._jwks = {"keys": published}
        self._keyset = KeySet([ECKey.import_key(jwk) for jwk in published])
        self._signing = signing
        self._loaded_at = now

    async def refresh_if_stale(self) -> None:
        if self._clock() - self._loaded_at >= self._cache_seconds:
            await self.reload()

    def signing_key(self) -> tuple[str, ECKey]:
        if self._signing is None:
            raise RuntimeError("no active signing key")
        return self._signing

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def keyset(self) -> KeySet:
        return self._keyset
