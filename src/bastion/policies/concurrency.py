"""In-flight concurrency limits per principal, IP, API key or route (OWASP API4).

A slot is leased from the shared state store before forwarding and released when the
request completes, whatever its outcome; leases expire after ``ttl`` so a crashed gateway
cannot leak slots. A request over the limit is 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from bastion.errors import TooManyRequests
from bastion.gateway.request import client_key
from bastion.state.base import StateStore
from bastion.types import Policy, RequestContext, Response

__all__ = ["ConcurrencyPolicy"]


class ConcurrencyPolicy(Policy):
    name = "concurrency"

    def __init__(
        self,
        *,
        scope: str,
        key: str,
        limit: int,
        ttl: float,
        store: StateStore,
        clock: Callable[[], float],
        ipv6_prefix: int = 64,
    ) -> None:
        self.scope, self.key, self.limit, self.ttl = scope, key, limit, ttl
        self.ipv6_prefix = ipv6_prefix
        self.store, self.clock = store, clock
        self._releases: set[asyncio.Task[None]] = set()

    def _identity(self, ctx: RequestContext) -> str:
        if self.key == "ip":
            return client_key(ctx.client_ip, self.ipv6_prefix)
        if self.key == "route":
            return f"{ctx.method} {ctx.route}"
        if ctx.principal is not None:
            if self.key == "api_key" and ctx.principal.kind == "api_key":
                return ctx.principal.credential_id or ctx.principal.subject
            return ctx.principal.subject
        return f"ip:{client_key(ctx.client_ip, self.ipv6_prefix)}"

    async def on_request(self, ctx: RequestContext) -> Response | None:
        key = f"cc:{self.scope}:{self._identity(ctx)}"
        lease = secrets.token_hex(12)
        if not await self.store.concurrency_acquire(key, self.limit, lease, self.clock(), self.ttl):
            raise TooManyRequests(1.0, reason="ratelimit.concurrency")
        ctx.state[self.name] = (key, lease)
        return None

    def on_complete(self, ctx: RequestContext) -> None:
        held = ctx.state.pop(self.name, None)
        if held is None:
            return
        task = asyncio.ensure_future(self.store.concurrency_release(*held))
        self._releases.add(task)
        task.add_done_callback(self._released)

    def _released(self, task: asyncio.Task[None]) -> None:
        self._releases.discard(task)
        if not task.cancelled():
            task.exception()  # a failed release expires with its lease; never raise here
