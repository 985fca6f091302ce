"""The vulnapi Starlette application: ``create_app(vulnerable=True)`` and its fixed twin.

Every ``if self.vulnerable`` branch is a planted vulnerability listed in PLANTED.md; the
other branch is the fix. Both twins serve the same routes, data and OpenAPI contract.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vulnapi import shell, tokens
from vulnapi.store import USERS, Store, mongo_match

Handler = Callable[[Request], Awaitable[Response]]
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
}


class ApiError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        self.status, self.detail, self.headers = status, detail, headers or {}


class VulnApi:
    def __init__(self, vulnerable: bool) -> None:
        self.vulnerable = vulnerable
        self.secret = tokens.WEAK_SECRET if vulnerable else secrets.token_bytes(32)
        self.store = Store()
        self.login_attempts: dict[str, list[float]] = {}
        self.request_log: list[tuple[str, str]] = []

    # -- plumbing ---------------------------------------------------------------------------
    def guard(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return JSONResponse({"detail": exc.detail}, exc.status, headers=exc.headers)
            except Exception:
                if self.vulnerable:  # PLANTED (API8): stack traces in responses
                    return PlainTextResponse(traceback.format_exc(), 500)
                return JSONResponse({"detail": "internal error"}, 500)

        return endpoint

    async def body(self, request: Request) -> dict[str, Any]:
        if self.vulnerable:
            data = json.loads(await request.body())  # raises -> traceback (API8)
        else:
            try:
                data = json.loads(await request.body())
            except ValueError as exc:
                raise ApiError(400, "malformed JSON") from exc
            if len(await request.body()) > 16384:
                raise ApiError(413, "body too large")
        if not isinstance(data, dict):
            raise ApiError(422, "body must be an object")
        return data

    def principal(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not token and self.vulnerable:
            token = request.query_params.get("access_token", "")  # PLANTED (API2)
        if not token:
            raise ApiError(401, "missing token", {"www-authenticate": "Bearer"})
        verify = tokens.verify_vulnerable if self.vulnerable else tokens.verify_fixed
        try:
            return verify(self.secret, token)
        except tokens.TokenError as exc:
            raise ApiError(401, "invalid token", {"www-authenticate": "Bearer"}) from exc

    def require_admin(self, claims: dict[str, Any]) -> None:
        if claims.get("role") != "admin":
            raise ApiError(403, "admin only")

    def order_for(self, request: Request, claims: dict[str, Any]) -> dict[str, Any]:
        order = self.store.orders.get(int(request.path_params["order_id"]))
        if order is None:
            raise ApiError(404, "order not found")
        owner_ok = order["owner"] == claims.get("sub") or claims.get("role") == "admin"
        if not self.vulnerable and not owner_ok:
            raise ApiError(404, "order not found")
        return order  # PLANTED (API1): the vulnerable twin never compares the owner

    # -- endpoints --------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        if not self.vulnerable:
            client = request.client.host if request.client else "?"
            now = time.monotonic()
            recent = [t for t in self.login_attempts.get(client, []) if now - t < 60]
            recent.append(now)
            self.login_attempts[client] = recent
            if len(recent) > 10:
                raise ApiError(429, "too many login attempts", {"retry-after": "60"})
        data = await self.body(request)
        user = self.store.user_by_name(str(data.get("username", "")))
        password = str(data.get("password", ""))
        if user is None or not secrets.compare_digest(user.password.encode(), password.encode()):
            raise ApiError(401, "bad credentials")
        claims = {"sub": user.id, "name": user.username, "role": user.role}
        return JSONResponse(
            {"access_token": tokens.issue(self.secret, claims), "token_type": "Bearer"}
        )

    async def me(self, request: Request) -> Response:
        user = self.store.user_by_id(str(self.principal(request).get("sub")))
        if user is None:
            raise ApiError(404, "user not found")
        body: dict[str, Any] = {
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "role": user.role,
        }
        if self.vulnerable:  # PLANTED (API3): internal and secret fields
            body |= {
                "password_hash": user.password_hash,
                "api_key": user.api_key,
                "internal_notes": "VIP, credit checked",
            }
        return JSONResponse(body)

    async def search_users(self, request: Request) -> Response:
        self.principal(request)
        raw = request.query_params.get("filter", "")
        people = [{"id": u.id, "username": u.username} for u in USERS]
        if self.vulnerable:  # PLANTED (injection, NoSQL): operators evaluated
            try:
                query = json.loads(raw)
            except ValueError:
                query = {"username": raw}
            if not isinstance(query, dict):
                query = {"username": raw}
            found = [p for p in people if mongo_match(p, query)]
        else:
            if len(raw) > 100:
                raise ApiError(422, "filter must be at most 100 characters")
            found = [p for p in people if p["username"].startswith(raw)] if raw else []
        return JSONResponse({"items": found})

    async def list_orders(self, request: Request) -> Response:
        claims = self.principal(request)
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError as exc:
            raise ApiError(422, "limit must be an integer") from exc
        if not self.vulnerable and not 1 <= limit <= 50:
            raise ApiError(422, "limit must be between 1 and 50")  # vulnerable: API4
        mine = [o for o in self.store.orders.values() if o["owner"] == claims.get("sub")]
        return JSONResponse({"items": mine[:limit]})

    async def create_order(self, request: Request) -> Response:
        claims = self.principal(request)
        data = await self.body(request)
        if not self.vulnerable:
            item, quantity, note = data.get("item"), data.get("quantity", 1), data.get("note", "")
            if not isinstance(item, str) or not 1 <= len(item) <= 64:
                raise ApiError(422, "item must be 1-64 characters")
            if not isinstance(quantity, int) or not 1 <= quantity <= 100:
                raise ApiError(422, "quantity must be 1-100")
            if not isinstance(note, str) or len(note) > 200:
                raise ApiError(422, "note must be at most 200 characters")
        order = self.store.create_order(str(claims.get("sub")), data)
        if self.vulnerable and "status" in data:  # PLANTED (API3 mass assignment)
            order["status"] = str(data["status"])
        return JSONResponse(order, 201)

    async def get_order(self, request: Request) -> Response:
        return JSONResponse(self.order_for(request, self.principal(request)))

    async def update_order(self, request: Request) -> Response:
        order = self.order_for(request, self.principal(request))
        data = await self.body(request)
        if "note" in data:
            if not self.vulnerable and (
                not isinstance(data["note"], str) or len(data["note"]) > 200
            ):
                raise ApiError(422, "note must be at most 200 characters")
            order["note"] = str(data["note"])
        if "quantity" in data:
            if not self.vulnerable and (
                not isinstance(data["quantity"], int) or not 1 <= data["quantity"] <= 100
            ):
                raise ApiError(422, "quantity must be 1-100")
            order["quantity"] = int(data["quantity"])
        if self.vulnerable and "status" in data:
            order["status"] = str(data["status"])
        return JSONResponse(order)

    async def delete_order(self, request: Request) -> Response:
        order = self.order_for(request, self.principal(request))
        del self.store.orders[order["id"]]
        return Response(status_code=204)

    async def approve_order(self, request: Request) -> Response:
        claims = self.principal(request)
        if not self.vulnerable:
            self.require_admin(claims)  # vulnerable: PLANTED (API5)
        order = self.store.orders.get(int(request.path_params["order_id"]))
        if order is None:
            raise ApiError(404, "order not found")
        order["status"] = "approved"
        return JSONResponse(order)

    async def admin_users(self, request: Request) -> Response:
        claims = self.principal(request)
        if not self.vulnerable:
            self.require_admin(claims)  # vulnerable: PLANTED (API5)
        if request.method == "POST":  # only routed in the vulnerable twin (method swap)
            return JSONResponse({"id": "u-new", "role": "user"}, 201)
        return JSONResponse(
            {"items": [{"id": u.id, "username": u.username, "role": u.role} for u in USERS]}
        )

    async def products(self, request: Request) -> Response:
        search = request.query_params.get("search", "")
        if not self.vulnerable and len(search) > 64:
            raise ApiError(422, "search must be at most 64 characters")
        if self.vulnerable:  # PLANTED (injection, SQL): string concatenation
            sql = f"SELECT id, name, price FROM products WHERE name LIKE '%{search}%'"  # noqa: S608
            rows = self.store.db.execute(sql).fetchall()
        else:
            rows = self.store.db.execute(
                "SELECT id, name, price FROM products WHERE name LIKE ?", (f"%{search}%",)
            ).fetchall()
        return JSONResponse({"items": [{"id": r[0], "name": r[1], "price": r[2]} for r in rows]})

    async def product(self, request: Request) -> Response:
        row = self.store.db.execute(
            "SELECT id, name, price FROM products WHERE id = ?",
            (int(request.path_params["product_id"]),),
        ).fetchone()
        if row is None:
            raise ApiError(404, "product not found")
        return JSONResponse({"id": row[0], "name": row[1], "price": row[2]})

    async def reviews(self, request: Request) -> Response:
        rows = self.store.db.execute(
            "SELECT stars, text FROM reviews WHERE product_id = ?",
            (int(request.path_params["product_id"]),),
        ).fetchall()
        return JSONResponse({"items": [{"stars": r[0], "text": r[1]} for r in rows]})

    async def webhook_test(self, request: Request) -> Response:
        self.principal(request)
        url = str((await self.body(request)).get("url", ""))
        if not self.vulnerable:
            parts = urlsplit(url)
            if parts.scheme != "https" or parts.hostname != "hooks.example.com":
                raise ApiError(422, "url must be https://hooks.example.com/...")
            return JSONResponse({"queued": True}, 202)
        try:  # PLANTED (API7): fetches any URL, loopback included
            timeout = aiohttp.ClientTimeout(total=2)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
                return JSONResponse({"delivered": True, "status": resp.status}, 202)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return JSONResponse({"delivered": False, "error": type(exc).__name__}, 202)

    async def ping(self, request: Request) -> Response:
        self.principal(request)
        host = request.query_params.get("host", "")
        if self.vulnerable:  # PLANTED (injection, command): host goes to "sh -c"
            return JSONResponse({"output": await shell.run(f"ping -c 1 {host}")})
        if not _HOST.match(host):
            raise ApiError(422, "host must be a hostname")
        return JSONResponse({"output": f"PING {host}: 1 packets transmitted, 1 received\n"})

    async def stats(self, request: Request) -> Response:
        if not self.vulnerable:
            self.principal(request)  # vulnerable: PLANTED (API2) no authentication
        return JSONResponse({"orders": len(self.store.orders), "users": len(USERS)})

    async def v1_orders(self, request: Request) -> Response:  # PLANTED (API9)
        return JSONResponse({"items": list(self.store.orders.values())})

    async def debug(self, request: Request) -> Response:  # PLANTED (API9)
        return JSONResponse({"debug": True, "jwt_secret": self.secret.decode(), "db": "sqlite"})

    async def dotenv(self, request: Request) -> Response:  # PLANTED (API9)
        return PlainTextResponse(f"JWT_SECRET={self.secret.decode()}\nDEBUG=1\n")

    def routes(self) -> list[Route]:
        g, p = self.guard, "/api/v2"
        routes = [
            Route(f"{p}/login", g(self.login), methods=["POST"]),
            Route(f"{p}/users/me", g(self.me), methods=["GET"]),
            Route(f"{p}/users/search", g(self.search_users), methods=["GET"]),
            Route(f"{p}/orders", g(self.list_orders), methods=["GET"]),
            Route(f"{p}/orders", g(self.create_order), methods=["POST"]),
            Route(f"{p}/orders/{{order_id:int}}", g(self.get_order), methods=["GET"]),
            Route(f"{p}/orders/{{order_id:int}}", g(self.update_order), methods=["PATCH"]),
            Route(f"{p}/orders/{{order_id:int}}", g(self.delete_order), methods=["DELETE"]),
            Route(f"{p}/orders/{{order_id:int}}/approve", g(self.approve_order), methods=["POST"]),
            Route(
                f"{p}/admin/users",
                g(self.admin_users),
                methods=["GET", "POST"] if self.vulnerable else ["GET"],
            ),
            Route(f"{p}/products", g(self.products), methods=["GET"]),
            Route(f"{p}/products/{{product_id:int}}", g(self.product), methods=["GET"]),
            Route(f"{p}/webhooks/test", g(self.webhook_test), methods=["POST"]),
            Route(f"{p}/tools/ping", g(self.ping), methods=["GET"]),
            Route(f"{p}/stats", g(self.stats), methods=["GET"]),
        ]
        if self.vulnerable:
            routes += [
                Route("/api/v1/orders", g(self.v1_orders), methods=["GET"]),
                Route("/debug", g(self.debug), methods=["GET"]),
                Route("/.env", g(self.dotenv), methods=["GET"]),
            ]
        else:  # the vulnerable twin never implemented the documented reviews route (API9)
            routes.append(
                Route(f"{p}/products/{{product_id:int}}/reviews", g(self.reviews), methods=["GET"])
            )
        return routes


class _Edge:
    """Outermost ASGI layer: request log, CORS, TRACE, security headers, rate-limit headers."""

    def __init__(self, app: ASGIApp, api: VulnApi) -> None:
        self.app, self.api = app, api
        self.window: dict[str, tuple[float, int]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = self.api
        api.request_log.append((scope["method"], scope["path"]))
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if api.vulnerable and scope["method"] == "TRACE":  # PLANTED (API8)
            lines = [f"TRACE {scope['path']} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
            await PlainTextResponse("\r\n".join(lines), media_type="message/http")(
                scope, receive, send
            )
            return
        extra: dict[str, str] = {}
        if origin and (api.vulnerable or origin == "https://app.example.com"):
            extra["access-control-allow-origin"] = origin  # PLANTED (API8) when vulnerable
            extra["access-control-allow-credentials"] = "true"
            extra["vary"] = "Origin"
        if not api.vulnerable:
            extra |= SECURITY_HEADERS
            client = scope["client"][0] if scope.get("client") else "?"
            start, count = self.window.get(client, (time.monotonic(), 0))
            if time.monotonic() - start > 60:
                start, count = time.monotonic(), 0
            self.window[client] = (start, count + 1)
            extra["ratelimit-policy"] = '"default";q=5000;w=60'
            extra["ratelimit"] = (
                f'"default";r={max(0, 5000 - count - 1)};t={int(60 - (time.monotonic() - start))}'
            )
        if scope["method"] == "OPTIONS" and origin:
            await Response(status_code=204, headers=extra)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                raw += [(k.encode(), v.encode()) for k, v in extra.items()]
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(vulnerable: bool) -> Starlette:
    api = VulnApi(vulnerable)
    app = Starlette(routes=api.routes())
    app.state.api = api
    app.add_middleware(_Edge, api=api)
    return app


def vulnerable_app() -> Starlette:
    return create_app(True)


def fixed_app() -> Starlette:
    return create_app(False)
