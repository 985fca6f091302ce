"""Mutated invalid requests are refused by the gateway's contract and never reach the shop.

Every case is a valid request with one mutation: a required field removed, an undeclared
property added, a readOnly property sent, a wrong type, an overlong string, a wrong content
type. Each must be a 400/415 ``application/problem+json`` whose ``errors`` hold the JSON
pointers of the failing fields, and must not be forwarded. The shop is naive: it would
store most of these. Non-forwarding is proven twice: the audit event of the request has no
upstream time, and a side effect the shop would have made is absent when re-read.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.contract_e2e.e2e_support import Answer, Client, audit_event
from tests.support.procs import GatewayProc

_n = itertools.count()
PASSWORD = "a long enough password 2026"
ITEM = {"sku": "BOOK-001", "quantity": 2, "unit_price": 1.0}
JSON = "application/json"


@dataclass(frozen=True)
class Mutation:
    name: str
    body: Any
    pointers: tuple[str, ...] = ()
    status: int = 400
    content_type: str = JSON

    def raw(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


def send_refused(
    client: Client, gw: GatewayProc, method: str, path: str, case: Mutation
) -> list[str]:
    """Send one mutation; the problems found (empty when it was refused as it must be)."""
    answer = client.request(method, path, body=case.raw(), content_type=case.content_type)
    event = audit_event(gw, answer)
    return check_refusal(f"{method} {path} [{case.name}]", answer, event, case)


def check_refusal(label: str, answer: Answer, event: dict[str, Any], case: Mutation) -> list[str]:
    problems = []
    expected_code = "validation_failed" if case.status == 400 else "unsupported_media_type"
    if answer.status != case.status or answer.problem_code != expected_code:
        problems.append(f"{label}: expected {case.status} {expected_code}, got {answer.describe()}")
    elif case.pointers:
        got = {e["pointer"] for e in answer.json.get("errors", ())}
        if not set(case.pointers) <= got:
            problems.append(f"{label}: pointers {sorted(got)} lack {case.pointers}")
    if event.get("upstream_ms") is not None or event.get("status") != case.status:
        problems.append(f"{label}: audit shows it was forwarded or mis-logged: {event}")
    return problems


def assert_all(problems: list[str]) -> None:
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def victim(admin: Client) -> str:
    """A fresh customer whose profile the refused PATCHes would have changed."""
    n = next(_n)
    answer = admin.request(
        "POST",
        "/v2/users",
        json_body={
            "username": f"e2e-victim-{n}",
            "email": f"victim{n}@example.com",
            "password": PASSWORD,
            "display_name": "Original Name",
        },
    )
    assert answer.status == 201, answer.describe()
    return str(answer.json["id"])


USER_PATCHES = [
    Mutation("empty object (minProperties)", {}),
    Mutation(
        "undeclared property", {"display_name": "CHANGED", "is_admin": True}, ("/body/is_admin",)
    ),
    Mutation("readOnly role", {"display_name": "CHANGED", "role": "admin"}, ("/body/role",)),
    Mutation("readOnly id", {"display_name": "CHANGED", "id": "u-bob"}, ("/body/id",)),
    Mutation(
        "readOnly created_at",
        {"display_name": "CHANGED", "created_at": "2020-01-01T00:00:00Z"},
        ("/body/created_at",),
    ),
    Mutation("wrong type", {"display_name": 42}, ("/body/display_name",)),
    Mutation("wrong type (array)", {"display_name": ["CHANGED"]}, ("/body/display_name",)),
    Mutation("overlong string", {"display_name": "C" * 101}, ("/body/display_name",)),
    Mutation("too short password", {"password": "short"}, ("/body/password",)),
    Mutation("not an email", {"email": "CHANGED"}, ("/body/email",)),
    Mutation("top-level array", [{"display_name": "CHANGED"}], ("/body",)),
    Mutation("text/plain", {"display_name": "CHANGED"}, status=415, content_type="text/plain"),
    Mutation(
        "form encoded",
        b"display_name=CHANGED",
        status=415,
        content_type="application/x-www-form-urlencoded",
    ),
    Mutation(
        "JSON in latin-1",
        {"display_name": "CHANGED"},
        status=415,
        content_type="application/json; charset=iso-8859-1",
    ),
    Mutation("duplicate keys", b'{"display_name": "ok", "display_name": "CHANGED"}'),
    Mutation("invalid JSON", b'{"display_name": "CHANGED"'),
]


def test_refused_profile_patches_change_nothing(
    admin: Client, shop_gateway: GatewayProc, victim: str
) -> None:
    problems: list[str] = []
    for case in USER_PATCHES:
        problems += send_refused(admin, shop_gateway, "PATCH", f"/v2/users/{victim}", case)
    after = admin.request("GET", f"/v2/users/{victim}").json
    assert after["display_name"] == "Original Name", after
    assert after["role"] == "customer"
    assert after["email"].startswith("victim")
    assert_all(problems)
    # The same request, valid, does change the profile: the shop would have applied them.
    changed = admin.request("PATCH", f"/v2/users/{victim}", json_body={"display_name": "CHANGED"})
    assert changed.status == 200
    assert changed.json["display_name"] == "CHANGED"


ORDER_PATCHES = [
    Mutation("empty object (minProperties)", {}),
    Mutation("status the customer may not set", {"status": "paid"}, ("/body/status",)),
    Mutation(
        "undeclared property", {"status": "cancelled", "fraud_score": 0}, ("/body/fraud_score",)
    ),
    Mutation("readOnly total", {"status": "cancelled", "total": 0}, ("/body/total",)),
    Mutation(
        "readOnly customer_id",
        {"status": "cancelled", "customer_id": "u-bob"},
        ("/body/customer_id",),
    ),
    Mutation("readOnly id", {"status": "cancelled", "id": "o-1"}, ("/body/id",)),
    Mutation(
        "readOnly created_at",
        {"status": "cancelled", "created_at": "2020-01-01T00:00:00Z"},
        ("/body/created_at",),
    ),
    Mutation("wrong type", {"status": True}, ("/body/status",)),
    Mutation(
        "wrong item type",
        {"status": "cancelled", "items": [{**ITEM, "quantity": "2"}]},
        ("/body/items/0/quantity",),
    ),
    Mutation(
        "missing required item field",
        {"status": "cancelled", "items": [{"sku": "BOOK-001", "unit_price": 1}]},
        ("/body/items/0/quantity",),
    ),
    Mutation("empty items", {"status": "cancelled", "items": []}, ("/body/items",)),
    Mutation(
        "overlong sku",
        {"status": "cancelled", "items": [{**ITEM, "sku": "B" * 33}]},
        ("/body/items/0/sku",),
    ),
    Mutation(
        "negative price", {"items": [{**ITEM, "unit_price": -1}]}, ("/body/items/0/unit_price",)
    ),
    Mutation("text/plain", {"status": "cancelled"}, status=415, content_type="text/plain"),
    Mutation("xml", b"<status>cancelled</status>", status=415, content_type="application/xml"),
]


def test_refused_order_patches_change_nothing(
    alice: Client, admin: Client, shop_gateway: GatewayProc
) -> None:
    created = alice.request("POST", "/v2/orders", json_body={"items": [ITEM]})
    assert created.status == 201, created.describe()
    order = created.json
    problems: list[str] = []
    for client in (alice, admin):  # the owner (after the prefetch) and the exempt admin
        for case in ORDER_PATCHES:
            problems += send_refused(
                client, shop_gateway, "PATCH", f"/v2/orders/{order['id']}", case
            )
    after = admin.request("GET", f"/v2/orders/{order['id']}").json
    assert after == order
    assert_all(problems)


def _registration(**changes: Any) -> dict[str, Any]:
    n = next(_n)
    body = {
        "username": f"e2e-reg-{n}",
        "email": f"reg{n}@example.com",
        "password": PASSWORD,
        "display_name": "New User",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


REGISTRATIONS = [
    Mutation("missing email", _registration(email=None), ("/body/email",)),
    Mutation("missing password", _registration(password=None), ("/body/password",)),
    Mutation("undeclared property", _registration(is_admin=True), ("/body/is_admin",)),
    Mutation(
        "undeclared internal_notes", _registration(internal_notes="x"), ("/body/internal_notes",)
    ),
    Mutation("readOnly role", _registration(role="admin"), ("/body/role",)),
    Mutation("readOnly id", _registration(id="u-admin"), ("/body/id",)),
    Mutation(
        "readOnly created_at",
        _registration(created_at="2020-01-01T00:00:00Z"),
        ("/body/created_at",),
    ),
    Mutation("wrong type", _registration(display_name=7), ("/body/display_name",)),
    Mutation("null email", _registration(email=None) | {"email": None}, ("/body/email",)),
    Mutation("overlong password", _registration(password="p" * 129), ("/body/password",)),
    Mutation("overlong email", _registration(email="e" * 250 + "@x.io"), ("/body/email",)),
    Mutation("bad username", _registration(username="a b"), ("/body/username",)),
    Mutation("text/plain", _registration(), status=415, content_type="text/plain"),
    Mutation("no content type", _registration(), status=415, content_type=""),
]


def test_refused_registrations_create_nothing(anonymous: Client, shop_gateway: GatewayProc) -> None:
    problems: list[str] = []
    for case in REGISTRATIONS:
        problems += send_refused(anonymous, shop_gateway, "POST", "/v2/users", case)
    assert_all(problems)
    # Had any reached the shop, its username would now be taken (409).
    for case in REGISTRATIONS:
        if (
            isinstance(case.body, dict)
            and "username" in case.body
            and case.body["username"] != "a b"
        ):
            valid = _registration(username=case.body["username"])
            answer = anonymous.request("POST", "/v2/users", json_body=valid)
            assert answer.status == 201, f"{case.name}: {answer.describe()}"


def _order_count(client: Client) -> int:
    return len(client.request("GET", "/v2/orders").json)


ORDER_CREATES = [
    Mutation("missing items", {}, ("/body/items",)),
    Mutation("undeclared property", {"items": [ITEM], "coupon": "FREE"}, ("/body/coupon",)),
    Mutation(
        "readOnly customer_id", {"items": [ITEM], "customer_id": "u-bob"}, ("/body/customer_id",)
    ),
    Mutation("readOnly total", {"items": [ITEM], "total": 0}, ("/body/total",)),
    Mutation(
        "undeclared item property",
        {"items": [{**ITEM, "discount": 1}]},
        ("/body/items/0/discount",),
    ),
    Mutation("wrong type", {"items": ITEM}, ("/body/items",)),
    Mutation(
        "boolean quantity", {"items": [{**ITEM, "quantity": True}]}, ("/body/items/0/quantity",)
    ),
    Mutation(
        "fractional quantity", {"items": [{**ITEM, "quantity": 1.5}]}, ("/body/items/0/quantity",)
    ),
    Mutation("too many", {"items": [{**ITEM, "quantity": 101}]}, ("/body/items/0/quantity",)),
    Mutation("too many items", {"items": [ITEM] * 51}, ("/body/items",)),
    Mutation("overlong sku", {"items": [{**ITEM, "sku": "S" * 33}]}, ("/body/items/0/sku",)),
    Mutation("NaN", b'{"items": [{"sku": "BOOK-001", "quantity": 1, "unit_price": NaN}]}'),
    # Read as doubles these are 100.0 (an integer, at most 100) and 100000.0 (the maximum
    # price); an upstream reading decimals exactly (BigDecimal, Decimal) sees a fraction
    # above 100 and a price above the maximum.
    Mutation(
        "quantity a hair above its maximum",
        b'{"items": [{"sku": "BOOK-001", "quantity": 100.00000000000000001, "unit_price": 1}]}',
        ("/body",),
    ),
    Mutation(
        "price a hair above its maximum (compact)",
        b'{"items":[{"sku":"BOOK-001","quantity":1,"unit_price":100000.00000000000001}]}',
        ("/body",),
    ),
    Mutation("deep nesting", b'{"items": ' + b"[" * 64 + b"]" * 64 + b"}"),
    Mutation("text/plain", {"items": [ITEM]}, status=415, content_type="text/plain"),
    Mutation("multipart", b"--x--", status=415, content_type="multipart/form-data; boundary=x"),
]


def test_refused_order_creations_create_nothing(
    alice: Client, admin: Client, shop_gateway: GatewayProc
) -> None:
    before = _order_count(admin)
    problems: list[str] = []
    for case in ORDER_CREATES:
        problems += send_refused(alice, shop_gateway, "POST", "/v2/orders", case)
    assert _order_count(admin) == before
    assert_all(problems)


LOGINS = [
    Mutation("missing password", {"username": "alice"}, ("/body/password",)),
    Mutation("missing username", {"password": "x"}, ("/body/username",)),
    Mutation(
        "undeclared property", {"username": "alice", "password": "x", "otp": "1"}, ("/body/otp",)
    ),
    Mutation("wrong type", {"username": "alice", "password": 123}, ("/body/password",)),
    Mutation(
        "object instead of string", {"username": {"$ne": ""}, "password": "x"}, ("/body/username",)
    ),
    Mutation(
        "overlong password", {"username": "alice", "password": "p" * 129}, ("/body/password",)
    ),
    Mutation("overlong username", {"username": "a" * 33, "password": "x"}, ("/body/username",)),
    Mutation("empty password", {"username": "alice", "password": ""}, ("/body/password",)),
    Mutation(
        "form encoded",
        b"username=alice&password=x",
        status=415,
        content_type="application/x-www-form-urlencoded",
    ),
]


def test_refused_logins_are_not_forwarded(anonymous: Client, shop_gateway: GatewayProc) -> None:
    problems: list[str] = []
    for case in LOGINS:
        problems += send_refused(anonymous, shop_gateway, "POST", "/v2/login", case)
    assert_all(problems)


PARAMETERS = [
    ("GET", "/v2/users/u-ALICE", "/path/user_id"),
    ("GET", "/v2/users/alice", "/path/user_id"),
    ("PATCH", "/v2/users/u-" + "a" * 41, "/path/user_id"),
    ("GET", "/v2/orders/o-abc", "/path/order_id"),
    ("DELETE", "/v2/orders/o-1234567890123", "/path/order_id"),
    ("GET", "/v1/orders/1001", "/path/order_id"),
    ("GET", "/v2/orders?limit=5", "/query/limit"),
    ("GET", "/v2/admin/reports?format=csv", "/query/format"),
    ("GET", "/v2/users/u-alice?debug=1", "/query/debug"),
]


@pytest.mark.parametrize(("method", "path", "pointer"), PARAMETERS)
def test_bad_parameters_are_refused(
    admin: Client, shop_gateway: GatewayProc, method: str, path: str, pointer: str
) -> None:
    body = {"display_name": "x"} if method == "PATCH" else None
    answer = admin.request(method, path, json_body=body)
    event = audit_event(shop_gateway, answer)
    assert_all(
        check_refusal(f"{method} {path}", answer, event, Mutation("param", body, (pointer,)))
    )


def test_body_on_an_operation_without_one_is_refused(
    admin: Client, shop_gateway: GatewayProc
) -> None:
    answer = admin.request("DELETE", "/v2/orders/o-1002", json_body={"force": True})
    event = audit_event(shop_gateway, answer)
    assert_all(check_refusal("DELETE with body", answer, event, Mutation("body", {})))
    assert admin.request("GET", "/v2/orders/o-1002").status == 200
