"""OAuth 2.0 error responses (RFC 6749 §4.1.2.1, §5.2; RFC 8707 §2; RFC 7009 §2.2.1).

Each class is a :class:`bastion.errors.BastionError` whose ``code`` is the registered OAuth
``error`` value; the token service renders them as ``{"error", "error_description"}`` JSON
with ``Cache-Control: no-store`` (see :func:`bastion.identity.http.oauth_error_response`).
The precise cause goes to ``reason`` (audit only); descriptions stay generic.
"""

from __future__ import annotations

from bastion.errors import BastionError

__all__ = [
    "AccessDenied",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "OAuthError",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UnsupportedResponseType",
    "UnsupportedTokenType",
]


class OAuthError(BastionError):
    status = 400
    code = "invalid_request"
    title = "Invalid request"


class InvalidRequest(OAuthError):
    pass


class InvalidClient(OAuthError):
    """RFC 6749 §5.2: 401 with a ``WWW-Authenticate`` challenge."""

    status = 401
    code = "invalid_client"
    title = "Client authentication failed"

    def __init__(self, detail: str | None = None, *, reason: str | None = None) -> None:
        super().__init__(
            detail or "client authentication failed",
            reason=reason,
            headers={"WWW-Authenticate": 'Basic realm="bastion-identity"'},
        )


class InvalidGrant(OAuthError):
    code = "invalid_grant"
    title = "Invalid grant"


class UnauthorizedClient(OAuthError):
    code = "unauthorized_client"
    title = "Unauthorized client"


class UnsupportedGrantType(OAuthError):
    code = "unsupported_grant_type"
    title = "Unsupported grant type"


class UnsupportedResponseType(OAuthError):
    code = "unsupported_response_type"
    title = "Unsupported response type"


class InvalidScope(OAuthError):
    code = "invalid_scope"
    title = "Invalid scope"


class InvalidTarget(OAuthError):
    code = "invalid_target"
    title = "Invalid target"


class AccessDenied(OAuthError):
    status = 403
    code = "access_denied"
    title = "Access denied"


class UnsupportedTokenType(OAuthError):
    code = "unsupported_token_type"
    title = "Unsupported token type"
