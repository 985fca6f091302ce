"""Recent alerts and incidents, and the alert gate (deduplication and rate limit).

With Redis the list of incidents and the dedup claims are shared by every gateway: the
first gateway to claim ``detector:subject`` for ``dedup_window`` raises the alert and runs
the playbook; the others stay quiet. Without Redis both live in this process.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["AlertGate", "IncidentLog"]


class IncidentLog:
    """The newest ``kept`` incidents (alert JSON with the actions taken), newest first."""

    def __init__(self, kept: int, client: Any = None, prefix: str = "bastion") -> None:
        self.kept = kept
        self._client = client
        self._key = f"{prefix}:mon:incidents"
        self._local: deque[dict[str, Any]] = deque(maxlen=kept)

    async def add(self, incident: dict[str, Any]) -> None:
        """Keep the incident here and, with Redis, in the shared list (may raise)."""
        self._local.appendleft(incident)
        if self._client is not None:
            pipe = self._client.pipeline(transaction=False)
            pipe.lpush(self._key, orjson.dumps(incident))
            pipe.ltrim(self._key, 0, self.kept - 1)
            await pipe.execute()

    async def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        limit = max(1, min(limit, self.kept))
        if self._client is None:
            return list(self._local)[:limit]
        try:
            raw = await self._client.lrange(self._key, 0, limit - 1)
        except Exception:  # Redis is down: what this process saw
            return list(self._local)[:limit]
        out = []
        for item in raw:
            try:
                value = orjson.loads(item)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                out.append(value)
        return out


class AlertGate:
    """Dedup per ``key`` for ``window`` seconds (shared through Redis) and at most
    ``per_minute`` alerts per minute in this process."""

    def __init__(
        self,
        window: float,
        per_minute: int,
        clock: Callable[[], float],
        client: Any = None,
        prefix: str = "bastion",
    ) -> None:
        self.window, self.per_minute, self._clock = window, per_minute, clock
        self._client = client
        self._prefix = f"{prefix}:mon:dedup"
        self._claims: dict[str, float] = {}
        self.shared_failures = 0
        self._minute = -1
        self._sent = 0

    async def admit(self, key: str) -> str | None:
        """None if the alert may go out, else why not ("duplicate" or "rate_limited")."""
        now = self._clock()
        if not await self._claim(key, now):
            return "duplicate"
        minute = int(now // 60)
        if minute != self._minute:
            self._minute, self._sent = minute, 0
        if self._sent >= self.per_minute:
            return "rate_limited"
        self._sent += 1
        return None

    async def _claim(self, key: str, now: float) -> bool:
        if self.window <= 0:
            return True
        if self._client is not None:
            digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16)
            ttl_ms = max(1, int(self.window * 1000))
            try:
                claimed = await self._client.set(
                    f"{self._prefix}:{digest.hexdigest()}", b"1", nx=True, px=ttl_ms
                )
                return bool(claimed)
            except Exception:  # Redis is down: dedup in this process rather than go silent
                self.shared_failures += 1
        until = self._claims.get(key)
        if until is not None and until > now:
            return False
        if len(self._claims) > 10_000:
            self._claims = {k: v for k, v in self._claims.items() if v > now}
        self._claims[key] = now + self.window
        return True
