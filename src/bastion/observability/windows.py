"""Sliding windows for the detectors: counts and distinct-member counts per key.

A window of length W is kept as ``BUCKETS`` buckets of W/BUCKETS seconds; the value of a
window is the sum over the buckets that overlap ``(now - W, now]`` (a sliding window with
W/BUCKETS granularity). Detectors submit one batch of updates per pass and read back the
window values of the keys they touched:

* :class:`LocalWindows` — this process only (exact counts, exact distinct sets);
* :class:`RedisWindows` — shared by every gateway through Redis: counts with ``INCRBY`` on
  per-bucket keys, distinct members with HyperLogLog (``PFADD``; ``PFCOUNT`` over the
  window's buckets is the union, ~0.8 % standard error), all writes and reads of one pass
  in one pipelined round trip. Keys expire after their window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "BUCKETS",
    "Batch",
    "FallbackWindows",
    "LocalWindows",
    "Readings",
    "RedisWindows",
    "WindowKey",
    "Windows",
]

BUCKETS = 10

#: (key, window seconds)
WindowKey = tuple[str, float]


@dataclass
class Batch:
    """Updates of one detector pass."""

    counts: dict[WindowKey, int] = field(default_factory=dict)
    members: dict[WindowKey, set[str]] = field(default_factory=dict)

    def add(self, key: str, window: float, amount: int = 1) -> None:
        wk = (key, window)
        self.counts[wk] = self.counts.get(wk, 0) + amount

    def add_member(self, key: str, window: float, member: str) -> None:
        self.members.setdefault((key, window), set()).add(member)

    def __bool__(self) -> bool:
        return bool(self.counts or self.members)


@dataclass(frozen=True)
class Readings:
    counts: Mapping[WindowKey, int]
    distinct: Mapping[WindowKey, int]


class Windows(Protocol):
    async def apply(self, batch: Batch, now: float) -> Readings:
        """Record ``batch`` at time ``now``; return the window values of its keys."""
        ...


def _bucket(now: float, window: float) -> int:
    return int(now // (window / BUCKETS))


class LocalWindows:
    """In-process windows (one gateway process, or tests)."""

    def __init__(self) -> None:
        self._counts: dict[WindowKey, dict[int, int]] = {}
        self._members: dict[WindowKey, dict[int, set[str]]] = {}
        self._applied = 0

    async def apply(self, batch: Batch, now: float) -> Readings:
        counts: dict[WindowKey, int] = {}
        distinct: dict[WindowKey, int] = {}
        for wk, amount in batch.counts.items():
            current = _bucket(now, wk[1])
            buckets = self._counts.setdefault(wk, {})
            buckets[current] = buckets.get(current, 0) + amount
            _trim(buckets, current)
            counts[wk] = sum(v for b, v in buckets.items() if b > current - BUCKETS)
        for wk, members in batch.members.items():
            current = _bucket(now, wk[1])
            sets = self._members.setdefault(wk, {})
            sets.setdefault(current, set()).update(members)
            _trim(sets, current)
            union: set[str] = set()
            for b, value in sets.items():
                if b > current - BUCKETS:
                    union |= value
            distinct[wk] = len(union)
        self._applied += 1
        if self._applied % 256 == 0:
            self._sweep(now)
        return Readings(counts, distinct)

    def _sweep(self, now: float) -> None:
        """Forget keys whose every bucket left the window (bounded memory)."""
        for table in (self._counts, self._members):
            stale = [
                wk
                for wk, buckets in table.items()
                if not buckets or max(buckets) <= _bucket(now, wk[1]) - BUCKETS
            ]
            for wk in stale:
                del table[wk]


def _trim(buckets: dict[int, Any], current: int) -> None:
    if len(buckets) > BUCKETS:
        for old in [b for b in buckets if b <= current - BUCKETS]:
            del buckets[old]


class RedisWindows:
    """Windows in Redis, shared by every gateway using the same ``prefix``."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = f"{prefix}:mon:w"

    def _key(self, wk: WindowKey, kind: str, bucket: int) -> str:
        # Hash the subject: attacker-chosen values never become long or odd Redis keys.
        digest = hashlib.blake2b(wk[0].encode("utf-8", "surrogatepass"), digest_size=12)
        # One hash tag per subject: the buckets read together share a Redis Cluster slot.
        return f"{{{self._prefix}:{digest.hexdigest()}}}:{kind}:{wk[1]:g}:{bucket}"

    async def apply(self, batch: Batch, now: float) -> Readings:
        pipe = self._client.pipeline(transaction=False)
        plan: list[tuple[str, WindowKey]] = []
        for wk, amount in batch.counts.items():
            current = _bucket(now, wk[1])
            ttl = int(wk[1] * 2) + 1
            pipe.incrby(self._key(wk, "c", current), amount)
            pipe.expire(self._key(wk, "c", current), ttl)
            pipe.mget([self._key(wk, "c", current - i) for i in range(BUCKETS)])
            plan.append(("c", wk))
        for wk, members in batch.members.items():
            current = _bucket(now, wk[1])
            ttl = int(wk[1] * 2) + 1
            pipe.pfadd(self._key(wk, "d", current), *sorted(members))
            pipe.expire(self._key(wk, "d", current), ttl)
            pipe.pfcount(*[self._key(wk, "d", current - i) for i in range(BUCKETS)])
            plan.append(("d", wk))
        replies = await pipe.execute()
        counts: dict[WindowKey, int] = {}
        distinct: dict[WindowKey, int] = {}
        for index, (kind, wk) in enumerate(plan):
            value = replies[index * 3 + 2]
            if kind == "c":
                counts[wk] = sum(int(v) for v in value if v is not None)
            else:
                distinct[wk] = int(value)
        return Readings(counts, distinct)


class FallbackWindows:
    """Shared windows, falling back to this process's own while the shared ones fail (a
    Redis outage must not blind the detectors: each gateway still sees its own traffic)."""

    def __init__(self, shared: Windows, local: Windows | None = None) -> None:
        self.shared = shared
        self.local = local or LocalWindows()
        self.failures = 0

    async def apply(self, batch: Batch, now: float) -> Readings:
        try:
            return await self.shared.apply(batch, now)
        except Exception:
            self.failures += 1
            return await self.local.apply(batch, now)
