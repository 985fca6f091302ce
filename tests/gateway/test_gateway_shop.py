"""BOLA, BFLA, mass assignment and data exposure against the demo shop behind a real gateway.

The shop upstream is deliberately naive: it trusts whatever reaches it. Every protection
seen here is the gateway's, driven by the shop's OpenAPI document and its x-bastion-*
extensions.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from bastion.demo import SHOP_OPENAPI_PATH
from tests.support.keys import KeyIssuer, make_issuer
from tests.support.procs import GatewayProc, run_gateway, run_shop


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> KeyIssuer:
    return make_issuer(tmp_path_factory.mktemp("shopkeys"))


@pytest.fixture(scope="module")
def shop_gateway(
    issuer: KeyIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProc]:
    tmp = tmp_path_factory.mktemp("shop")
    with run_shop(tmp) as shop_url:
        config = f"""version: 1
mode: development
audit: {{sink: file, path: "{{AUDIT}}"}}
{issuer.config()}
upstreams:
  shop:
    url: {shop_url}
    timeout: {{connect: 2, read: 10, total: 15}}
apis:
  - name: shop-v2
    upstream: shop
    openapi: "{SHOP_OPENAPI_PATH}"
    paths: ["/v2/*", "/health"]
  - name: shop-v1
    upstream: shop
    openapi: "{SHOP_OPENAPI_PATH}"
    paths: ["/v1/*"]
    version:
      deprecated_at: 2026-06-01T00:00:00Z
      sunset_at: 2030-01-01T00:00:00Z
      successor: shop-v2
      link: https://docs.example.com/shop/migrate-to-v2
"""
        with run_gateway(config, tmp) as gw:
            yield gw


class Client:
    def __init__(self, gw: GatewayProc, token: str | None) -> None:
        self.gw, self.token = gw, token

    def __call__(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=10)
        all_headers = dict(headers or {})
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=all_headers)
            response = conn.getresponse()
            raw = response.read()
            parsed = (
                json.loads(raw)
                if raw and "json" in (response.getheader("content-type") or "")
                else raw
            )
            return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed
        finally:
            conn.close()


@pytest.fixture(scope="module")
def alice(shop_gateway: GatewayProc, issuer: KeyIssuer) -> Client:
    return Client(shop_gateway, issuer.token("u-alice", ["customer"]))


@pytest.fixture(scope="module")
def bob(shop_gateway: GatewayProc, issuer: KeyIssuer) -> Client:
    return Client(shop_gateway, issuer.token("u-bob", ["customer"]))


@pytest.fixture(scope="module")
def admin(shop_gateway: GatewayProc, issuer: KeyIssuer) -> Client:
    return Client(shop_gateway, issuer.token("u-admin", ["admin"]))


@pytest.fixture(scope="module")
def anonymous(shop_gateway: GatewayProc) -> Client:
    return Client(shop_gateway, None)


def test_public_health_needs_no_token(anonymous: Client) -> None:
    assert anonymous("GET", "/health")[0] == 200


def test_no_token_is_401(anonymous: Client) -> None:
    status, headers, _ = anonymous("GET", "/v2/orders/o-1001")
    assert status == 401
    assert "Bearer" in headers["www-authenticate"]


def test_alice_reads_her_own_order(alice: Client) -> None:
    status, headers, order = alice("GET", "/v2/orders/o-1001")
    assert status == 200
    assert order["customer_id"] == "u-alice"
    assert "fraud_score" not in order  # undeclared field stripped
    assert headers["cache-control"] == "no-store"


def test_bola_alice_cannot_read_bobs_order(alice: Client) -> None:
    status, _, problem = alice("GET", "/v2/orders/o-2001")
    assert status == 404
    assert problem["code"] == "not_found"


def test_bola_alice_cannot_modify_or_delete_bobs_order(alice: Client, admin: Client) -> None:
    status, _, _ = alice("PATCH", "/v2/orders/o-2002", {"status": "paid"})
    assert status == 404
    status, _, _ = alice("DELETE", "/v2/orders/o-2002")
    assert status == 404
    status, _, order = admin("GET", "/v2/orders/o-2002")
    assert status == 200
    assert order["status"] == "cancelled"  # unchanged: the PATCH never reached the shop


def test_bola_alice_cannot_read_or_patch_bobs_profile(alice: Client) -> None:
    assert alice("GET", "/v2/users/u-bob")[0] == 404
    assert alice("PATCH", "/v2/users/u-bob", {"display_name": "pwned"})[0] == 404


def test_order_list_is_filtered_to_the_caller(alice: Client, admin: Client) -> None:
    status, _, orders = alice("GET", "/v2/orders")
    assert status == 200
    assert orders
    assert {o["customer_id"] for o in orders} == {"u-alice"}
    status, _, everything = admin("GET", "/v2/orders")
    assert {o["customer_id"] for o in everything} >= {"u-alice", "u-bob"}


def test_bfla_customer_cannot_call_admin_route(alice: Client, admin: Client) -> None:
    status, _, problem = alice("GET", "/v2/admin/reports")
    assert status == 403
    assert problem["code"] == "forbidden"
    assert admin("GET", "/v2/admin/reports")[0] == 200


def test_admin_reads_anyones_objects(admin: Client) -> None:
    assert admin("GET", "/v2/orders/o-2001")[0] == 200
    assert admin("GET", "/v2/users/u-alice")[0] == 200


def test_excessive_data_exposure_stripped(alice: Client, shop_gateway: GatewayProc) -> None:
    status, headers, user = alice("GET", "/v2/users/u-alice")
    assert status == 200
    assert user["id"] == "u-alice"
    assert "password_hash" not in user
    assert "internal_notes" not in user
    event = shop_gateway.event_for(headers["x-request-id"])
    assert "/password_hash" in event["fields_removed"]
    assert any(f["pointer"] == "/password_hash" for f in event["data_exposure_suspected"])


def test_mass_assignment_refused_and_not_forwarded(alice: Client, admin: Client) -> None:
    status, _, problem = alice("PATCH", "/v2/users/u-alice", {"role": "admin"})
    assert status == 400
    assert problem["code"] == "validation_failed"
    assert problem["errors"]
    status, _, user = admin("GET", "/v2/users/u-alice")
    assert user["role"] == "customer"


def test_register_with_role_admin_is_400(anonymous: Client) -> None:
    status, _, problem = anonymous(
        "POST",
        "/v2/users",
        {
            "username": "mallory",
            "email": "mallory@example.com",
            "password": "correct horse battery staple 2026",
            "display_name": "Mallory",
            "role": "admin",
        },
    )
    assert status == 400
    assert any("role" in e["pointer"] for e in problem["errors"]), json.dumps(problem)


def test_v1_carries_deprecation_and_sunset(alice: Client) -> None:
    status, headers, body = alice("GET", "/v1/orders/o-1001")
    assert status == 200
    assert headers["deprecation"].startswith("@")
    assert headers["sunset"].endswith("GMT")
    assert 'rel="deprecation"' in headers["link"]
    assert "fraud_score" not in body


def test_unknown_route_and_method(alice: Client) -> None:
    assert alice("GET", "/v2/secret")[0] == 404
    assert alice("PUT", "/v2/orders/o-1001", {})[0] == 405


def test_versions_report_shows_who_calls_v1(
    alice: Client, bob: Client, shop_gateway: GatewayProc
) -> None:
    import subprocess
    import sys
    from pathlib import Path

    alice("GET", "/v1/users/u-alice")
    bob("GET", "/v1/orders/o-2001")
    _, headers, _ = bob("GET", "/v1/orders/o-2001")
    shop_gateway.event_for(headers["x-request-id"])  # lines are written in order
    bastion = str(Path(sys.executable).with_name("bastion"))
    result = subprocess.run(
        [bastion, "versions", "--audit", str(shop_gateway.audit), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    usage = {(u["caller"], u["route"]): u["calls"] for u in json.loads(result.stdout)}
    assert usage[("u-bob", "/v1/orders/{order_id}")] == 2
    assert usage[("u-alice", "/v1/users/{user_id}")] >= 1
    assert all(route.startswith("/v1/") for _, route in usage)


def test_valid_bodies_are_validated_then_forwarded(anonymous: Client, alice: Client) -> None:
    status, _, user = anonymous(
        "POST",
        "/v2/users",
        {
            "username": "carol",
            "email": "carol@example.com",
            "password": "correct horse battery staple 2026",
            "display_name": "Carol",
        },
    )
    assert status == 201, user
    assert user["username"] == "carol"
    assert "password" not in user  # writeOnly never leaves
    assert "password_hash" not in user
    status, _, order = alice(
        "POST", "/v2/orders", {"items": [{"sku": "BOOK-001", "quantity": 2, "unit_price": 12.5}]}
    )
    assert status == 201, order
    assert order["customer_id"] == "u-alice"
    status, _, patched = alice("PATCH", "/v2/users/u-alice", {"display_name": "Alice A."})
    assert status == 200, patched
    assert patched["display_name"] == "Alice A."


def test_chunked_body_is_buffered_then_forwarded(
    shop_gateway: GatewayProc, issuer: KeyIssuer
) -> None:
    from tests.support.rawhttp import raw_request

    token = issuer.token("u-alice", ["customer"])
    payload = json.dumps({"display_name": "Alice Chunked"}).encode()
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    raw = (
        b"PATCH /v2/users/u-alice HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body
    )
    response = raw_request(shop_gateway.port, raw, timeout=10)
    assert response is not None
    assert response.status == 200
    assert response.json()["display_name"] == "Alice Chunked"


@pytest.mark.parametrize(
    "body",
    [
        # Escaped quotes that never close a string, behind enough brackets to be measured:
        # the nesting check once took minutes on this (quadratic string matching).
        b"[" * 40 + b'"' + b'\\"' * 200_000,
        b'{"username": "' + b'\\"' * 200_000 + b'"' + b"]" * 40 + b"}",
        b'{"a": ' + b"[" * 33 + b"]" * 33 + b"}",
    ],
)
def test_hostile_nesting_is_refused_quickly_and_not_forwarded(
    shop_gateway: GatewayProc, body: bytes
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", shop_gateway.port, timeout=10)
    try:
        conn.request("POST", "/v2/users", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        problem = json.loads(response.read())
        request_id = response.getheader("x-request-id")
    finally:
        conn.close()
    assert response.status == 400
    assert problem["code"] == "validation_failed"
    event = shop_gateway.event_for(request_id)
    assert event["upstream"] is None  # never forwarded
