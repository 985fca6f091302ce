"""The token service as a Starlette application.

``create_identity_app(settings)`` builds the routes; the lifespan applies migrations,
makes sure signing keys exist and runs scheduled key rotation. OAuth errors are rendered
as RFC 6749 §5.2 JSON; a database outage is a 503 (fail closed); anything unexpected a
generic 500 that names nothing internal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.errors import BastionError
from bastion.identity.authorize import authorize_get, authorize_post, mfa_post
from bastion.identity.events import IdentityEvents
from bastion.identity.http import json_response, oauth_error_response
from bastion.identity.logout import logout_get, logout_post
from bastion.identity.oautherrors import OAuthError
from bastion.identity.rfc7009 import revocation_endpoint
from bastion.identity.rfc7662 import introspection_endpoint
from bastion.identity.rfc8414 import jwks_endpoint, metadata_endpoint
from bastion.identity.service import IdentityService
from bastion.identity.settings import IdentitySettings
from bastion.identity.token import TokenEndpoint

__all__ = ["create_identity_app"]

_log = logging.getLogger("bastion.identity")
_MAINTENANCE_INTERVAL = 300.0


async def _oauth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    return oauth_error_response(exc)


async def _bastion_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BastionError)
    return json_response({"error": exc.code}, exc.status, exc.headers)


async def _storage_error(request: Request, exc: Exception) -> Response:
    _log.error("identity storage failure: %s", type(exc).__name__)
    return json_response({"error": "temporarily_unavailable"}, 503, {"Retry-After": "5"})


async def _maintain(service: IdentityService) -> None:
    while True:
        await asyncio.sleep(_MAINTENANCE_INTERVAL)
        try:
            rotated = await service.keys.maintain()
            await service.housekeeping()
        except SQLAlchemyError as exc:
            _log.error("key maintenance failed: %s", type(exc).__name__)
            continue
        if rotated is not None:
            service.audit.emit("key.rotated", kid=rotated.active_kid, next_kid=rotated.next_kid)


def create_identity_app(
    settings: IdentitySettings,
    *,
    events: IdentityEvents | None = None,
    clock: Callable[[], float] = time.time,
    audit_sink: TextIO | None = None,
    service: IdentityService | None = None,
) -> Starlette:
    """The token service; ``app.state.identity`` is its :class:`IdentityService`."""
    svc = service or IdentityService(settings, events=events, clock=clock, audit_sink=audit_sink)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await svc.start()
        task = asyncio.create_task(_maintain(svc))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if service is None:
                await svc.close()

    routes = [
        Route("/.well-known/oauth-authorization-server", metadata_endpoint, methods=["GET"]),
        Route("/.well-known/openid-configuration", metadata_endpoint, methods=["GET"]),
        Route("/.well-known/jwks.json", jwks_endpoint, methods=["GET"]),
        Route("/revoke", revocation_endpoint, methods=["POST"]),
        Route("/introspect", introspection_endpoint, methods=["POST"]),
        Route("/authorize", authorize_get, methods=["GET"]),
        Route("/authorize", authorize_post, methods=["POST"]),
        Route("/authorize/mfa", mfa_post, methods=["POST"]),
        Route("/logout", logout_get, methods=["GET"]),
        Route("/logout", logout_post, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(TokenEndpoint)],
        exception_handlers={
            OAuthError: _oauth_error,
            BastionError: _bastion_error,
            SQLAlchemyError: _storage_error,
        },
    )
    app.state.identity = svc
    app.state.metadata_bytes = None
    return app
