"""CORS per API with an explicit origin allow-list (Fetch standard, "CORS protocol").

The allowed origin is echoed only when it is on the list, compared exactly; a wildcard is
sent as ``*`` and never combined with credentials (the config refuses that). ``Vary:
Origin`` is always set so caches never serve one origin's answer to another. A preflight
(``OPTIONS`` with ``Access-Control-Request-Method``) is answered locally, before
authentication, as browsers send it without credentials. Upstream ``Access-Control-*``
headers never pass (see :mod:`bastion.gateway.headers`): the gateway is the only authority.
"""

from __future__ import annotations

from bastion.config.models import CorsConfig
from bastion.errors import Forbidden
from bastion.types import Policy, RequestContext, Response

__all__ = ["CorsPolicy"]


class CorsPolicy(Policy):
    name = "cors"

    def __init__(self, config: CorsConfig) -> None:
        self._wildcard = "*" in config.allow_origins
        self._origins = frozenset(o for o in config.allow_origins if o != "*")
        self._credentials = config.allow_credentials
        self._methods = ", ".join(config.allow_methods)
        self._allow_headers = frozenset(h.lower() for h in config.allow_headers)
        self._allow_headers_value = ", ".join(sorted(self._allow_headers))
        self._expose = ", ".join(config.expose_headers)
        self._max_age = str(config.max_age)

    def _allowed_origin(self, origin: str) -> str | None:
        if origin in self._origins:
            return origin
        if self._wildcard:
            return "*"
        return None

    def preflight(self, ctx: RequestContext) -> Response:
        """Answer an OPTIONS preflight for a route of this API."""
        origin = ctx.headers.get("origin")
        allowed = self._allowed_origin(origin) if origin else None
        if allowed is None:
            raise Forbidden("Origin not allowed.", reason="cors.origin_not_allowed")
        requested = ctx.headers.get("access-control-request-headers") or ""
        for header in requested.split(","):
            if header.strip() and header.strip().lower() not in self._allow_headers:
                raise Forbidden("Request header not allowed.", reason="cors.header_not_allowed")
        headers = [
            ("access-control-allow-origin", allowed),
            ("access-control-allow-methods", self._methods),
            ("access-control-allow-headers", self._allow_headers_value),
            ("access-control-max-age", self._max_age),
            ("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        ]
        if self._credentials:
            headers.append(("access-control-allow-credentials", "true"))
        return Response(status=204, headers=headers)

    def response_headers(self, ctx: RequestContext) -> list[tuple[str, str]]:
        origin = ctx.headers.get("origin")
        allowed = self._allowed_origin(origin) if origin else None
        headers = [("vary", "Origin")]
        if allowed is not None:
            headers.append(("access-control-allow-origin", allowed))
            if self._expose:
                headers.append(("access-control-expose-headers", self._expose))
            if self._credentials:
                headers.append(("access-control-allow-credentials", "true"))
        return headers
