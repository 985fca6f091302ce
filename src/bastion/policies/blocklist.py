"""The shared blocklist for client IPs (single addresses or CIDR networks).

Blocks are made with ``bastion block`` or the admin API and reach every gateway through
the state store's mirror (pub/sub on Redis), so the check is a local lookup. Principal and
API-key blocks are checked right after authentication (see
:mod:`bastion.policies.authentication`). A stale mirror fails closed (503).
"""

from __future__ import annotations

from collections.abc import Callable

from bastion.errors import Forbidden, ServiceUnavailable
from bastion.state.base import StateStore
from bastion.types import Policy, RequestContext, Response

__all__ = ["BlocklistPolicy"]


class BlocklistPolicy(Policy):
    name = "blocklist"

    def __init__(self, store: StateStore, clock: Callable[[], float]) -> None:
        self.store, self.clock = store, clock

    async def on_request(self, ctx: RequestContext) -> Response | None:
        self.on_request_now(ctx)
        return None

    def on_request_now(self, ctx: RequestContext) -> None:
        """A local lookup: decided at once, never deferred."""
        now = self.clock()
        mirror = self.store.mirror
        if not mirror.fresh(now):
            raise ServiceUnavailable(reason="state.stale")
        entry = mirror.is_blocked("ip", ctx.client_ip, now)
        if entry is not None:
            ctx.audit["block_reason"] = entry.reason
            raise Forbidden(reason="blocklist.ip")
        return None
