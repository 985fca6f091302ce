"""TOTP second factor (RFC 6238 via pyotp) and one-time recovery codes.

Codes are checked for the current 30 s step and one step either side (drift). The last
accepted step is stored and advanced atomically, so each code works once (RFC 6238 §5.2).
Seeds are sealed with the service key; recovery codes are stored as keyed hashes.
"""

from __future__ import annotations

import hmac
import secrets

import pyotp
from sqlalchemy import and_, delete, insert, or_, select, update

from bastion.identity.schema import recovery_codes, users
from bastion.identity.sealing import Sealer
from bastion.identity.storage import Database

__all__ = ["Enrolment", "Totp"]

_PURPOSE = "totp-seed"
_STEP = 30


class Enrolment:
    def __init__(self, seed: str, uri: str, recovery: list[str]) -> None:
        self.seed = seed
        self.provisioning_uri = uri
        self.recovery_codes = recovery


class Totp:
    def __init__(self, db: Database, sealer: Sealer, issuer_name: str, recovery: int) -> None:
        self._db = db
        self._sealer = sealer
        self._issuer_name = issuer_name
        self._recovery = recovery

    async def enroll(self, user_id: str, username: str) -> Enrolment:
        seed = pyotp.random_base32(length=32)
        codes = [secrets.token_hex(5) for _ in range(self._recovery)]
        async with self._db.write() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(mfa_seed=self._sealer.seal(seed.encode(), _PURPOSE), mfa_last_step=None)
            )
            await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
            for code in codes:
                await conn.execute(
                    insert(recovery_codes).values(
                        code_hash=self._sealer.digest(code), user_id=user_id, used_at=None
                    )
                )
        uri = pyotp.TOTP(seed).provisioning_uri(name=username, issuer_name=self._issuer_name)
        return Enrolment(seed, uri, codes)

    async def reset(self, user_id: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(users).where(users.c.id == user_id).values(mfa_seed=None, mfa_last_step=None)
            )
            await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))

    def _matching_step(self, seed: str, code: str, now: float) -> int | None:
        totp = pyotp.TOTP(seed)
        current = int(now // _STEP)
        found = None
        for step in (current - 1, current, current + 1):
            expected = totp.generate_otp(step)
            if hmac.compare_digest(expected.encode(), code.encode("utf-8", "replace")):
                found = step
        return found

    async def verify(self, user_id: str, sealed_seed: str, code: str, now: float) -> bool:
        """True once per valid code; a replayed or older code is refused."""
        code = code.strip().replace(" ", "")
        if len(code) == 6 and code.isdigit():
            seed = self._sealer.open(sealed_seed, _PURPOSE).decode()
            step = self._matching_step(seed, code, now)
            if step is None:
                return False
            async with self._db.write() as conn:
                result = await conn.execute(
                    update(users)
                    .where(users.c.id == user_id)
                    .where(or_(users.c.mfa_last_step.is_(None), users.c.mfa_last_step < step))
                    .values(mfa_last_step=step)
                )
                return result.rowcount == 1
        if 8 <= len(code) <= 32:
            return await self._use_recovery(user_id, code.lower(), now)
        return False

    async def _use_recovery(self, user_id: str, code: str, now: float) -> bool:
        digest = self._sealer.digest(code)
        async with self._db.write() as conn:
            result = await conn.execute(
                update(recovery_codes)
                .where(
                    and_(
                        recovery_codes.c.code_hash == digest,
                        recovery_codes.c.user_id == user_id,
                        recovery_codes.c.used_at.is_(None),
                    )
                )
                .values(used_at=now)
            )
            return result.rowcount == 1

    async def remaining_recovery_codes(self, user_id: str) -> int:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(recovery_codes.c.code_hash).where(
                    recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None)
                )
            )
            return len(list(rows))
