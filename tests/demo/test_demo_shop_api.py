"""The naive demo shop over a real socket: every endpoint, the seed data, the naive parts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bastion.demo import DEMO_USERS, SHOP_OPENAPI_PATH, DemoUser, create_shop_app
from bastion.demo import shop as shop_module
from tests.demo.conftest import ShopClient, _serve

ALICE = ("u-alice", "customer")
BOB = ("u-bob", "customer")
ADMIN = ("u-admin", "admin")


def test_public_api_is_exported() -> None:
    assert shop_module.__all__ == ["DEMO_USERS", "SHOP_OPENAPI_PATH", "DemoUser", "create_shop_app"]
    assert SHOP_OPENAPI_PATH.is_file()
    assert set(DEMO_USERS) == {"alice", "bob", "admin"}
    assert DEMO_USERS["alice"] == DemoUser(
        "u-alice", "alice", ("customer",), "alice-demo-password-2026",
        "alice@shop.example", "Alice Liddell",
    )  # fmt: skip
    assert DEMO_USERS["bob"].user_id == "u-bob"
    assert DEMO_USERS["admin"].roles == ("admin",)


def test_health(shop: ShopClient) -> None:
    reply = shop.request("GET", "/health")
    assert (reply.status, reply.json()) == (200, {"status": "ok"})
    assert reply.headers["content-type"] == "application/json"


def test_seeded_user_leaks_password_hash_and_notes(shop: ShopClient) -> None:
    reply = shop.request("GET", "/v2/users/u-alice", as_user=ALICE)
    assert reply.status == 200
    user = reply.json()
    assert user["id"] == "u-alice"
    assert user["username"] == "alice"
    assert user["email"] == "alice@shop.example"
    assert user["display_name"] == "Alice Liddell"
    assert user["role"] == "customer"
    assert user["created_at"] == "2025-11-01T10:00:00Z"
    assert user["password_hash"].startswith("$argon2id$")  # naive: the hash leaks upstream
    assert "late delivery" in user["internal_notes"]
    assert "password" not in user


def test_upstream_enforces_nothing_anonymous_reads_anyone(shop: ShopClient) -> None:
    assert shop.request("GET", "/v2/users/u-bob").status == 200
    assert shop.request("GET", "/v2/users/u-admin", as_user=ALICE).status == 200
    assert shop.request("GET", "/v2/admin/reports").status == 200


def test_unknown_user_and_order_are_json_404(shop: ShopClient) -> None:
    for path in ("/v2/users/u-nobody", "/v2/orders/o-9999", "/v1/users/x", "/v1/orders/o-0"):
        reply = shop.request("GET", path)
        assert reply.status == 404
        assert reply.json()["error"] == "not_found"


def test_unknown_path_and_wrong_method_are_json(shop: ShopClient) -> None:
    reply = shop.request("GET", "/v3/anything")
    assert (reply.status, reply.json()["error"]) == (404, "not_found")
    reply = shop.request("PUT", "/v2/orders")
    assert (reply.status, reply.json()["error"]) == (405, "method_not_allowed")
    assert "GET" in reply.headers["allow"]


def test_patch_user_mass_assigns_role_and_anything(shop: ShopClient) -> None:
    reply = shop.request(
        "PATCH", "/v2/users/u-bob", {"role": "admin", "display_name": "B", "is_vip": True},
        as_user=BOB,
    )  # fmt: skip
    assert reply.status == 200
    assert reply.json()["role"] == "admin"
    again = shop.request("GET", "/v2/users/u-bob").json()
    assert (again["role"], again["display_name"], again["is_vip"]) == ("admin", "B", True)
    assert again["id"] == "u-bob"


def test_patch_password_changes_login(shop: ShopClient) -> None:
    new = "a-brand-new-password-for-alice"
    assert shop.request("PATCH", "/v2/users/u-alice", {"password": new}).status == 200
    user = shop.request("GET", "/v2/users/u-alice").json()
    assert "password" not in user
    login = {"username": "alice", "password": new}
    assert shop.request("POST", "/v2/login", login).json() == {"ok": True}
    old = {"username": "alice", "password": DEMO_USERS["alice"].password}
    assert shop.request("POST", "/v2/login", old).status == 401


def test_patch_user_rejects_non_string_known_fields(shop: ShopClient) -> None:
    for body in ({"email": 5}, {"role": ["admin"]}, {"password": ""}, {"username": None}):
        reply = shop.request("PATCH", "/v2/users/u-alice", body)
        assert reply.status == 400, body
        assert reply.json()["error"] == "invalid_field"
    assert shop.request("PATCH", "/v2/users/u-alice", {"username": "BOB"}).status == 409
    assert shop.request("PATCH", "/v2/users/u-nobody", {"email": "x@y.z"}).status == 404


def test_register_user_and_mass_assigned_role(shop: ShopClient) -> None:
    body = {"username": "carol", "email": "carol@shop.example", "password": "carol-pass-12345"}
    reply = shop.request("POST", "/v2/users", {**body, "display_name": "Carol"})
    assert reply.status == 201
    carol = reply.json()
    assert carol["id"].startswith("u-")
    assert (carol["username"], carol["role"], carol["display_name"]) == (
        "carol",
        "customer",
        "Carol",
    )
    assert carol["password_hash"].startswith("$argon2id$")
    assert shop.request("GET", f"/v2/users/{carol['id']}").json()["username"] == "carol"
    assert shop.request("POST", "/v2/login", {"username": "carol", "password": body["password"]})
    evil = {"username": "mallory", "email": "m@shop.example", "password": "x" * 12, "role": "admin"}
    assert shop.request("POST", "/v2/users", evil).json()["role"] == "admin"  # naive
    assert shop.request("POST", "/v2/users", {**body, "username": "Carol"}).status == 409


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "dave", "email": "d@x.y"},
        {"username": 1, "email": "d@x.y", "password": "p" * 12},
        {"username": "dave", "email": "d@x.y", "password": "p" * 12, "display_name": None},
        {"username": "dave", "email": "d@x.y", "password": "p" * 12, "role": 7},
    ],
)
def test_register_bad_input_is_400(shop: ShopClient, body: dict[str, object]) -> None:
    reply = shop.request("POST", "/v2/users", body)
    assert reply.status == 400
    assert set(reply.json()) == {"error", "message"}


@pytest.mark.parametrize("name", ["alice", "bob", "admin"])
def test_login_demo_passwords(shop: ShopClient, name: str) -> None:
    good = {"username": name, "password": DEMO_USERS[name].password}
    reply = shop.request("POST", "/v2/login", good)
    assert (reply.status, reply.json()) == (200, {"ok": True})
    reply = shop.request("POST", "/v2/login", {**good, "password": "wrong-password"})
    assert (reply.status, reply.json()["ok"]) == (401, False)


def test_login_unknown_user_and_bad_bodies(shop: ShopClient) -> None:
    reply = shop.request("POST", "/v2/login", {"username": "nobody", "password": "whatever"})
    assert reply.status == 401
    assert shop.request("POST", "/v2/login", {"username": "alice"}).status == 400
    assert shop.request("POST", "/v2/login", raw=b"{not json").status == 400
    assert shop.request("POST", "/v2/login", raw=b"[1, 2]").status == 400


def test_list_orders_returns_everybodys_orders(shop: ShopClient) -> None:
    reply = shop.request("GET", "/v2/orders", as_user=ALICE)
    assert reply.status == 200
    orders = {o["id"]: o for o in reply.json()}
    assert {"o-1001", "o-1002", "o-2001", "o-2002", "o-3001"} <= set(orders)
    assert {o["customer_id"] for o in orders.values()} == {"u-alice", "u-bob", "u-admin"}
    first = orders["o-1001"]
    assert first["customer_id"] == "u-alice"
    assert first["items"] == [
        {"sku": "BOOK-001", "quantity": 1, "unit_price": 24.9},
        {"sku": "MUG-002", "quantity": 2, "unit_price": 12.5},
    ]
    assert first["total"] == 49.9
    assert first["status"] == "paid"
    assert "fraud_score" in first  # internal, not in the spec
    assert orders["o-2001"]["customer_id"] == "u-bob"


def test_create_order_for_the_caller_with_client_chosen_price(shop: ShopClient) -> None:
    items = [
        {"sku": "BOOK-001", "quantity": 2, "unit_price": 0.01},
        {"sku": "MUG-002", "quantity": 1},
    ]
    reply = shop.request("POST", "/v2/orders", {"items": items}, as_user=BOB)
    assert reply.status == 201
    order = reply.json()
    assert order["customer_id"] == "u-bob"
    assert order["status"] == "pending"
    assert order["total"] == 12.52  # the client named its own price: naive on purpose
    assert shop.request("GET", f"/v2/orders/{order['id']}").json() == order
    anonymous = shop.request("POST", "/v2/orders", {"items": items}).json()
    assert anonymous["customer_id"] == "u-anonymous"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"items": []},
        {"items": "BOOK-001"},
        {"items": [{"sku": "BOOK-001"}]},
        {"items": [{"sku": "BOOK-001", "quantity": True}]},
        {"items": [{"sku": "BOOK-001", "quantity": 10**400}]},
        {"items": [{"sku": "BOOK-001", "quantity": 1, "unit_price": "free"}]},
        {"items": [{"sku": "BOOK-001", "quantity": 1, "unit_price": 1e300}]},
        {"items": [{"sku": 5, "quantity": 1}]},
    ],
)
def test_create_order_bad_input_is_400(shop: ShopClient, body: dict[str, object]) -> None:
    assert shop.request("POST", "/v2/orders", body, as_user=ALICE).status == 400


def test_patch_and_delete_order(shop: ShopClient) -> None:
    reply = shop.request("PATCH", "/v2/orders/o-2001", {"status": "cancelled"}, as_user=ALICE)
    assert (reply.status, reply.json()["status"]) == (200, "cancelled")  # nobody checked owner
    items = [{"sku": "STICKER-004", "quantity": 3, "unit_price": 2}]
    reply = shop.request("PATCH", "/v2/orders/o-2001", {"items": items, "customer_id": "u-alice"})
    assert reply.json()["total"] == 6.0
    assert reply.json()["customer_id"] == "u-alice"  # naive mass assignment
    assert shop.request("PATCH", "/v2/orders/o-2001", {"status": 3}).status == 400
    assert shop.request("PATCH", "/v2/orders/o-2001", {"total": "x"}).status == 400
    assert shop.request("PATCH", "/v2/orders/o-9", {"status": "paid"}).status == 404
    assert shop.request("DELETE", "/v2/orders/o-2001").status == 204
    assert shop.request("GET", "/v2/orders/o-2001").status == 404
    assert shop.request("DELETE", "/v2/orders/o-2001").status == 404


def test_admin_report_totals(shop: ShopClient) -> None:
    report = shop.request("GET", "/v2/admin/reports", as_user=ADMIN).json()
    assert report["currency"] == "EUR"
    assert report["order_count"] == 5
    assert report["by_status"]["cancelled"] == {"count": 1, "total": 74.7}
    assert report["by_status"]["paid"] == {"count": 2, "total": 62.4}
    assert report["revenue"] == 102.39  # paid + shipped + pending, cancelled excluded
    by_customer = {c["customer_id"]: c for c in report["by_customer"]}
    assert by_customer["u-alice"] == {"customer_id": "u-alice", "order_count": 2, "total": 69.89}


def test_v1_has_the_older_shape(shop: ShopClient) -> None:
    user = shop.request("GET", "/v1/users/u-alice").json()
    assert user["name"] == "Alice Liddell"
    assert "display_name" not in user
    assert user["password_hash"].startswith("$argon2id$")
    order = shop.request("GET", "/v1/orders/o-1001").json()
    assert (order["amount"], order["state"], order["customer_id"]) == (49.9, "paid", "u-alice")
    assert "total" not in order


def test_unseeded_app_is_empty_and_clock_is_injectable() -> None:
    moment = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    for client in _serve(create_shop_app(seed=False, clock=lambda: moment)):
        assert client.request("GET", "/v2/orders").json() == []
        assert client.request("GET", "/v2/users/u-alice").status == 404
        body = {"items": [{"sku": "MUG-002", "quantity": 1}]}
        order = client.request("POST", "/v2/orders", body, as_user=ALICE).json()
        assert order["created_at"] == "2026-05-01T12:00:00Z"


def test_state_is_per_app_instance(shop: ShopClient) -> None:
    shop.request("DELETE", "/v2/orders/o-1001")
    for other in _serve(create_shop_app()):
        assert other.request("GET", "/v2/orders/o-1001").status == 200


@pytest.mark.parametrize(
    "raw",
    [
        b'{"username": "a", "username": "b", "password": "x"}',
        b'{"password": NaN, "username": "a"}',
        b'{"username": "\\ud800", "password": "x"}',
        b"\xff\xfe",
        b"[" * 5000,
        b"",
        b"x" * (70 * 1024),
    ],
)
def test_hostile_bodies_are_400_not_500(shop: ShopClient, raw: bytes) -> None:
    for method, path in (
        ("POST", "/v2/login"),
        ("PATCH", "/v2/users/u-bob"),
        ("POST", "/v2/orders"),
    ):
        reply = shop.request(method, path, raw=raw)
        assert reply.status == 400, (method, path, reply.raw)
        assert reply.json()["error"] in {"invalid_json", "invalid_body", "body_too_large"}
