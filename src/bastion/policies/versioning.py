"""API versions: RFC 9745 ``Deprecation``, RFC 8594 ``Sunset``, ``Link`` relations, and
410 Gone (naming the successor) once the sunset date has passed.

Calls to deprecated versions are marked in the audit event (``deprecated: true``), which
``bastion versions`` aggregates per client, so API owners know whom to warn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bastion.errors import Gone
from bastion.types import Policy, RequestContext, Response

__all__ = ["VersionPolicy"]


class VersionPolicy(Policy):
    name = "version"

    def __init__(
        self,
        *,
        headers: Sequence[tuple[str, str]],
        sunset_at: float | None,
        successor: str | None,
        clock: Callable[[], float],
    ) -> None:
        self.headers = tuple(headers)
        self.sunset_at, self.successor, self.clock = sunset_at, successor, clock

    async def on_request(self, ctx: RequestContext) -> Response | None:
        ctx.audit["deprecated"] = True
        ctx.response_headers.extend(self.headers)
        if self.sunset_at is not None and self.clock() >= self.sunset_at:
            detail = "This API version has been retired."
            extensions = {}
            if self.successor:
                detail += f" Use {self.successor} instead."
                extensions["successor"] = self.successor
            raise Gone(detail, reason="version.sunset", extensions=extensions)
        return None
