"""The token endpoint (RFC 6749 §3.2, §4.1.3, §4.4.2, §6; RFC 9700 §2.1.2, §2.4).

Only ``authorization_code`` (with PKCE), ``client_credentials`` and ``refresh_token``;
the implicit and password grants do not exist here (RFC 9700 §2.1.2, §2.4).
Responses carry ``Cache-Control: no-store`` (§5.1).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from bastion.identity.http import json_response, read_form
from bastion.identity.oautherrors import InvalidRequest, OAuthError, UnsupportedGrantType
from bastion.identity.service import IdentityService

__all__ = ["token_endpoint"]


async def token_endpoint(request: Request) -> Response:
    service: IdentityService = request.app.state.identity
    form = await read_form(request)
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    try:
        client = await service.clients.authenticate(request.headers.get("authorization"), form)
    except OAuthError as exc:
        service.audit.emit("client.auth_failed", cause=exc.reason, endpoint="token")
        raise
    resources = form.many("resource")
    if grant_type == "client_credentials":
        body = await service.client_credentials(client, form.get("scope"), resources)
    elif grant_type == "authorization_code":
        body = await service.authorization_code(
            client, form.get("code"), form.get("redirect_uri"), form.get("code_verifier"), resources
        )
    elif grant_type == "refresh_token":
        body = await service.refresh(
            client, form.get("refresh_token"), form.get("scope"), resources
        )
    else:
        raise UnsupportedGrantType(reason=f"grant.{grant_type[:40]}")
    return json_response(body)
