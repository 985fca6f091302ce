"""Where API key records live: one small interface, three backends.

* ``sqlite:///path/keys.db`` (the default; aiosqlite through SQLAlchemy 2 async),
* ``postgresql://user@host/db`` (asyncpg through SQLAlchemy 2 async),
* ``redis://host:6379/0`` (redis-py asyncio; one hash per key, keyed by the key's hash,
  and an index set for listing).

Every backend stores only :func:`bastion.apikeys.model.hash_key` of a key; the key itself
is returned once by :meth:`ApiKeyStore.create` / :meth:`ApiKeyStore.rotate` and never again.
Administrative failures raise :class:`UnknownApiKey` or :class:`ApiKeyNotRotatable`.
"""

from __future__ import annotations

import inspect
import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol, runtime_checkable

from bastion.apikeys.model import (
    ApiKeyRecord,
    display_prefix,
    generate_key,
    generate_key_id,
    hash_key,
    key_environment,
    parse_networks,
)

__all__ = [
    "DEFAULT_REDIS_PREFIX",
    "DEFAULT_TABLE",
    "ApiKeyError",
    "ApiKeyNotRotatable",
    "ApiKeyStore",
    "InvalidationSource",
    "Listeners",
    "UnknownApiKey",
    "issue_key",
    "open_store",
    "successor_of",
]

DEFAULT_TABLE = "bastion_api_keys"
DEFAULT_REDIS_PREFIX = "bastion:apikeys"
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/*-]{0,127}", re.ASCII)
_MAX_NAME = 200


class ApiKeyError(Exception):
    """Base of the administrative errors of the key store (never raised per request)."""


class UnknownApiKey(ApiKeyError, LookupError):
    """No key with this id."""


class ApiKeyNotRotatable(ApiKeyError, ValueError):
    """The key is revoked, expired or already rotated."""


class ApiKeyStore(Protocol):
    """The storage interface every backend implements."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def create(
        self,
        *,
        name: str,
        roles: Sequence[str],
        scopes: Sequence[str],
        expires_at: float | None,
        allowed_networks: Sequence[str],
        now: float,
        env: str = "live",
    ) -> tuple[str, ApiKeyRecord]:
        """Create a key. Returns ``(key, record)``: the key is shown once, then only hashed."""
        ...

    async def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None: ...

    async def list(self) -> list[ApiKeyRecord]: ...

    async def revoke(self, key_id: str, now: float) -> bool:
        """Revoke a key; False when it is unknown or was already revoked."""
        ...

    async def rotate(
        self, key_id: str, *, overlap_seconds: float, now: float
    ) -> tuple[str, ApiKeyRecord]:
        """Issue a successor with the same roles, scopes and networks; the old key now
        expires at ``now + overlap_seconds`` (or earlier, if it already did)."""
        ...


@runtime_checkable
class InvalidationSource(Protocol):
    """Optional: a store that tells in-process caches which key id changed."""

    def add_listener(self, callback: Callable[[str], None]) -> None: ...


class Listeners:
    """Callbacks told which key id a store revoked or rotated, in this process.

    Bound methods (an authenticator's ``invalidate``) are held weakly, so a gateway that
    rebuilds its authenticator on reload does not keep the old one alive.
    """

    __slots__ = ("_refs",)

    def __init__(self) -> None:
        self._refs: list[Callable[[], Callable[[str], None] | None]] = []

    def add(self, callback: Callable[[str], None]) -> None:
        if inspect.ismethod(callback):
            self._refs.append(weakref.WeakMethod(callback))
        else:
            self._refs.append(lambda: callback)

    def notify(self, key_id: str) -> None:
        alive = []
        for ref in self._refs:
            callback = ref()
            if callback is not None:
                callback(key_id)
                alive.append(ref)
        self._refs = alive

    def __len__(self) -> int:
        return sum(1 for ref in self._refs if ref() is not None)


def _labels(kind: str, values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValueError(f"{kind} must be a sequence of strings, not one string")
    result: list[str] = []
    for value in values:
        if not _LABEL.fullmatch(value):
            raise ValueError(f"invalid {kind[:-1]} {value!r}")
        if value not in result:
            result.append(value)
    return tuple(result)


def issue_key(
    *,
    name: str,
    roles: Sequence[str],
    scopes: Sequence[str],
    expires_at: float | None,
    allowed_networks: Sequence[str],
    now: float,
    env: str = "live",
    rotated_from: str | None = None,
) -> tuple[str, ApiKeyRecord]:
    """Validate the inputs and build a fresh ``(key, record)``; backends only persist it."""
    name = name.strip()
    if not name or len(name) > _MAX_NAME or not name.isprintable():
        raise ValueError(f"name must be 1-{_MAX_NAME} printable characters")
    if expires_at is not None and expires_at <= now:
        raise ValueError("expires_at must be in the future")
    key = generate_key(env)
    record = ApiKeyRecord(
        key_id=generate_key_id(),
        name=name,
        prefix=display_prefix(key),
        key_hash=hash_key(key),
        roles=_labels("roles", roles),
        scopes=_labels("scopes", scopes),
        created_at=now,
        expires_at=expires_at,
        revoked_at=None,
        allowed_networks=parse_networks(list(allowed_networks)),
        rotated_from=rotated_from,
    )
    return key, record


def successor_of(
    old: ApiKeyRecord, *, overlap_seconds: float, now: float
) -> tuple[str, ApiKeyRecord, ApiKeyRecord]:
    """Check that ``old`` may be rotated and build ``(new_key, new_record, old_updated)``.

    The successor keeps name, environment, roles, scopes and networks; when the old key had
    a lifetime, the successor gets the same lifetime counted from ``now``.
    """
    if overlap_seconds < 0:
        raise ValueError("overlap must not be negative")
    if old.revoked_at is not None:
        raise ApiKeyNotRotatable(f"{old.key_id} is revoked")
    if old.expires_at is not None and now >= old.expires_at:
        raise ApiKeyNotRotatable(f"{old.key_id} has expired")
    lifetime = None if old.expires_at is None else old.expires_at - old.created_at
    key, record = issue_key(
        name=old.name,
        roles=old.roles,
        scopes=old.scopes,
        expires_at=None if lifetime is None else now + lifetime,
        allowed_networks=old.allowed_networks,
        now=now,
        env=key_environment(old.prefix),
        rotated_from=old.key_id,
    )
    old_expiry = now + overlap_seconds
    if old.expires_at is not None:
        old_expiry = min(old_expiry, old.expires_at)
    return key, record, replace(old, expires_at=old_expiry)


def open_store(
    url: str, *, table: str = DEFAULT_TABLE, redis_prefix: str = DEFAULT_REDIS_PREFIX
) -> ApiKeyStore:
    """Open the backend named by ``url``; call ``await store.start()`` before use.

    ``table`` names the SQL table, ``redis_prefix`` the Redis key namespace (so several
    deployments, or test runs, can share one server). Errors never echo the URL, which may
    hold a password.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        from bastion.apikeys.sql_store import SqlApiKeyStore

        return SqlApiKeyStore("sqlite+aiosqlite://" + url.split("://", 1)[1], table=table)
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        from bastion.apikeys.sql_store import SqlApiKeyStore

        return SqlApiKeyStore("postgresql+asyncpg://" + url.split("://", 1)[1], table=table)
    if scheme in ("redis", "rediss", "unix"):
        from bastion.apikeys.redis_store import RedisApiKeyStore

        return RedisApiKeyStore(url, prefix=redis_prefix)
    raise ValueError(
        f"unsupported key store scheme {scheme!r} (use sqlite:///, postgresql:// or redis://)"
    )
