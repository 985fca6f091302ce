"""Admin-listener routes of the monitor: ``/metrics``, ``/incidents`` and the dashboard.

Authentication: ``/metrics`` and ``/incidents`` take the admin bearer token (Prometheus:
``authorization: {credentials: ...}``) or a dashboard session. The dashboard logs in with
the admin token and gets a session cookie (``HttpOnly; SameSite=Strict``; ``Secure`` over
https). Sessions are stateless — ``<expiry>.<nonce>.<HMAC>`` with a key derived from the
admin token — so every worker process behind the admin port accepts them, and changing
the admin token ends them all. Every POST needs the session's CSRF token
(``X-CSRF-Token`` header or ``csrf`` form field, HMAC of the nonce) and, when the browser
sends one, an ``Origin`` matching the host. Pages carry a strict CSP: every asset is served
from this listener, no CDN, no inline script.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bastion.jsonutil import JSONError, loads_strict
from bastion.observability.metrics import render
from bastion.secrets import constant_time_equals
from bastion.state.base import BLOCK_KINDS

if TYPE_CHECKING:
    from bastion.observability.monitor import Monitor

__all__ = ["SESSION_COOKIE", "LoginThrottle", "Sessions", "admin_routes"]

SESSION_COOKIE = "bastion_session"
#: The largest login form read (a token and a CSRF value fit many times over).
_LOGIN_BODY_MAX = 4096
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send Origin: null
    "Cache-Control": "no-store",
}
_ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
MAX_TTL = 30 * 86_400.0


class Sessions:
    """Stateless signed sessions and their CSRF tokens."""

    def __init__(self, admin_token: str, ttl: float, clock: Any = time.time) -> None:
        self._key = hashlib.sha256(b"bastion-dashboard-session\x00" + admin_token.encode()).digest()
        self.ttl, self._clock = ttl, clock

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        expiry = int(self._clock() + self.ttl)
        nonce = secrets.token_urlsafe(18)
        return f"{expiry}.{nonce}.{self._mac(f'{expiry}.{nonce}')}"

    def nonce(self, cookie: str | None) -> str | None:
        """The session's nonce if the cookie is authentic and unexpired."""
        if not cookie or len(cookie) > 256:
            return None
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        expiry, nonce, mac = parts
        if not constant_time_equals(mac, self._mac(f"{expiry}.{nonce}")):
            return None
        if int(expiry) <= self._clock():
            return None
        return nonce

    def csrf(self, nonce: str) -> str:
        return self._mac(f"csrf.{nonce}")


class LoginThrottle:
    """At most ``limit`` failed sign-ins per client IP per minute (per process)."""

    def __init__(self, limit: int = 10, clock: Any = time.time) -> None:
        self.limit, self._clock = limit, clock
        self._failures: dict[str, list[float]] = {}

    def blocked(self, ip: str) -> bool:
        recent = [t for t in self._failures.get(ip, ()) if t > self._clock() - 60]
        self._failures[ip] = recent
        return len(recent) >= self.limit

    def failed(self, ip: str) -> None:
        if len(self._failures) > 10_000:
            self._failures.clear()  # bounded under spoofed sources
        self._failures.setdefault(ip, []).append(self._clock())


def admin_routes(monitor: Monitor, admin_token: str) -> list[BaseRoute]:
    sessions = Sessions(admin_token, monitor.config.session_ttl)
    throttle = LoginThrottle()
    actor_fp = "dashboard:" + hashlib.sha256(admin_token.encode()).hexdigest()[:12]

    def bearer_ok(request: Request) -> bool:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and constant_time_equals(credential.strip(), admin_token)

    def session_nonce(request: Request) -> str | None:
        return sessions.nonce(request.cookies.get(SESSION_COOKIE))

    def denied() -> Response:
        return JSONResponse(
            {"status": 401, "code": "unauthorized"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer", **_HEADERS},
            media_type="application/problem+json",
        )

    async def metrics(request: Request) -> Response:
        if not (bearer_ok(request) or session_nonce(request)):
            return denied()
        body = render(monitor.merged_metrics)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def incidents(request: Request) -> Response:
        if not (bearer_ok(request) or session_nonce(request)):
            return denied()
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            limit = 50
        return JSONResponse({"incidents": await monitor.incidents.recent(limit)})

    async def page(request: Request) -> Response:
        nonce = session_nonce(request)
        if nonce is None:
            return HTMLResponse(_login_page(request.query_params.get("failed") == "1"),
                                headers=_HEADERS)  # fmt: skip
        return HTMLResponse(_dashboard_page(sessions.csrf(nonce)), headers=_HEADERS)

    async def login(request: Request) -> Response:
        if not _same_origin(request):
            return JSONResponse({"code": "bad_origin"}, status_code=403, headers=_HEADERS)
        ip = request.client.host if request.client else ""
        if throttle.blocked(ip):
            _audit(monitor, "dashboard_login", request, 429, None)
            return JSONResponse({"code": "too_many_attempts"}, status_code=429,
                                headers={"Retry-After": "60", **_HEADERS})  # fmt: skip
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > _LOGIN_BODY_MAX:
            # Read before any check: up to 1000 fields of 1 MiB each (about 1 GB).
            return JSONResponse({"code": "bad_request"}, status_code=400, headers=_HEADERS)
        form = await request.form(max_fields=4, max_part_size=_LOGIN_BODY_MAX)
        supplied = form.get("token")
        ok = isinstance(supplied, str) and constant_time_equals(supplied, admin_token)
        _audit(monitor, "dashboard_login", request, 200 if ok else 401, actor_fp if ok else None)
        if not ok:
            throttle.failed(ip)
            return RedirectResponse("/dashboard?failed=1", status_code=303, headers=_HEADERS)
        response = RedirectResponse("/dashboard", status_code=303, headers=_HEADERS)
        response.set_cookie(
            SESSION_COOKIE,
            sessions.issue(),
            max_age=int(sessions.ttl),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(request: Request) -> Response:
        nonce = session_nonce(request)
        if nonce is None or not await _csrf_ok(request, sessions, nonce):
            return JSONResponse({"code": "forbidden"}, status_code=403, headers=_HEADERS)
        response = RedirectResponse("/dashboard", status_code=303, headers=_HEADERS)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def stats(request: Request) -> Response:
        if session_nonce(request) is None and not bearer_ok(request):
            return denied()
        now = time.time()
        merged = monitor.merged_metrics()
        try:
            blocks = [b.to_json() for b in await monitor.store.list_blocks() if b.active(now)]
            recent = await monitor.incidents.recent(20)
        except Exception:  # the store is down: show the numbers we have
            blocks, recent = [], []
        return JSONResponse(
            {"time": now, **merged.totals(), "blocks": blocks, "incidents": recent},
            headers=_HEADERS,
        )

    async def action(request: Request) -> Response:
        nonce = session_nonce(request)
        if nonce is None:
            return denied()
        if not await _csrf_ok(request, sessions, nonce):
            _audit(monitor, "dashboard_action", request, 403, actor_fp, {"error": "csrf"})
            return JSONResponse({"code": "csrf"}, status_code=403, headers=_HEADERS)
        name = request.path_params["name"]
        try:
            body = await _json(request)
            result = await _perform(monitor, name, body)
        except ValueError as exc:
            _audit(monitor, name, request, 400, actor_fp, {"error": str(exc)})
            return JSONResponse({"code": "bad_request", "detail": str(exc)}, status_code=400,
                                headers=_HEADERS)  # fmt: skip
        except Exception as exc:  # store unavailable: fail closed and say so
            _audit(monitor, name, request, 503, actor_fp, {"error": type(exc).__name__})
            return JSONResponse({"code": "unavailable"}, status_code=503, headers=_HEADERS)
        _audit(monitor, name, request, 200, actor_fp, result)
        return JSONResponse(result, headers=_HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _ASSETS:
            return Response(status_code=404)
        data = resources.files("bastion.observability").joinpath("assets", name).read_bytes()
        headers = {**_HEADERS, "Cache-Control": "max-age=300"}
        return Response(data, media_type=_ASSETS[name], headers=headers)

    routes: list[BaseRoute] = []
    if monitor.config.metrics:
        routes.append(Route("/metrics", metrics, methods=["GET"]))
    routes.append(Route("/incidents", incidents, methods=["GET"]))
    if monitor.config.dashboard:
        routes += [
            Route("/dashboard", page, methods=["GET"]),
            Route("/dashboard/login", login, methods=["POST"]),
            Route("/dashboard/logout", logout, methods=["POST"]),
            Route("/dashboard/api/stats", stats, methods=["GET"]),
            Route("/dashboard/api/{name:str}", action, methods=["POST"]),
            Route("/dashboard/assets/{name:str}", asset, methods=["GET"]),
        ]
    return routes


async def _perform(monitor: Monitor, name: str, body: dict[str, Any]) -> dict[str, Any]:
    store = monitor.store
    reason = str(body.get("reason") or f"dashboard {name}")[:256]
    if name == "block":
        kind, value = _kind(body), _text(body, "value")
        ttl = body.get("ttl")
        until = None
        if ttl not in (None, ""):
            if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= MAX_TTL:
                raise ValueError("ttl must be a positive number of seconds")
            until = time.time() + float(ttl)
        await store.block(kind, value, until, reason)  # type: ignore[arg-type]
        return {"blocked": kind, "value": value, "until": until, "reason": reason}
    if name == "unblock":
        kind, value = _kind(body), _text(body, "value")
        await store.unblock(kind, value)  # type: ignore[arg-type]
        return {"unblocked": kind, "value": value}
    if name == "revoke":
        subject = _text(body, "subject")
        now = time.time()
        await store.revoke_subject(subject, now)
        return {"revoked": "subject", "subject": subject, "not_before": now, "reason": reason}
    raise ValueError(f"unknown action {name!r}")


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > 512:
        raise ValueError(f"{key} must be a non-empty string")
    return value.strip()


def _kind(body: dict[str, Any]) -> str:
    kind = _text(body, "kind")
    if kind not in BLOCK_KINDS:
        raise ValueError(f"kind must be one of {sorted(BLOCK_KINDS)}")
    return kind


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > 16_384:
        raise ValueError("body too large")
    try:
        body = loads_strict(raw or b"{}")
    except JSONError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # not a browser, or a same-origin GET-style navigation
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


async def _csrf_ok(request: Request, sessions: Sessions, nonce: str) -> bool:
    if not _same_origin(request):
        return False
    supplied = request.headers.get("x-csrf-token")
    if supplied is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        value = (await request.form()).get("csrf")
        supplied = value if isinstance(value, str) else None
    return supplied is not None and constant_time_equals(supplied, sessions.csrf(nonce))


def _audit(
    monitor: Monitor,
    action: str,
    request: Request,
    status: int,
    actor: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    monitor.emit(
        {
            "event": "admin_action",
            "action": action,
            "status": status,
            "actor": actor,
            "client_ip": request.client.host if request.client else None,
            "detail": detail or {},
        }
    )


def _login_page(failed: bool) -> str:
    message = '<p class="error">Wrong token.</p>' if failed else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bastion — sign in</title>
<link rel="stylesheet" href="/dashboard/assets/dashboard.css"></head>
<body class="login"><main><h1>Bastion</h1>{message}
<form method="post" action="/dashboard/login">
<label>Admin token <input type="password" name="token" id="token" autocomplete="off"
 required></label> <button type="submit" id="login">Sign in</button></form></main></body></html>
"""


def _dashboard_page(csrf: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bastion — security dashboard</title>
<meta name="csrf-token" content="{html.escape(csrf)}">
<link rel="stylesheet" href="/dashboard/assets/dashboard.css"></head>
<body><header><h1>Bastion</h1><span id="updated">loading…</span>
<form method="post" action="/dashboard/logout"><input type="hidden" name="csrf"
 value="{html.escape(csrf)}"><button type="submit">Sign out</button></form></header>
<main>
<section class="cards">
 <div class="card"><h2>Requests</h2><b id="total">0</b><small id="rate">0/s</small></div>
 <div class="card"><h2>Denied</h2><b id="denied">0</b><small id="deny-rate">0/s</small></div>
 <div class="card"><h2>Gateway p50 / p99</h2><b id="overhead">–</b></div>
 <div class="card"><h2>Upstream p50 / p99</h2><b id="upstream">–</b></div>
</section>
<section><h2>Request and denial rate (per second)</h2><svg id="chart" viewBox="0 0 600 160"
 role="img" aria-label="request rate"></svg></section>
<section class="two"><div><h2>Denials by reason (total, rate)</h2>
<svg id="reasons" viewBox="0 0 300 160" role="img" aria-label="denials by reason"></svg></div>
<div><h2>Alerts and incidents</h2><ul id="incidents"></ul></div></section>
<section class="two"><div><h2>Top principals</h2><table id="principals"></table></div>
<div><h2>Top client IPs</h2><table id="ips"></table></div></section>
<section><h2>Blocked clients</h2><table id="blocks"></table>
<form id="block-form"><select id="block-kind"><option>ip</option><option>principal</option>
<option value="api_key">api_key</option></select><input id="block-value" placeholder="value"
 required><input id="block-ttl" type="number" min="1" placeholder="seconds (empty: until
 unblocked)"><button type="submit" id="block-button">Block</button></form>
<form id="revoke-form"><input id="revoke-subject" placeholder="subject" required>
<button type="submit" id="revoke-button">Revoke all tokens</button></form>
<p id="action-result" role="status"></p></section>
</main><script src="/dashboard/assets/dashboard.js"></script></body></html>
"""
