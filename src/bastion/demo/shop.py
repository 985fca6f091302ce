"""The bundled demo shop: a small, realistic and DELIBERATELY NAIVE upstream API.

``bastion demo`` runs this app on loopback behind the gateway so that the gateway's
protections are visible. The app itself enforces nothing, on purpose:

* identity is whatever the gateway forwards in ``X-Bastion-Subject`` / ``X-Bastion-Roles``
  (absent means anonymous), and no endpoint checks it;
* user documents leak ``password_hash`` and ``internal_notes``; orders leak ``fraud_score``;
* ``PATCH /v2/users/{id}`` and ``POST /v2/users`` mass-assign ``role`` (and anything else);
* ``GET /v2/orders`` lists every customer's orders; the client chooses the unit price;
* ``/v1`` is the deprecated older shape of the same data (OWASP API9, improper inventory).

It is naive, not broken: bad input gets a JSON 400 and no input produces a 500. The public
contract (what the gateway lets through) is :data:`SHOP_OPENAPI_PATH`.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.jsonutil import JSONError, loads_strict

__all__ = ["DEMO_USERS", "SHOP_OPENAPI_PATH", "DemoUser", "create_shop_app"]

SHOP_OPENAPI_PATH: Path = Path(__file__).with_name("shop_openapi.yaml")
MAX_BODY_BYTES = 64 * 1024
_MAX_AMOUNT = 1_000_000_000
ORDER_STATUSES = ("pending", "paid", "shipped", "cancelled")
CATALOG: Mapping[str, float] = MappingProxyType(
    {"BOOK-001": 24.9, "MUG-002": 12.5, "TSHIRT-003": 19.99, "STICKER-004": 2.0}
)


@dataclass(frozen=True, slots=True)
class DemoUser:
    """A seeded demo account; ``password`` is public on purpose (it is a demo)."""

    user_id: str
    username: str
    roles: tuple[str, ...]
    password: str
    email: str
    display_name: str


DEMO_USERS: Mapping[str, DemoUser] = MappingProxyType(
    {
        "alice": DemoUser(
            "u-alice", "alice", ("customer",), "alice-demo-password-2026",
            "alice@shop.example", "Alice Liddell",
        ),
        "bob": DemoUser(
            "u-bob", "bob", ("customer",), "bob-demo-password-2026",
            "bob@shop.example", "Bob Builder",
        ),
        "admin": DemoUser(
            "u-admin", "admin", ("admin",), "admin-demo-password-2026",
            "admin@shop.example", "Shop Admin",
        ),
    }
)  # fmt: skip

_SEED_NOTES = {
    "u-alice": "VIP customer; called support twice about late delivery",
    "u-bob": "chargeback in 2025, watch refunds",
    "u-admin": "break-glass account, shared with on-call",
}
_SEED_ORDERS: tuple[tuple[str, str, list[tuple[str, int]], str, str, float], ...] = (
    ("o-1001", "u-alice", [("BOOK-001", 1), ("MUG-002", 2)], "paid", "2026-01-12T09:30:00Z", 0.02),
    ("o-1002", "u-alice", [("TSHIRT-003", 1)], "shipped", "2026-02-03T14:05:00Z", 0.07),
    ("o-2001", "u-bob", [("STICKER-004", 10)], "pending", "2026-02-20T18:45:00Z", 0.91),
    ("o-2002", "u-bob", [("BOOK-001", 3)], "cancelled", "2026-03-01T08:00:00Z", 0.64),
    ("o-3001", "u-admin", [("MUG-002", 1)], "paid", "2026-03-05T11:11:00Z", 0.01),
)
_USER_STRING_FIELDS = ("username", "email", "display_name", "role", "internal_notes")


class _BadRequest(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _json(body: Any, status: int = 200) -> Response:
    # The standard library serializer: it copes with whatever a naive PATCH stored.
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(text.encode("utf-8"), status, media_type="application/json")


def _error(status: int, error: str, message: str) -> Response:
    return _json({"error": error, "message": message}, status)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_text(value: Any) -> None:
    """Reject strings that cannot be stored as UTF-8 (lone surrogates from ``\\ud800``)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _BadRequest(400, "invalid_body", "strings must be valid Unicode") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


async def _read_object(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise _BadRequest(400, "body_too_large", "request body is too large")
    try:
        body = loads_strict(raw)
    except JSONError as exc:
        raise _BadRequest(400, "invalid_json", str(exc)) from exc
    if not isinstance(body, dict):
        raise _BadRequest(400, "invalid_body", "the body must be a JSON object")
    _check_text(body)
    return body


def _required(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _BadRequest(400, "invalid_field", f"{name} must be a non-empty string")
    return value


def _optional(body: Mapping[str, Any], name: str) -> str | None:
    return _required(body, name) if name in body else None


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > _MAX_AMOUNT:
        raise _BadRequest(400, "invalid_field", f"{name} must be a number")
    return float(value)


def _items(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _BadRequest(400, "invalid_field", "items must be a non-empty list")
    items = []
    for item in value:
        if not isinstance(item, dict):
            raise _BadRequest(400, "invalid_field", "each item must be an object")
        sku = _required(item, "sku")
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise _BadRequest(400, "invalid_field", "quantity must be an integer")
        _number(quantity, "quantity")
        # Naive on purpose: the client may name its own price.
        price = item.get("unit_price", CATALOG.get(str(sku), 9.99))
        items.append({"sku": sku, "quantity": quantity, "unit_price": _number(price, "unit_price")})
    return items


def _total(items: list[dict[str, Any]]) -> float:
    total = round(sum(i["quantity"] * i["unit_price"] for i in items), 2)
    return total if math.isfinite(total) else 0.0


class _Shop:
    """In-memory state and the endpoints; one instance per app, so per process."""

    def __init__(self, clock: Callable[[], datetime], seed: bool) -> None:
        self.clock = clock
        self.hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
        self.users: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.user_ids = itertools.count(1001)
        self.order_ids = itertools.count(5001)
        self.dummy_hash = self.hasher.hash("no-such-user-dummy-password")
        if seed:
            self._seed()

    def _seed(self) -> None:
        for demo in DEMO_USERS.values():
            self.users[demo.user_id] = {
                "id": demo.user_id, "username": demo.username, "email": demo.email,
                "display_name": demo.display_name, "role": demo.roles[0],
                "created_at": "2025-11-01T10:00:00Z",
                "password_hash": self.hasher.hash(demo.password),
                "internal_notes": _SEED_NOTES[demo.user_id],
            }  # fmt: skip
        for order_id, owner, lines, status, created, fraud in _SEED_ORDERS:
            items = [{"sku": s, "quantity": q, "unit_price": CATALOG[s]} for s, q in lines]
            self.orders[order_id] = {
                "id": order_id, "customer_id": owner, "items": items, "total": _total(items),
                "status": status, "created_at": created, "fraud_score": fraud,
            }  # fmt: skip

    def _user(self, request: Request) -> dict[str, Any]:
        user = self.users.get(request.path_params["user_id"])
        if user is None:
            raise _BadRequest(404, "not_found", "no such user")
        return user

    def _order(self, request: Request) -> dict[str, Any]:
        order = self.orders.get(request.path_params["order_id"])
        if order is None:
            raise _BadRequest(404, "not_found", "no such order")
        return order

    def _username_taken(self, username: str, except_id: str | None = None) -> bool:
        wanted = username.casefold()
        return any(
            str(u.get("username", "")).casefold() == wanted and uid != except_id
            for uid, u in self.users.items()
        )

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (Argon2Error, ValueError):
            return False

    async def health(self, request: Request) -> Response:
        return _json({"status": "ok"})

    async def get_user(self, request: Request) -> Response:
        return _json(self._user(request))

    async def register(self, request: Request) -> Response:
        body = await _read_object(request)
        username, email = _required(body, "username"), _required(body, "email")
        password = _required(body, "password")
        display_name = _optional(body, "display_name")
        role = _optional(body, "role") or "customer"  # naive: mass assignment
        if self._username_taken(username):
            raise _BadRequest(409, "conflict", "username is taken")
        user_id = f"u-{next(self.user_ids)}"
        self.users[user_id] = {
            "id": user_id, "username": username, "email": email,
            "display_name": display_name or username, "role": role,
            "created_at": _timestamp(self.clock()),
            "password_hash": await run_in_threadpool(self.hasher.hash, password),
            "internal_notes": "",
        }  # fmt: skip
        return _json(self.users[user_id], 201)

    async def patch_user(self, request: Request) -> Response:
        user = self._user(request)
        body = await _read_object(request)
        for name in _USER_STRING_FIELDS:
            if name in body and not isinstance(body[name], str):
                raise _BadRequest(400, "invalid_field", f"{name} must be a string")
        if "username" in body and self._username_taken(body["username"], user["id"]):
            raise _BadRequest(409, "conflict", "username is taken")
        if "password" in body:
            password = _required(body, "password")
            body["password_hash"] = await run_in_threadpool(self.hasher.hash, password)
            del body["password"]
        body.pop("id", None)
        user.update(body)  # naive on purpose: any field, including role, is stored
        return _json(user)

    async def login(self, request: Request) -> Response:
        body = await _read_object(request)
        username, password = _required(body, "username"), _required(body, "password")
        user = next((u for u in self.users.values() if u.get("username") == username), None)
        stored = str(user.get("password_hash", "")) if user else self.dummy_hash
        ok = await run_in_threadpool(self._verify, stored, password)
        if not ok or user is None:
            return _json({"ok": False, "error": "invalid_credentials"}, 401)
        return _json({"ok": True})

    async def list_orders(self, request: Request) -> Response:
        return _json(list(self.orders.values()))  # naive: everybody's orders

    async def create_order(self, request: Request) -> Response:
        body = await _read_object(request)
        items = _items(body.get("items"))
        order_id = f"o-{next(self.order_ids)}"
        self.orders[order_id] = {
            "id": order_id,
            "customer_id": request.headers.get("x-bastion-subject") or "u-anonymous",
            "items": items, "total": _total(items), "status": "pending",
            "created_at": _timestamp(self.clock()), "fraud_score": 0.5,
        }  # fmt: skip
        return _json(self.orders[order_id], 201)

    async def get_order(self, request: Request) -> Response:
        return _json(self._order(request))

    async def patch_order(self, request: Request) -> Response:
        order = self._order(request)
        body = await _read_object(request)
        if "items" in body:
            body["items"] = _items(body["items"])
            body["total"] = _total(body["items"])
        for name in ("status", "customer_id"):
            if name in body:
                _required(body, name)
        if "total" in body:
            body["total"] = _number(body["total"], "total")
        body.pop("id", None)
        order.update(body)  # naive on purpose: status, customer_id, fraud_score...
        return _json(order)

    async def delete_order(self, request: Request) -> Response:
        self.orders.pop(self._order(request)["id"])
        return Response(status_code=204)

    async def sales_report(self, request: Request) -> Response:
        by_status: dict[str, dict[str, Any]] = {
            s: {"count": 0, "total": 0.0} for s in ORDER_STATUSES
        }
        by_customer: dict[str, dict[str, Any]] = {}
        for order in self.orders.values():
            status = by_status.setdefault(str(order["status"]), {"count": 0, "total": 0.0})
            customer = by_customer.setdefault(
                str(order["customer_id"]),
                {"customer_id": str(order["customer_id"]), "order_count": 0, "total": 0.0},
            )
            status["count"] += 1
            customer["order_count"] += 1
            status["total"] = round(status["total"] + order["total"], 2)
            customer["total"] = round(customer["total"] + order["total"], 2)
        revenue = sum(v["total"] for k, v in by_status.items() if k != "cancelled")
        return _json({
            "currency": "EUR", "order_count": len(self.orders), "revenue": round(revenue, 2),
            "by_status": by_status, "by_customer": list(by_customer.values()),
            "generated_at": _timestamp(self.clock()),
        })  # fmt: skip

    async def get_user_v1(self, request: Request) -> Response:
        user = self._user(request)
        return _json({
            "id": user["id"], "username": user.get("username"), "name": user.get("display_name"),
            "email": user.get("email"), "role": user.get("role"),
            "created_at": user.get("created_at"), "password_hash": user.get("password_hash"),
        })  # fmt: skip

    async def get_order_v1(self, request: Request) -> Response:
        order = self._order(request)
        return _json({
            "id": order["id"], "customer_id": order["customer_id"], "items": order["items"],
            "amount": order["total"], "state": order["status"],
            "created_at": order["created_at"], "fraud_score": order.get("fraud_score"),
        })  # fmt: skip


async def _on_bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _BadRequest)
    return _error(exc.status, exc.error, exc.message)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    response = _error(exc.status_code, code, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


async def _on_crash(request: Request, exc: Exception) -> Response:
    return _error(500, "internal_error", "internal error")


def create_shop_app(*, seed: bool = True, clock: Callable[[], datetime] = _utc_now) -> Starlette:
    """Build the naive demo shop; ``seed`` loads alice, bob, admin and their orders."""
    shop = _Shop(clock, seed)
    routes = [
        Route("/health", shop.health, methods=["GET"]),
        Route("/v2/login", shop.login, methods=["POST"]),
        Route("/v2/users", shop.register, methods=["POST"]),
        Route("/v2/users/{user_id}", shop.get_user, methods=["GET"]),
        Route("/v2/users/{user_id}", shop.patch_user, methods=["PATCH"]),
        Route("/v2/orders", shop.list_orders, methods=["GET"]),
        Route("/v2/orders", shop.create_order, methods=["POST"]),
        Route("/v2/orders/{order_id}", shop.get_order, methods=["GET"]),
        Route("/v2/orders/{order_id}", shop.patch_order, methods=["PATCH"]),
        Route("/v2/orders/{order_id}", shop.delete_order, methods=["DELETE"]),
        Route("/v2/admin/reports", shop.sales_report, methods=["GET"]),
        Route("/v1/users/{user_id}", shop.get_user_v1, methods=["GET"]),
        Route("/v1/orders/{order_id}", shop.get_order_v1, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            _BadRequest: _on_bad_request,
            HTTPException: _on_http_error,
            Exception: _on_crash,
        },
    )
    app.state.shop = shop
    return app
