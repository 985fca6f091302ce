"""Cache of verified tokens: a bounded LRU keyed by the SHA-256 of the token.

A repeat verification of the same token is one hash, one dict lookup and one clock
read. An entry lives until ``min(exp + leeway, verified_at + cache_ttl)``; a hit still
re-checks ``exp`` against the clock and that the issuer's keys are still trusted
(fail closed when the JWKS went stale). ``invalidate`` drops entries by ``jti`` or
``sub`` (revocation); entries of an issuer are dropped when its JWKS lost a key.

Only the digest is kept as the key: the token itself never sits in the index.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .verify import VerifiedToken

__all__ = ["CacheEntry", "VerifiedTokenCache"]


@dataclass(slots=True)
class CacheEntry:
    token: VerifiedToken
    #: Clock value after which the entry is no longer served.
    deadline: float
    #: Still-trusted check of the key source (a remote JWKS), or None for static keys.
    keys_usable: Callable[[float], bool] | None


class VerifiedTokenCache:
    """Bounded LRU of verified tokens with secondary indexes by ``jti`` and ``sub``."""

    def __init__(self, max_entries: int, ttl: float) -> None:
        self.max_entries = max(0, max_entries)
        self.ttl = ttl
        self._entries: OrderedDict[bytes, CacheEntry] = OrderedDict()
        self._by_jti: dict[str, set[bytes]] = {}
        self._by_sub: dict[str, set[bytes]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes, now: float) -> VerifiedToken | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if now >= entry.deadline or (entry.keys_usable is not None and not entry.keys_usable(now)):
            self._drop(digest)
            return None
        self._entries.move_to_end(digest)
        return entry.token

    def put(
        self,
        digest: bytes,
        token: VerifiedToken,
        now: float,
        keys_usable: Callable[[float], bool] | None,
    ) -> None:
        if self.max_entries == 0 or self.ttl <= 0:
            return
        deadline = min(token.expires_at + token.issuer.leeway, now + self.ttl)
        if digest in self._entries:
            self._drop(digest)
        self._entries[digest] = CacheEntry(token, deadline, keys_usable)
        if token.jti is not None:
            self._by_jti.setdefault(token.jti, set()).add(digest)
        self._by_sub.setdefault(token.subject, set()).add(digest)
        while len(self._entries) > self.max_entries:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def invalidate(self, *, jti: str | None = None, subject: str | None = None) -> int:
        """Drop every entry with this ``jti`` and/or ``sub``; returns how many."""
        digests: set[bytes] = set()
        if jti is not None:
            digests |= self._by_jti.get(jti, set())
        if subject is not None:
            digests |= self._by_sub.get(subject, set())
        for digest in digests:
            self._drop(digest)
        return len(digests)

    def drop_issuer(self, issuer: str) -> None:
        """Forget every token of one issuer (its key set lost a key)."""
        for digest in [d for d, e in self._entries.items() if e.token.issuer.issuer == issuer]:
            self._drop(digest)

    def clear(self) -> None:
        self._entries.clear()
        self._by_jti.clear()
        self._by_sub.clear()

    def _drop(self, digest: bytes) -> None:
        entry = self._entries.pop(digest, None)
        if entry is None:
            return
        token = entry.token
        if token.jti is not None:
            _discard(self._by_jti, token.jti, digest)
        _discard(self._by_sub, token.subject, digest)


def _discard(index: dict[str, set[bytes]], value: str, digest: bytes) -> None:
    bucket = index.get(value)
    if bucket is not None:
        bucket.discard(digest)
        if not bucket:
            del index[value]
