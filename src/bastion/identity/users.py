"""User accounts, password login and throttling (NIST SP 800-63B-4 §3.1.1.2, §3.2.2).

Throttling is an atomic per-account failure counter: after ``throttle_after`` consecutive
failures each further attempt must wait a doubling delay (capped), and at
``lockout_threshold`` (never more than 100) the account locks for ``lockout_duration``.
Each guess is counted *before* it is checked (:meth:`Users.reserve_attempt`, one guarded
``UPDATE``), so however many guesses arrive at once, no more are checked than the throttle
lets through one after another; a right guess gives its reservation back.
Unknown users cost one Argon2id verification against a dummy hash, and every failure
(unknown user, wrong password, disabled, locked, throttled) is the same :class:`LoginFailed`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from bastion.identity.passwords import PasswordHasher, PasswordPolicy
from bastion.identity.schema import users
from bastion.identity.sealing import new_token
from bastion.identity.settings import LockoutSettings
from bastion.identity.storage import Database
from bastion.jsonutil import dumps, loads_strict

__all__ = [
    "GENERIC_LOGIN_ERROR",
    "Attempt",
    "LoginFailed",
    "User",
    "Users",
    "normalize_username",
]

GENERIC_LOGIN_ERROR = "The username or password is incorrect, or the account is locked."


class LoginFailed(Exception):
    """One generic failure; ``reason`` (audit only) says which check failed."""

    def __init__(self, reason: str, user_id: str | None = None) -> None:
        super().__init__(GENERIC_LOGIN_ERROR)
        self.reason = reason
        self.user_id = user_id


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    email: str | None
    roles: tuple[str, ...]
    disabled: bool
    password_hash: str
    mfa_seed: str | None
    failed_logins: int
    locked_until: float
    next_attempt_at: float
    not_before: float

    @property
    def mfa_enrolled(self) -> bool:
        return self.mfa_seed is not None


@dataclass(frozen=True, slots=True)
class Attempt:
    """A guess already counted as a failure (see :meth:`Users.reserve_attempt`)."""

    user_id: str
    #: ``failed_logins`` once this guess was counted.
    count: int
    #: Counting this guess locked the account (it stays locked unless the guess was right).
    locks: bool


def normalize_username(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().casefold()


def _user(row: object) -> User:
    r = row  # a SQLAlchemy Row
    return User(
        id=r.id,  # type: ignore[attr-defined]
        username=r.username,  # type: ignore[attr-defined]
        email=r.email,  # type: ignore[attr-defined]
        roles=tuple(loads_strict(r.roles)),  # type: ignore[attr-defined]
        disabled=bool(r.disabled),  # type: ignore[attr-defined]
        password_hash=r.password_hash,  # type: ignore[attr-defined]
        mfa_seed=r.mfa_seed,  # type: ignore[attr-defined]
        failed_logins=r.failed_logins,  # type: ignore[attr-defined]
        locked_until=r.locked_until,  # type: ignore[attr-defined]
        next_attempt_at=r.next_attempt_at,  # type: ignore[attr-defined]
        not_before=r.not_before,  # type: ignore[attr-defined]
    )


class Users:
    def __init__(
        self,
        db: Database,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        lockout: LockoutSettings,
    ) -> None:
        self._db = db
        self.hasher = hasher
        self.policy = policy
        self._lockout = lockout

    async def add(
        self,
        username: str,
        password: str,
        *,
        roles: Iterable[str] = (),
        email: str | None = None,
        user_id: str | None = None,
        now: float,
    ) -> User:
        """Create a user; the password must pass the rules (raises ``PasswordRejected``)."""
        name = normalize_username(username)
        if not 1 <= len(name) <= 128 or any(unicodedata.category(c)[0] == "C" for c in name):
            raise ValueError("username must be 1-128 printable characters")
        context = [name, *([email] if email else [])]
        clean = self.policy.check(password, context=context)
        values = {
            "id": user_id or f"u-{new_token(9)}",
            "username": name,
            "email": email,
            "password_hash": await self.hasher.ahash(clean),
            "roles": dumps(sorted(set(roles))).decode(),
            "disabled": False,
            "mfa_seed": None,
            "mfa_last_step": None,
            "failed_logins": 0,
            "locked_until": 0.0,
            "next_attempt_at": 0.0,
            "not_before": 0.0,
            "created_at": now,
        }
        try:
            async with self._db.write() as conn:
                await conn.execute(insert(users).values(values))
        except IntegrityError:
            raise ValueError("a user with that username or id already exists") from None
        user = await self.get(str(values["id"]))
        assert user is not None
        return user

    async def get(self, user_id: str) -> User | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        return _user(row) if row is not None else None

    async def by_username(self, username: str) -> User | None:
        name = normalize_username(username)
        if len(name) > 128:
            return None
        async with self._db.read() as conn:
            row = (await conn.execute(select(users).where(users.c.username == name))).first()
        return _user(row) if row is not None else None

    async def set_disabled(self, user_id: str, disabled: bool, now: float) -> None:
        values: dict[str, object] = {"disabled": disabled}
        if disabled:
            values["not_before"] = now
        async with self._db.write() as conn:
            result = await conn.execute(update(users).where(users.c.id == user_id).values(values))
            if result.rowcount != 1:
                raise KeyError(user_id)

    async def set_password(self, user: User, password: str, now: float) -> None:
        clean = self.policy.check(password, context=[user.username, user.email or ""])
        async with self._db.write() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user.id)
                .values(
                    password_hash=await self.hasher.ahash(clean),
                    not_before=now,
                    failed_logins=0,
                    locked_until=0.0,
                    next_attempt_at=0.0,
                )
            )

    async def authenticate(self, username: str, password: str, now: float) -> User:
        """The user whose password this is, or :class:`LoginFailed` (generic).

        The guess is counted as a failure before the password is checked, and given back
        if it was right: success leaves the counter as it was. Call :meth:`reset_failures`
        when the whole login (second factor included) is complete.
        """
        user = await self.by_username(username) if len(username) <= 512 else None
        if user is None:
            await self.hasher.averify(None, password)
            raise LoginFailed("login.unknown_user")
        try:
            attempt = await self.reserve_attempt(user.id, now)
        except LoginFailed:
            await self.hasher.averify(None, password)
            raise
        if not await self.hasher.averify(user.password_hash, password):
            raise LoginFailed(
                "login.locked_now" if attempt.locks else "login.bad_password", user.id
            )
        # A known password must not reset the TOTP guess budget, nor cost any of it.
        await self.release_attempt(attempt)
        if user.disabled:
            raise LoginFailed("login.disabled", user.id)
        if self.hasher.needs_rehash(user.password_hash):
            async with self._db.write() as conn:
                await conn.execute(
                    update(users)
                    .where(users.c.id == user.id)
                    .values(password_hash=await self.hasher.ahash(password_normalized(password)))
                )
        return user

    async def reserve_attempt(self, user_id: str, now: float) -> Attempt:
        """Count one guess as a failure before it is checked, or raise :class:`LoginFailed`.

        The count goes up only where the account is neither locked nor waiting out a delay,
        in one conditional ``UPDATE``; the delay or lock this failure earns is set in the
        same transaction. Concurrent reservations queue on the row (the write lock on
        SQLite, the row lock on PostgreSQL, which re-checks the condition on the row the
        previous one committed), so a burst gets exactly as many guesses as a sequence.
        """
        async with self._db.write() as conn:
            result = await conn.execute(
                update(users)
                .where(
                    users.c.id == user_id,
                    users.c.locked_until <= now,
                    users.c.next_attempt_at <= now,
                )
                .values(failed_logins=users.c.failed_logins + 1)
                .returning(users.c.failed_logins)
            )
            count = result.scalar_one_or_none()
            if count is None:
                row = (
                    await conn.execute(select(users.c.locked_until).where(users.c.id == user_id))
                ).first()
                if row is None:
                    raise LoginFailed("login.unknown_user")
                locked = row.locked_until > now
                raise LoginFailed("login.locked" if locked else "login.throttled", user_id)
            penalty = self._penalty(int(count), now)
            if penalty:
                await conn.execute(update(users).where(users.c.id == user_id).values(penalty))
        return Attempt(user_id, int(count), int(count) >= self._lockout.lockout_threshold)

    async def release_attempt(self, attempt: Attempt) -> None:
        """Give back a reservation whose guess was right, if nothing was counted since.

        It then undoes exactly its own reservation (the delay and lock it set had not been
        there, or the reservation would have been refused). If other guesses were counted
        meanwhile it is kept: a burst never earns guesses back.
        """
        async with self._db.write() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == attempt.user_id, users.c.failed_logins == attempt.count)
                .values(failed_logins=attempt.count - 1, next_attempt_at=0.0, locked_until=0.0)
            )

    def _penalty(self, count: int, now: float) -> dict[str, float]:
        """The delay and lock that ``count`` consecutive failures earn."""
        cfg = self._lockout
        values: dict[str, float] = {}
        if count >= cfg.throttle_after:
            exponent = min(count - cfg.throttle_after, 30)
            values["next_attempt_at"] = now + min(cfg.base_delay * 2**exponent, cfg.max_delay)
        if count >= cfg.lockout_threshold:
            values["locked_until"] = now + cfg.lockout_duration
        return values

    async def reset_failures(self, user_id: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .where(users.c.failed_logins > 0)
                .values(failed_logins=0, next_attempt_at=0.0, locked_until=0.0)
            )


def password_normalized(password: str) -> str:
    return unicodedata.normalize("NFKC", password)
