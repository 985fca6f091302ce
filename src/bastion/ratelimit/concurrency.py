"""Concurrency limiting: at most ``limit`` requests in flight per key.

Each admitted request holds a *lease* (a random id) that expires after ``ttl`` seconds, so
a gateway that crashes mid-request cannot leak slots forever (in Redis the leases are the
members of a sorted set scored by expiry). :meth:`ConcurrencyLimiter.slot` releases the
lease on every exit path: success, exceptions and cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from bastion.errors import BastionError, TooManyRequests

if TYPE_CHECKING:
    from bastion.state.base import StateStore

__all__ = ["ConcurrencyLimiter"]

_log = logging.getLogger(__name__)


class ConcurrencyLimiter:
    """``async with limiter.slot(key): ...`` admits at most ``limit`` concurrent holders."""

    def __init__(
        self,
        store: StateStore,
        limit: int,
        *,
        ttl: float = 60.0,
        retry_after: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit < 1 or ttl <= 0:
            raise ValueError("concurrency limit must be >= 1 and ttl > 0")
        self._store = store
        self.limit = limit
        self.ttl = ttl
        self.retry_after = retry_after
        self._clock = clock

    @contextlib.asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[str]:
        """Hold one slot of ``key`` for the body; raise TooManyRequests when all are taken."""
        lease_id = secrets.token_hex(16)
        admitted = await self._store.concurrency_acquire(
            key, self.limit, lease_id, self._clock(), self.ttl
        )
        if not admitted:
            raise TooManyRequests(self.retry_after, reason="ratelimit.concurrency")
        try:
            yield lease_id
        finally:
            await self._release(key, lease_id)

    async def _release(self, key: str, lease_id: str) -> None:
        release = asyncio.ensure_future(self._store.concurrency_release(key, lease_id))
        try:
            # Shielded: a cancelled request still gives its slot back.
            await asyncio.shield(release)
        except asyncio.CancelledError:
            with contextlib.suppress(BastionError):
                await release
            raise
        except BastionError:
            # The store is down: the lease expires by itself after ttl.
            _log.warning("concurrency lease release failed; it expires after its ttl")
