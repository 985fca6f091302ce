"""The bundled OpenAPI document: valid, complete, and a subset of what the naive app returns.

Every response the app gives to a valid request must match the declared schema once the
undeclared fields (password_hash, internal_notes, fraud_score, ...) are removed: the app
returns a superset, and the gateway's job is to cut it down to the contract.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
import yaml
from openapi_spec_validator import validate

from bastion.demo import DEMO_USERS, SHOP_OPENAPI_PATH
from tests.demo.conftest import ShopClient

SPEC: dict[str, Any] = yaml.safe_load(SHOP_OPENAPI_PATH.read_text(encoding="utf-8"))
METHODS = ("get", "post", "put", "patch", "delete")
ALICE = ("u-alice", "customer")
ADMIN = ("u-admin", "admin")


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _declared_properties(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Properties of an object schema (through $ref and allOf) and whether it is closed."""
    schema = _resolve(schema)
    properties = dict(schema.get("properties", {}))
    closed = schema.get("additionalProperties") is False
    for part in schema.get("allOf", []):
        more, part_closed = _declared_properties(part)
        properties.update(more)
        closed = closed or part_closed
    return properties, closed


def strip_undeclared(value: Any, schema: dict[str, Any]) -> Any:
    """What the gateway forwards: only declared fields, recursively; writeOnly never."""
    schema = _resolve(schema)
    if isinstance(value, list) and "items" in schema:
        return [strip_undeclared(item, schema["items"]) for item in value]
    if isinstance(value, dict):
        properties, closed = _declared_properties(schema)
        if not closed:
            return value
        kept = {}
        for key, item in value.items():
            if key in properties and not _resolve(properties[key]).get("writeOnly"):
                kept[key] = strip_undeclared(item, properties[key])
        return kept
    return value


def _operation(path: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = SPEC["paths"][path][method]
    return operation


def _response_schema(path: str, method: str, status: int) -> dict[str, Any] | None:
    responses = _operation(path, method)["responses"]
    assert str(status) in responses, f"{method.upper()} {path} returned undeclared {status}"
    response = _resolve(responses[str(status)])
    content = response.get("content")
    if content is None:
        return None
    schema: dict[str, Any] = content["application/json"]["schema"]
    return schema


def assert_conforms(path: str, method: str, status: int, body: Any) -> None:
    schema = _response_schema(path, method, status)
    if schema is None:
        assert body == b"", f"{method} {path} {status} has an undeclared body"
        return
    stripped = strip_undeclared(body, schema)
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    document["components"] = SPEC["components"]
    validator = jsonschema_rs.validator_for(document, validate_formats=True)
    errors = [str(e) for e in validator.iter_errors(stripped)]
    assert not errors, f"{method.upper()} {path} {status}: {errors}"


def test_spec_is_valid_openapi_31() -> None:
    validate(SPEC)
    assert SPEC["openapi"].startswith("3.1")


def test_security_schemes_and_public_operations() -> None:
    schemes = SPEC["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["bearer"]["bearerFormat"] == "JWT"
    assert (schemes["apiKey"]["type"], schemes["apiKey"]["in"]) == ("apiKey", "header")
    assert schemes["apiKey"]["name"] == "X-API-Key"
    assert SPEC["security"] == [{"bearer": []}, {"apiKey": []}]
    public = {
        (path, method)
        for path, item in SPEC["paths"].items()
        for method in METHODS
        if method in item and item[method].get("security") == []
    }
    assert public == {("/health", "get"), ("/v2/login", "post"), ("/v2/users", "post")}


def test_every_protected_operation_declares_roles_and_v1_is_deprecated() -> None:
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            assert operation.get("deprecated", False) is path.startswith("/v1/"), (path, method)
            if operation.get("security") != []:
                assert operation["x-bastion-roles"], (path, method)
    assert _operation("/v2/admin/reports", "get")["x-bastion-roles"] == ["admin"]
    assert _operation("/v2/orders", "get")["x-bastion-roles"] == ["customer", "admin"]


def test_bastion_extensions_for_ownership_and_login() -> None:
    owner_by_path = {
        "request": "path.user_id",
        "equals": "principal.sub",
        "unless_roles": ["admin"],
    }
    assert _operation("/v2/users/{user_id}", "get")["x-bastion-owner"] == owner_by_path
    assert _operation("/v2/users/{user_id}", "patch")["x-bastion-owner"] == owner_by_path
    owner_by_body = {
        "response": "body.customer_id", "equals": "principal.sub", "unless_roles": ["admin"]
    }  # fmt: skip
    assert _operation("/v2/orders/{order_id}", "get")["x-bastion-owner"] == owner_by_body
    for method in ("patch", "delete"):
        assert _operation("/v2/orders/{order_id}", method)["x-bastion-owner"] == {
            **owner_by_body, "before": "GET"
        }  # fmt: skip
    assert _operation("/v2/orders", "get")["x-bastion-owner-list"] == {
        "items": "body", "field": "customer_id", "equals": "principal.sub",
        "unless_roles": ["admin"],
    }  # fmt: skip
    login = _operation("/v2/login", "post")
    assert login["x-bastion-login"] == {"username": "body.username"}
    assert [rule["key"] for rule in login["x-bastion-rate-limit"]] == ["ip", "body.username"]
    header = SHOP_OPENAPI_PATH.read_text(encoding="utf-8").split("openapi: 3.1")[0]
    used = {
        key
        for item in SPEC["paths"].values()
        for method in METHODS
        for key in item.get(method, {})
        if key.startswith("x-bastion-")
    }
    assert used == {
        "x-bastion-roles", "x-bastion-owner", "x-bastion-owner-list",
        "x-bastion-login", "x-bastion-rate-limit",
    }  # fmt: skip
    for key in used:
        assert f"#   {key}:" in header, f"{key} is not documented at the top of the YAML"


def test_only_public_fields_are_declared() -> None:
    schemas = SPEC["components"]["schemas"]
    user, _ = _declared_properties(schemas["User"])
    assert "password_hash" not in user
    assert "internal_notes" not in user
    assert user["password"]["writeOnly"] is True
    assert all(user[name]["readOnly"] is True for name in ("id", "created_at", "role"))
    assert "fraud_score" not in schemas["Order"]["properties"]
    assert "fraud_score" not in schemas["OrderV1"]["properties"]

    def objects(node: Any) -> list[dict[str, Any]]:
        found = []
        if isinstance(node, dict):
            if node.get("type") == "object":
                found.append(node)
            for child in node.values():
                found.extend(objects(child))
        elif isinstance(node, list):
            for child in node:
                found.extend(objects(child))
        return found

    every_object = objects(SPEC["paths"]) + objects(schemas)
    assert every_object
    assert all(o.get("additionalProperties") is False for o in every_object)


def _exchange(shop: ShopClient) -> list[tuple[str, str, int, Any]]:
    """Valid requests covering every operation and every declared status."""
    alice = DEMO_USERS["alice"]
    item = {"sku": "BOOK-001", "quantity": 2, "unit_price": 24.9}
    register = {
        "username": "carol", "email": "carol@shop.example",
        "password": "carol-password-2026", "display_name": "Carol",
    }  # fmt: skip
    calls: list[tuple[str, str, str, Any, tuple[str, str] | None]] = [
        ("/health", "GET", "/health", None, None),
        ("/v2/login", "POST", "/v2/login", {"username": "alice", "password": alice.password}, None),
        ("/v2/login", "POST", "/v2/login", {"username": "alice", "password": "nope"}, None),
        ("/v2/login", "POST", "/v2/login", {"username": "alice"}, None),
        ("/v2/users", "POST", "/v2/users", register, None),
        ("/v2/users", "POST", "/v2/users", register, None),
        ("/v2/users", "POST", "/v2/users", {"username": "dave"}, None),
        ("/v2/users/{user_id}", "GET", "/v2/users/u-alice", None, ALICE),
        ("/v2/users/{user_id}", "GET", "/v2/users/u-gone", None, ALICE),
        ("/v2/users/{user_id}", "PATCH", "/v2/users/u-alice", {"display_name": "Al"}, ALICE),
        ("/v2/users/{user_id}", "PATCH", "/v2/users/u-alice", {"email": 1}, ALICE),
        ("/v2/users/{user_id}", "PATCH", "/v2/users/u-gone", {"display_name": "X"}, ALICE),
        ("/v2/users/{user_id}", "PATCH", "/v2/users/u-alice", {"username": "bob"}, ALICE),
        ("/v2/orders", "GET", "/v2/orders", None, ADMIN),
        ("/v2/orders", "POST", "/v2/orders", {"items": [item]}, ALICE),
        ("/v2/orders", "POST", "/v2/orders", {"items": []}, ALICE),
        ("/v2/orders/{order_id}", "GET", "/v2/orders/o-1001", None, ALICE),
        ("/v2/orders/{order_id}", "GET", "/v2/orders/o-404", None, ALICE),
        ("/v2/orders/{order_id}", "PATCH", "/v2/orders/o-1001", {"status": "cancelled"}, ALICE),
        ("/v2/orders/{order_id}", "PATCH", "/v2/orders/o-1001", {"items": [item]}, ALICE),
        ("/v2/orders/{order_id}", "PATCH", "/v2/orders/o-1001", {"items": 1}, ALICE),
        ("/v2/orders/{order_id}", "PATCH", "/v2/orders/o-404", {"status": "cancelled"}, ALICE),
        ("/v2/orders/{order_id}", "DELETE", "/v2/orders/o-1002", None, ALICE),
        ("/v2/orders/{order_id}", "DELETE", "/v2/orders/o-1002", None, ALICE),
        ("/v2/admin/reports", "GET", "/v2/admin/reports", None, ADMIN),
        ("/v1/users/{user_id}", "GET", "/v1/users/u-bob", None, ("u-bob", "customer")),
        ("/v1/users/{user_id}", "GET", "/v1/users/u-gone", None, ALICE),
        ("/v1/orders/{order_id}", "GET", "/v1/orders/o-2001", None, ALICE),
        ("/v1/orders/{order_id}", "GET", "/v1/orders/o-404", None, ALICE),
    ]
    results = []
    for template, method, path, body, who in calls:
        reply = shop.request(method, path, body, as_user=who)
        results.append((template, method.lower(), reply.status, reply.json() if reply.raw else b""))
    return results


def test_app_responses_are_a_superset_of_the_spec(shop: ShopClient) -> None:
    results = _exchange(shop)
    seen: set[tuple[str, str, int]] = set()
    for template, method, status, body in results:
        assert_conforms(template, method, status, body)
        seen.add((template, method, status))
    declared = {
        (path, method, int(status))
        for path, item in SPEC["paths"].items()
        for method in METHODS
        for status in item.get(method, {}).get("responses", {})
    }
    assert declared == seen, declared ^ seen


def test_stripping_removes_the_leaks(shop: ShopClient) -> None:
    raw_user = shop.request("GET", "/v2/users/u-alice").json()
    user = strip_undeclared(raw_user, _response_schema("/v2/users/{user_id}", "get", 200) or {})
    assert set(raw_user) - set(user) == {"password_hash", "internal_notes"}
    raw_orders = shop.request("GET", "/v2/orders").json()
    orders = strip_undeclared(raw_orders, _response_schema("/v2/orders", "get", 200) or {})
    assert all("fraud_score" in o for o in raw_orders)
    assert not any("fraud_score" in o for o in orders)


@pytest.mark.parametrize("name", ["User", "Order", "OrderV1", "UserV1", "SalesReport"])
def test_strip_helper_keeps_declared_fields(name: str) -> None:
    properties, closed = _declared_properties(SPEC["components"]["schemas"][name])
    assert closed
    assert properties


@pytest.mark.parametrize(
    "body",
    [
        {"id": "o-1", "customer_id": "u-a", "items": [], "total": 1, "status": "paid"},
        {"id": "o-1", "customer_id": "u-a", "items": [{"sku": "a b", "quantity": 1,
         "unit_price": 1}], "total": 1, "status": "paid", "created_at": "2026-01-01T00:00:00Z"},
        {"id": "o-1", "customer_id": "u-a", "items": [{"sku": "ABC", "quantity": 1,
         "unit_price": 1}], "total": 1, "status": "paid", "created_at": "yesterday"},
    ],
)  # fmt: skip
def test_conformance_check_catches_a_wrong_response(body: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        assert_conforms("/v2/orders/{order_id}", "get", 200, body)
