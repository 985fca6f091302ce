"""The token endpoint (RFC 6749 §3.2, §4.1.3, §4.4.2, §6; RFC 9700 §2.1.2, §2.4).

Only ``authorization_code`` (with PKCE), ``client_credentials`` and ``refresh_token``;
the implicit and password grants do not exist here (RFC 9700 §2.1.2, §2.4).
Responses carry ``Cache-Control: no-store`` (§5.1).

It is the hottest path of the service, so it is served by :class:`TokenEndpoint`, a
plain ASGI middleware in front of the router: the same checks (form rules of
:mod:`bastion.identity.http`, one error mapping) without the per-request framework work.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy.exc import SQLAlchemyError

from bastion.identity.http import JSON_NO_STORE, MAX_BODY, Form, parse_params
from bastion.identity.oautherrors import InvalidRequest, OAuthError, UnsupportedGrantType
from bastion.identity.service import IdentityService
from bastion.jsonutil import dumps
from bastion.types import ASGIApp, Receive, Scope, Send

__all__ = ["TokenEndpoint", "token_response"]

_log = logging.getLogger("bastion.identity")
_FORM = "application/x-www-form-urlencoded"
_BASE_HEADERS = [
    (b"content-type", b"application/json"),
    *((k.lower().encode(), v.encode()) for k, v in JSON_NO_STORE.items()),
]


async def token_response(
    service: IdentityService, authorization: str | None, form: Form
) -> dict[str, object]:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    try:
        client = await service.clients.authenticate(authorization, form)
    except OAuthError as exc:
        service.audit.emit("client.auth_failed", cause=exc.reason, endpoint="token")
        raise
    resources = form.many("resource")
    if grant_type == "client_credentials":
        return await service.client_credentials(client, form.get("scope"), resources)
    if grant_type == "authorization_code":
        return await service.authorization_code(
            client, form.get("code"), form.get("redirect_uri"), form.get("code_verifier"), resources
        )
    if grant_type == "refresh_token":
        return await service.refresh(
            client, form.get("refresh_token"), form.get("scope"), resources
        )
    raise UnsupportedGrantType(reason=f"grant.{grant_type[:40]}")


def _headers(scope: Scope) -> Mapping[bytes, bytes]:
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in found:  # a repeated Authorization or Content-Type is ambiguous
            raise InvalidRequest("repeated header")
        found[name] = value
    return found


async def _read_body(receive: Receive, declared: bytes | None) -> bytes:
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise InvalidRequest("request body is too large")
    body = bytearray()  # extended in place: b"" += chunk copied the body each time
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("client disconnected")
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            raise InvalidRequest("request body is too large")
        if not message.get("more_body", False):
            return bytes(body)


class TokenEndpoint:
    """ASGI middleware answering ``POST /token``; everything else goes to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/token":
            await self.app(scope, receive, send)
            return
        service: IdentityService = scope["app"].state.identity
        status, extra = 200, []
        payload: dict[str, object]
        try:
            if scope["method"] != "POST":
                status, payload, extra = 405, {"error": "method_not_allowed"}, [(b"allow", b"POST")]
            else:
                headers = _headers(scope)
                content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
                if content_type != _FORM.encode():
                    raise InvalidRequest("content type must be application/x-www-form-urlencoded")
                body = await _read_body(receive, headers.get(b"content-length"))
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidRequest("request body is not valid UTF-8") from None
                auth = headers.get(b"authorization")
                payload = await token_response(
                    service,
                    auth.decode("latin-1") if auth is not None else None,
                    parse_params(text),
                )
        except OAuthError as exc:
            status, payload = exc.status, {"error": exc.code}
            if exc.detail:
                payload["error_description"] = exc.detail
            extra = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        except SQLAlchemyError as exc:
            _log.error("identity storage failure: %s", type(exc).__name__)
            status, payload = 503, {"error": "temporarily_unavailable"}
            extra = [(b"retry-after", b"5")]
        except Exception:
            _log.exception("unexpected error in the token endpoint")
            status, payload = 500, {"error": "server_error"}
        raw = dumps(payload)
        headers_out = [*_BASE_HEADERS, *extra, (b"content-length", str(len(raw)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers_out})
        await send({"type": "http.response.body", "body": raw})
