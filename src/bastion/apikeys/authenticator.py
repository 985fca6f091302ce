"""Per-request API key authentication with an in-process cache in front of the store.

Order of checks, cheapest first: shape and CRC32 checksum (no store call, so typos and
random garbage never reach the database), then a cache lookup by the key's SHA-256, then the
store. Every refusal is :class:`bastion.errors.Unauthorized` with ``WWW-Authenticate:
ApiKey`` and an audit-only ``reason``: ``apikey.malformed``, ``apikey.checksum``,
``apikey.unknown``, ``apikey.revoked``, ``apikey.expired`` or ``apikey.network``. A store
failure is :class:`bastion.errors.ServiceUnavailable` (fail closed) and is never cached.

Caching: positive and negative lookups are kept for ``cache_ttl`` seconds in two bounded
LRUs (a flood of unknown keys cannot evict the known ones). Expiry and network rules are
evaluated on every call with the current clock, so only revocation (and the shortened
expiry of a rotated key) done by *another* process is seen late, by at most ``cache_ttl``.
Revocations through a store of this process, and :meth:`ApiKeyAuthenticator.invalidate`,
take effect at once. Concurrent misses for the same key share one store lookup.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bastion.apikeys.model import ApiKeyRecord, hash_key, key_format_problem
from bastion.apikeys.store import ApiKeyStore, InvalidationSource
from bastion.errors import BastionError, ServiceUnavailable, Unauthorized
from bastion.types import Principal

__all__ = ["CHANGE_EVENT_TYPE", "SCHEME", "ApiKeyAuthenticator", "change_event", "principal_for"]

SCHEME = "ApiKey"
#: ``type`` of the shared-state event that tells every gateway a key changed.
CHANGE_EVENT_TYPE = "apikey.changed"


class _StateChange(Protocol):
    """The shape of :class:`bastion.state.base.ChangeEvent` (duck-typed, no import)."""

    @property
    def kind(self) -> str: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


def change_event(key_id: str) -> dict[str, str]:
    """The event to ``publish_event`` on the shared state after revoking or rotating
    ``key_id``, so every gateway drops it from its cache at once instead of within the TTL."""
    return {"type": CHANGE_EVENT_TYPE, "key_id": key_id}


class _TtlLru:
    """A bounded LRU whose entries also expire ``ttl`` seconds after insertion."""

    __slots__ = ("_data", "_max")

    def __init__(self, max_entries: int) -> None:
        self._data: OrderedDict[str, tuple[float, ApiKeyRecord | None]] = OrderedDict()
        self._max = max_entries

    def get(self, key: str, now: float) -> tuple[bool, ApiKeyRecord | None]:
        entry = self._data.get(key)
        if entry is None:
            return False, None
        if now >= entry[0]:
            del self._data[key]
            return False, None
        self._data.move_to_end(key)
        return True, entry[1]

    def put(self, key: str, deadline: float, value: ApiKeyRecord | None) -> None:
        if self._max <= 0:
            return
        self._data[key] = (deadline, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    def records(self) -> list[ApiKeyRecord]:
        return [value for _, value in self._data.values() if value is not None]

    def drop(self, key: str) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class ApiKeyAuthenticator:
    """Turns a presented key into its :class:`ApiKeyRecord`, or raises."""

    def __init__(
        self,
        store: ApiKeyStore,
        *,
        cache_ttl: float = 5.0,
        clock: Callable[[], float] = time.time,
        max_entries: int = 10_000,
    ) -> None:
        if cache_ttl < 0:
            raise ValueError("cache_ttl must not be negative")
        self._store = store
        self._ttl = cache_ttl
        self._clock = clock
        self._known = _TtlLru(max_entries if cache_ttl > 0 else 0)
        self._unknown = _TtlLru(max_entries if cache_ttl > 0 else 0)
        self._hash_of_id: dict[str, str] = {}
        self._inflight: dict[str, asyncio.Future[ApiKeyRecord | None]] = {}
        self._generation = 0
        if isinstance(store, InvalidationSource):
            store.add_listener(self.invalidate)

    @property
    def cached_entries(self) -> int:
        """How many lookups (positive and negative) are cached now."""
        return len(self._known) + len(self._unknown)

    def invalidate(self, key_id: str | None = None) -> None:
        """Forget the cached lookup of ``key_id``, or of every key when ``None``.

        A lookup already in flight when this is called is neither cached nor shared with
        callers that arrive afterwards: they start a fresh one.
        """
        self._generation += 1
        self._inflight.clear()
        if key_id is None:
            self._known.clear()
            self._unknown.clear()
            self._hash_of_id.clear()
            return
        key_hash = self._hash_of_id.pop(key_id, None)
        if key_hash is not None:
            self._known.drop(key_hash)

    def on_state_change(self, event: _StateChange) -> None:
        """Hook for ``StateStore.on_change``: a published :func:`change_event` invalidates
        that key; a ``resync`` (the state backend reconnected, events may be lost) drops all."""
        if event.kind == "resync":
            self.invalidate()
        elif event.kind == "event" and event.data.get("type") == CHANGE_EVENT_TYPE:
            key_id = event.data.get("key_id")
            self.invalidate(key_id if isinstance(key_id, str) else None)

    async def authenticate(self, key: str, client_ip: str) -> ApiKeyRecord:
        """The record of a usable ``key`` presented from ``client_ip``; raises otherwise."""
        problem = key_format_problem(key)
        if problem is not None:
            raise Unauthorized(reason=problem, scheme=SCHEME)
        key_hash = hash_key(key)
        now = self._clock()
        hit, record = self._known.get(key_hash, now)
        if not hit:
            hit, record = self._unknown.get(key_hash, now)
        if not hit:
            record = await self._lookup(key_hash)
            now = self._clock()
        if record is None or not hmac.compare_digest(record.key_hash, key_hash):
            raise Unauthorized(reason="apikey.unknown", scheme=SCHEME)
        reason = record.usable(now, client_ip)
        if reason is not None:
            raise Unauthorized(reason=reason, scheme=SCHEME)
        return record

    async def _lookup(self, key_hash: str) -> ApiKeyRecord | None:
        task = self._inflight.get(key_hash)
        if task is None:
            task = asyncio.ensure_future(self._fetch(key_hash, self._generation))
            self._inflight[key_hash] = task
            task.add_done_callback(lambda done: self._settled(key_hash, done))
        # Shielded: a caller that is cancelled does not cancel the lookup others wait for.
        return await asyncio.shield(task)

    def _settled(self, key_hash: str, task: asyncio.Future[ApiKeyRecord | None]) -> None:
        if self._inflight.get(key_hash) is task:
            del self._inflight[key_hash]
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure is not logged

    async def _fetch(self, key_hash: str, generation: int) -> ApiKeyRecord | None:
        try:
            record = await self._store.get_by_hash(key_hash)
        except BastionError:
            raise
        except Exception as exc:
            raise ServiceUnavailable(reason="apikey.store_unavailable") from exc
        if generation == self._generation:
            self._remember(key_hash, record)
        return record

    def _remember(self, key_hash: str, record: ApiKeyRecord | None) -> None:
        deadline = self._clock() + self._ttl
        if record is None:
            self._unknown.put(key_hash, deadline, None)
            return
        self._unknown.drop(key_hash)
        self._known.put(key_hash, deadline, record)
        self._hash_of_id[record.key_id] = key_hash
        if len(self._hash_of_id) > 2 * max(len(self._known), 1) + 1024:
            live = {r.key_id for r in self._known.records()}
            self._hash_of_id = {k: v for k, v in self._hash_of_id.items() if k in live}


def principal_for(record: ApiKeyRecord) -> Principal:
    """The :class:`bastion.types.Principal` of an authenticated key, as the gateway builds
    it: subject ``apikey:<key id>`` (never equal to a token's ``sub``, so an owner rule or a
    rate limit cannot mix a key with a user), the key id as ``credential_id``."""
    return Principal(
        subject=f"apikey:{record.key_id}",
        kind="api_key",
        roles=frozenset(record.roles),
        scopes=frozenset(record.scopes),
        claims={"name": record.name, "key_id": record.key_id, "key_prefix": record.prefix},
        credential_id=record.key_id,
        issued_at=record.created_at,
    )
