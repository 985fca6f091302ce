"""Token revocation (RFC 7009).

§2.1: the client authenticates (public clients by ``client_id``); only tokens issued to
that client are revoked. A refresh token ends its whole family and the access tokens
issued from it; an access token (a JWT, whose ``jti`` is then remembered until it
expires) is announced to gateways through ``IdentityEvents.token_revoked``.
§2.2: the answer is 200 whether or not the token was valid; ``token_type_hint`` only
changes the lookup order.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from bastion.identity.http import JSON_NO_STORE, read_form
from bastion.identity.oautherrors import InvalidRequest
from bastion.identity.service import IdentityService

__all__ = ["revocation_endpoint", "revoke"]


async def revoke(service: IdentityService, client_id: str, token: str, hint: str | None) -> bool:
    """Revoke ``token`` if it belongs to ``client_id``; True when something was revoked."""
    now = service.clock()
    order = (
        ("refresh_token", "access_token")
        if hint != "access_token"
        else ("access_token", "refresh_token")
    )
    for kind in order:
        if kind == "access_token":
            claims = service.tokens.verify(token, now)
            if claims is None or claims.get("client_id") != client_id:
                continue
            jti, exp = str(claims["jti"]), float(claims["exp"])
            if await service.revocations.revoke_jti(jti, exp, now):
                await service.events.token_revoked(jti, exp)
            service.audit.emit("token.revoked", kind="access_token", jti=jti, client_id=client_id)
            return True
        grant = await service.grants.refresh_info(token, now) if len(token) <= 256 else None
        if grant is None or grant.client_id != client_id:
            continue
        revoked = await service.revocations.revoke_family(grant.family_id, "revoked", now)
        for jti, exp in revoked.access_tokens:
            await service.events.token_revoked(jti, exp)
        service.audit.emit(
            "token.revoked",
            kind="refresh_token",
            family=grant.family_id,
            client_id=client_id,
        )
        return True
    return False


async def revocation_endpoint(request: Request) -> Response:
    service: IdentityService = request.app.state.identity
    form = await read_form(request)
    client = await service.clients.authenticate(request.headers.get("authorization"), form)
    token = form.get("token")
    if not token:
        raise InvalidRequest("token is required")
    await revoke(service, client.client_id, token, form.get("token_type_hint"))
    return Response(b"", status_code=200, headers=JSON_NO_STORE)
