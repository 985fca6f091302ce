"""Redis key store (redis-py asyncio).

Layout, under one hash tag so every key lands in the same Redis Cluster slot and the Lua
scripts may touch several keys::

    {<prefix>}:h:<key_hash>   hash: one record (fields below), looked up per request
    {<prefix>}:id:<key_id>    string: the key_hash of that key id (admin commands)
    {<prefix>}:index          set: every key_hash, for listing

Revocation and rotation are Lua scripts, so two administrators racing cannot leave two
live successors or undo a revocation. Absent values are stored as empty strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from bastion.apikeys.model import ApiKeyRecord
from bastion.apikeys.store import (
    DEFAULT_REDIS_PREFIX,
    ApiKeyNotRotatable,
    Listeners,
    UnknownApiKey,
    issue_key,
    successor_of,
)

__all__ = ["RedisApiKeyStore"]

_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}", re.ASCII)

# KEYS: id key, hash key. ARGV: expected key_hash, revoked_at.
_REVOKE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local current = redis.call('HGET', KEYS[2], 'revoked_at')
if current and current ~= '' then return 0 end
redis.call('HSET', KEYS[2], 'revoked_at', ARGV[2])
return 1
"""

# KEYS: old hash key, new hash key, new id key, index.
# ARGV: expected old expires_at, new old expires_at, new key_id, new key_hash, field/value...
_ROTATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local state = redis.call('HMGET', KEYS[1], 'revoked_at', 'rotated_to', 'expires_at')
if (state[1] or '') ~= '' then return -2 end
if (state[2] or '') ~= '' then return -3 end
if (state[3] or '') ~= ARGV[1] then return -4 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -5 end
redis.call('HSET', KEYS[1], 'expires_at', ARGV[2], 'rotated_to', ARGV[3])
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('SET', KEYS[3], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[4])
return 1
"""

_ROTATE_ERRORS = {
    -1: "is unknown",
    -2: "is revoked",
    -3: "was already rotated",
    -4: "changed concurrently; try again",
    -5: "successor collided; try again",
}


def _num(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _fields(record: ApiKeyRecord) -> dict[str, str]:
    return {
        "key_id": record.key_id,
        "name": record.name,
        "prefix": record.prefix,
        "key_hash": record.key_hash,
        "roles": orjson.dumps(list(record.roles)).decode(),
        "scopes": orjson.dumps(list(record.scopes)).decode(),
        "created_at": _num(record.created_at),
        "expires_at": _num(record.expires_at),
        "revoked_at": _num(record.revoked_at),
        "allowed_networks": orjson.dumps(list(record.allowed_networks)).decode(),
        "rotated_from": record.rotated_from or "",
        "rotated_to": "",
    }


def _text_map(raw: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(raw).items()}


def _opt(value: str | None) -> float | None:
    return float(value) if value else None


def _record(fields: dict[str, str]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=fields["key_id"],
        name=fields["name"],
        prefix=fields["prefix"],
        key_hash=fields["key_hash"],
        roles=tuple(orjson.loads(fields["roles"])),
        scopes=tuple(orjson.loads(fields["scopes"])),
        created_at=float(fields["created_at"]),
        expires_at=_opt(fields.get("expires_at")),
        revoked_at=_opt(fields.get("revoked_at")),
        allowed_networks=tuple(orjson.loads(fields["allowed_networks"])),
        rotated_from=fields.get("rotated_from") or None,
    )


class RedisApiKeyStore:
    """:class:`bastion.apikeys.store.ApiKeyStore` on Redis."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_REDIS_PREFIX) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ValueError("redis prefix must match [A-Za-z0-9_.:-]{1,64}")
        self._tag = "{" + prefix + "}"
        self._redis: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=True)
        self._revoke = self._redis.register_script(_REVOKE)
        self._rotate = self._redis.register_script(_ROTATE)
        self._listeners = Listeners()

    def _hash_key(self, key_hash: str) -> str:
        return f"{self._tag}:h:{key_hash}"

    def _id_key(self, key_id: str) -> str:
        return f"{self._tag}:id:{key_id}"

    @property
    def _index(self) -> str:
        return f"{self._tag}:index"

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(key_id)`` after a key of this process is revoked or rotated."""
        self._listeners.add(callback)

    async def start(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

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
        key, record = issue_key(
            name=name,
            roles=roles,
            scopes=scopes,
            expires_at=expires_at,
            allowed_networks=allowed_networks,
            now=now,
            env=env,
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._hash_key(record.key_hash), mapping=_fields(record))  # type: ignore[arg-type]
            pipe.set(self._id_key(record.key_id), record.key_hash)
            pipe.sadd(self._index, record.key_hash)
            await pipe.execute()
        return key, record

    async def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        raw: Any = await self._redis.hgetall(self._hash_key(key_hash))
        return _record(_text_map(raw)) if raw else None

    async def _by_id(self, key_id: str) -> ApiKeyRecord | None:
        key_hash: Any = await self._redis.get(self._id_key(key_id))
        return None if key_hash is None else await self.get_by_hash(str(key_hash))

    async def list(self) -> list[ApiKeyRecord]:
        hashes: Any = await self._redis.smembers(self._index)
        ordered = sorted(str(h) for h in hashes)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key_hash in ordered:
                pipe.hgetall(self._hash_key(key_hash))
            results: list[Any] = await pipe.execute()
        records = [_record(_text_map(fields)) for fields in results if fields]
        return sorted(records, key=lambda r: (r.created_at, r.key_id))

    async def revoke(self, key_id: str, now: float) -> bool:
        record = await self._by_id(key_id)
        if record is None:
            return False
        keys = [self._id_key(key_id), self._hash_key(record.key_hash)]
        changed = bool(await self._revoke(keys=keys, args=[record.key_hash, _num(now)]))
        if changed:
            self._listeners.notify(key_id)
        return changed

    async def rotate(
        self, key_id: str, *, overlap_seconds: float, now: float
    ) -> tuple[str, ApiKeyRecord]:
        old = await self._by_id(key_id)
        if old is None:
            raise UnknownApiKey(key_id)
        raw: Any = await self._redis.hget(self._hash_key(old.key_hash), "rotated_to")
        if raw:
            raise ApiKeyNotRotatable(f"{key_id} was already rotated to {raw}")
        key, record, old_updated = successor_of(old, overlap_seconds=overlap_seconds, now=now)
        args: list[str] = [
            _num(old.expires_at),
            _num(old_updated.expires_at),
            record.key_id,
            record.key_hash,
        ]
        for name, value in _fields(record).items():
            args.extend((name, value))
        keys = [
            self._hash_key(old.key_hash),
            self._hash_key(record.key_hash),
            self._id_key(record.key_id),
            self._index,
        ]
        status = int(await self._rotate(keys=keys, args=args))
        if status != 1:
            raise ApiKeyNotRotatable(f"{key_id} {_ROTATE_ERRORS.get(status, 'was not rotated')}")
        self._listeners.notify(key_id)
        return key, record
