"""API versions: RFC 9745 ``Deprecation``, RFC 8594 ``Sunset``, ``Link`` relations, and
410 Gone (naming the successor) once the sunset date has passed.

Calls to deprecated versions are marked in the audit event (``deprecated: true``), which
``bastion versions`` aggregates per client, so API owners know whom to warn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bastion.errors import Gone
from bastion.types import Policy, RequestContext, Response, UpstreamResponse

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
        deprecated_at: float | None = None,
    ) -> None:
        self.headers = tuple(headers)
        self.deprecated_at, self.sunset_at = deprecated_at, sunset_at
        self.successor, self.clock = successor, clock
        # The gateway's own announcement replaces the upstream's: two Deprecation or Sunset
        # fields make an invalid value, which RFC-following clients discard whole.
        self._replaced = tuple({name.lower() for name, _ in self.headers} - {"link"})

    async def on_request(self, ctx: RequestContext) -> Response | None:
        now = self.clock()
        deprecated = self.deprecated_at is not None and now >= self.deprecated_at
        retired = self.sunset_at is not None and now >= self.sunset_at
        if deprecated or retired:
            ctx.audit["deprecated"] = True  # counted by `bastion versions`
        ctx.response_headers.extend(self.headers)
        if retired:
            detail = "This API version has been retired."
            extensions = {}
            if self.successor:
                detail += f" Use {self.successor} instead."
                extensions["successor"] = self.successor
            raise Gone(detail, reason="version.sunset", extensions=extensions)
        return None

    async def on_response(self, ctx: RequestContext, response: UpstreamResponse) -> None:
        for name in self._replaced:
            response.remove_header(name)
