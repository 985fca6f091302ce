"""Token introspection (RFC 7662).

§2.1: only authenticated confidential clients (resource servers, gateways) may ask.
§2.2: ``{"active": false}`` for anything not currently valid: unknown, expired, revoked
(``jti`` on the revoked list), issued before the subject's not-before (password change,
account disabled), or whose client or user is disabled. Refresh tokens are described only
to the client they were issued to.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bastion.identity.http import json_response, read_form
from bastion.identity.oautherrors import InvalidClient, InvalidRequest
from bastion.identity.service import IdentityService

__all__ = ["introspect", "introspection_endpoint"]

_INACTIVE: dict[str, Any] = {"active": False}


async def introspect(
    service: IdentityService, client_id: str, token: str, hint: str | None
) -> dict[str, Any]:
    now = service.clock()
    claims = service.tokens.verify(token, now) if hint != "refresh_token" or "." in token else None
    if claims is not None:
        if await service.revocations.is_revoked(str(claims.get("jti"))):
            return _INACTIVE
        if not await _subject_live(service, claims):
            return _INACTIVE
        keys = ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti", "roles")
        body = {k: claims[k] for k in keys if k in claims}
        return {"active": True, "token_type": "Bearer", **body}
    if len(token) > 256:
        return _INACTIVE
    grant = await service.grants.refresh_info(token, now)
    if grant is None or grant.client_id != client_id:
        return _INACTIVE
    user = await service.users.get(grant.user_id)
    if user is None or user.disabled:
        return _INACTIVE
    return {
        "active": True,
        "token_type": "refresh_token",
        "client_id": grant.client_id,
        "sub": grant.user_id,
        "scope": grant.scope,
        "iss": service.settings.issuer,
    }


async def _subject_live(service: IdentityService, claims: dict[str, Any]) -> bool:
    client = await service.clients.get(str(claims.get("client_id")))
    if client is None or client.disabled:
        return False
    subject = str(claims.get("sub"))
    if subject == client.client_id:
        return True
    user = await service.users.get(subject)
    if user is None or user.disabled:
        return False
    return float(claims.get("iat", 0)) >= user.not_before


async def introspection_endpoint(request: Request) -> Response:
    service: IdentityService = request.app.state.identity
    form = await read_form(request)
    client = await service.clients.authenticate(
        request.headers.get("authorization"), form, allow_public=False
    )
    if client.public:
        raise InvalidClient(reason="introspection.public_client")
    token = form.get("token")
    if not token:
        raise InvalidRequest("token is required")
    return json_response(
        await introspect(service, client.client_id, token, form.get("token_type_hint"))
    )
