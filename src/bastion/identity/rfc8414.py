"""Authorization server metadata (RFC 8414 §2, §3) and the JWKS (RFC 7517 §5).

The same document is served at ``/.well-known/oauth-authorization-server`` and at
``/.well-known/openid-configuration`` (OIDC Discovery 1.0 §4), so a gateway can find
``jwks_uri`` from either. It advertises only what is enforced: ``code`` as the only
response type, PKCE ``S256`` only, no implicit or password grant, the three client
authentication methods, ``iss`` in authorization responses (RFC 9207 §3). No ID tokens
are issued, so no ``id_token_*`` fields are claimed.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bastion.identity.clients import AUTH_METHODS, GRANT_TYPES
from bastion.identity.service import IdentityService
from bastion.identity.settings import IdentitySettings
from bastion.jsonutil import dumps

__all__ = ["jwks_endpoint", "metadata", "metadata_endpoint"]

_ASSERTION_ALGS = ["ES256", "ES384", "PS256", "RS256", "EdDSA"]


def metadata(settings: IdentitySettings) -> dict[str, Any]:
    base = settings.issuer
    confidential = [m for m in AUTH_METHODS if m != "none"]
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "revocation_endpoint": f"{base}/revoke",
        "introspection_endpoint": f"{base}/introspect",
        "end_session_endpoint": f"{base}/logout",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGS,
        "introspection_endpoint_auth_methods_supported": confidential,
        "introspection_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGS,
        "authorization_response_iss_parameter_supported": True,
        "subject_types_supported": ["public"],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
            "client_id",
            "scope",
            "roles",
            "auth_time",
        ],
    }


async def metadata_endpoint(request: Request) -> Response:
    service: IdentityService = request.app.state.identity
    body = request.app.state.metadata_bytes
    if body is None:
        body = request.app.state.metadata_bytes = dumps(metadata(service.settings))
    return Response(
        body, media_type="application/json", headers={"Cache-Control": "public, max-age=3600"}
    )


async def jwks_endpoint(request: Request) -> Response:
    service: IdentityService = request.app.state.identity
    await service.keys.refresh_if_stale()
    max_age = service.settings.keys.jwks_max_age
    return Response(
        dumps(service.keys.jwks()),
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={max_age}"},
    )
