"""The admin API: incident response on its own listener (loopback by default).

Every call needs ``Authorization: Bearer <admin.token>`` (compared in constant time). Every
action is written to the audit log with who (the admin credential's fingerprint) and why.
Actions go to the shared state store, so with Redis they reach every gateway within a
second (pub/sub); with the memory backend they affect this process only.

    POST   /revoke/token     {"jti": "...", "expires_at": 1767225600?, "reason": "..."}
    POST   /revoke/subject   {"subject": "u-alice", "not_before": 1767225600?, "reason": "..."}
    POST   /revoke/api-key   {"key_id": "key_...", "reason": "..."}
    GET    /blocks
    POST   /blocks           {"kind": "ip|principal|api_key", "value": "...", "ttl": 3600?,
                              "reason": "..."}
    DELETE /blocks           {"kind": "...", "value": "..."}
    GET    /health
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.errors import BastionError
from bastion.gateway.runtime import Runtime
from bastion.jsonutil import JSONError, loads_strict
from bastion.secrets import constant_time_equals
from bastion.state.base import BLOCK_KINDS

__all__ = ["create_admin_app"]

MAX_TTL = 10 * 365 * 86_400.0
#: A token revocation without the token's ``expires_at`` is kept this long: the gateway
#: cannot know when the token expires, and a revocation that lapses before its token (it
#: was a day, so a 30-day token came back the next day) undoes the incident response.
UNKNOWN_EXPIRY_KEPT = MAX_TTL


class _BadInput(Exception):
    pass


def create_admin_app(runtime: Callable[[], Runtime], token: str) -> Starlette:
    """``runtime`` returns the current runtime (it changes on reload)."""
    fingerprint = "admin:" + hashlib.sha256(token.encode()).hexdigest()[:12]

    def guarded(
        handler: Callable[[Runtime, dict[str, Any]], Awaitable[dict[str, Any]]],
        action: str,
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            rt = runtime()
            supplied = request.headers.get("authorization", "")
            scheme, _, credential = supplied.partition(" ")
            if scheme.lower() != "bearer" or not constant_time_equals(credential.strip(), token):
                _audit(rt, action, request, 401, fingerprint=None, detail={})
                return _problem(401, "unauthorized", {"WWW-Authenticate": "Bearer"})
            try:
                body = await _json(request)
                result = await handler(rt, body)
            except _BadInput as exc:
                _audit(rt, action, request, 400, fingerprint, {"error": str(exc)})
                return _problem(400, str(exc))
            except BastionError as exc:
                _audit(rt, action, request, exc.status, fingerprint, {"error": exc.reason})
                return _problem(exc.status, exc.code)
            _audit(rt, action, request, 200, fingerprint, result)
            return JSONResponse(result)

        return endpoint

    async def revoke_token(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
        jti = _text(body, "jti")
        expires = _number(body, "expires_at", time.time() + UNKNOWN_EXPIRY_KEPT)
        await rt.services.store.revoke_token(jti, expires)
        return {"revoked": "token", "jti": jti, "expires_at": expires, "reason": _reason(body)}

    async def revoke_subject(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
        subject = _text(body, "subject")
        not_before = _number(body, "not_before", time.time())
        await rt.services.store.revoke_subject(subject, not_before)
        return {
            "revoked": "subject",
            "subject": subject,
            "not_before": not_before,
            "reason": _reason(body),
        }

    async def revoke_api_key(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
        key_id = _text(body, "key_id")
        services = rt.services
        if services.api_key_store is None:
            raise _BadInput("API keys are not configured")
        from bastion.apikeys.authenticator import change_event

        found = bool(await services.api_key_store.revoke(key_id, time.time()))
        services.api_keys.invalidate(key_id)
        # Every gateway drops its cached lookup of this key (pub/sub on Redis).
        await services.store.publish_event(change_event(key_id))
        return {"revoked": "api_key", "key_id": key_id, "found": found, "reason": _reason(body)}

    async def list_blocks(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        blocks = [b.to_json() for b in await rt.services.store.list_blocks() if b.active(now)]
        return {"blocks": blocks}

    async def add_block(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
        kind, value = _kind(body), _text(body, "value")
        ttl = body.get("ttl")
        until = None
        if ttl is not None:
            until = time.time() + _bounded(ttl, "ttl")
        try:
            await rt.services.store.block(kind, value, until, _reason(body))
        except ValueError as exc:
            raise _BadInput(str(exc)) from None
        return {"blocked": kind, "value": value, "until": until, "reason": _reason(body)}

    async def remove_block(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
        kind, value = _kind(body), _text(body, "value")
        await rt.services.store.unblock(kind, value)
        return {"unblocked": kind, "value": value}

    async def health(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
        return {"status": "ok", "checks": await rt.ready()}

    return Starlette(
        routes=[
            Route("/revoke/token", guarded(revoke_token, "revoke_token"), methods=["POST"]),
            Route("/revoke/subject", guarded(revoke_subject, "revoke_subject"), methods=["POST"]),
            Route("/revoke/api-key", guarded(revoke_api_key, "revoke_api_key"), methods=["POST"]),
            Route("/blocks", guarded(list_blocks, "list_blocks"), methods=["GET"]),
            Route("/blocks", guarded(add_block, "block"), methods=["POST"]),
            Route("/blocks", guarded(remove_block, "unblock"), methods=["DELETE"]),
            Route("/health", guarded(health, "health"), methods=["GET"]),
        ]
    )


async def _json(request: Request) -> dict[str, Any]:
    if request.method == "GET":
        return {}
    raw = await request.body()
    if len(raw) > 16_384:
        raise _BadInput("body too large")
    try:
        body = loads_strict(raw or b"{}")
    except JSONError as exc:
        raise _BadInput(f"invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _BadInput("body must be a JSON object")
    return body


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > 512:
        raise _BadInput(f"{key} must be a non-empty string")
    return value


def _number(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadInput(f"{key} must be a number (seconds since the epoch)")
    return float(value)


def _bounded(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TTL:
        raise _BadInput(f"{key} must be a positive number of seconds")
    return float(value)


def _kind(body: dict[str, Any]) -> str:
    kind = _text(body, "kind")
    if kind not in BLOCK_KINDS:
        raise _BadInput(f"kind must be one of {sorted(BLOCK_KINDS)}")
    return kind


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason", "")
    return reason[:256] if isinstance(reason, str) else ""


def _problem(status: int, code: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"status": status, "code": code},
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


def _audit(
    rt: Runtime,
    action: str,
    request: Request,
    status: int,
    fingerprint: str | None,
    detail: dict[str, Any],
) -> None:
    client = request.client.host if request.client else None
    rt.audit.emit(
        {
            "event": "admin_action",
            "action": action,
            "status": status,
            "actor": fingerprint,
            "client_ip": client,
            "detail": detail,
        }
    )
