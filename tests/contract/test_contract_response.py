"""Response projection, strict vs monitor, size limits and the sensitive-data detector."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bastion.contract import (
    ContractLimits,
    FilteredResponse,
    OperationContract,
    ResponseContractViolation,
)
from bastion.errors import BadGateway
from tests.contract.contract_helpers import PETS, SHOP, UUID, contract

USER = {"id": UUID, "email": "ada@example.com", "name": "Ada"}
MONITOR = ContractLimits(response_mode="monitor")


def _filter(
    op: OperationContract, status: int, body: Any, content_type: str | None = "application/json"
) -> FilteredResponse:
    return op.filter_response(status, content_type, json.dumps(body).encode())


def test_undeclared_fields_removed_at_every_depth_and_in_arrays() -> None:
    listing = contract(SHOP, "GET", "/users")
    body = {
        "items": [
            {**USER, "password_hash": "$argon2id$...", "address": {"city": "Oslo", "geo": [1, 2]}},
            {**USER, "internal": {"score": 3}},
        ],
        "next": None,
        "debug": "sql: select *",
    }
    out = _filter(listing, 200, body)
    assert json.loads(out.body) == {
        "items": [{**USER, "address": {"city": "Oslo"}}, USER],
        "next": None,
    }
    assert out.changed is True
    assert out.removed == (
        "/items/0/password_hash",
        "/items/0/address/geo",
        "/items/1/internal",
        "/debug",
    )
    assert out.schema_errors == ()


def test_write_only_fields_are_removed() -> None:
    create = contract(SHOP, "POST", "/users")
    out = _filter(create, 201, {**USER, "password": "hunter2hunter2"})
    assert json.loads(out.body) == USER
    assert out.removed == ("/password",)
    assert [(f.pointer, f.kind, f.filtered) for f in out.sensitive] == [
        ("/password", "field_name", True)
    ]


def test_clean_response_is_passed_byte_for_byte() -> None:
    create = contract(SHOP, "POST", "/users")
    raw = b'{ "id": "%s",  "email": "ada@example.com", "name": "Ada" }' % UUID.encode()
    out = create.filter_response(201, "application/json; charset=utf-8", raw)
    assert out.body is raw
    assert out.changed is False
    assert out.removed == ()


def test_allof_and_oneof_keep_only_the_matching_branch() -> None:
    order = contract(SHOP, "GET", "/orders/{order_id}")
    card = {
        "id": 1,
        "customer_id": "u1",
        "lines": [{"sku": "A", "qty": 1, "cost": 3}],
        "payment": {
            "kind": "card",
            "last4": "4242",
            "pan": "4242424242424242",
            "email": "x@example.com",
        },
        "margin": 0.4,
    }
    out = _filter(order, 200, card)
    assert json.loads(out.body) == {
        "id": 1,
        "customer_id": "u1",
        "lines": [{"sku": "A", "qty": 1}],
        "payment": {"kind": "card", "last4": "4242"},
    }
    assert set(out.removed) == {"/lines/0/cost", "/payment/pan", "/payment/email", "/margin"}
    assert ("/payment/pan", "card_number", True) in [
        (f.pointer, f.kind, f.filtered) for f in out.sensitive
    ]
    paypal = {
        "id": 2,
        "customer_id": "u2",
        "payment": {"kind": "paypal", "email": "p@example.com", "last4": "0000"},
    }
    out = _filter(order, 200, paypal)
    assert json.loads(out.body)["payment"] == {"kind": "paypal", "email": "p@example.com"}


def test_anyof_keeps_the_union_of_valid_branches() -> None:
    get_pet = contract(PETS, "GET", "/pets/{pet_id}")
    pet = {
        "id": 1,
        "name": "Rex",
        "kind": "dog",
        "owner": {"person": "Ada", "shelter": "North", "city": "Oslo", "phone": "555"},
    }
    out = _filter(get_pet, 200, pet)
    assert json.loads(out.body)["owner"] == {"person": "Ada", "shelter": "North", "city": "Oslo"}
    assert out.removed == ("/owner/phone",)


def test_recursive_schema_projects_every_level() -> None:
    tree = contract(SHOP, "GET", "/categories")
    deep: dict[str, Any] = {"name": "leaf", "secret": "s"}
    for level in range(20):
        deep = {"name": f"n{level}", "children": [deep]}
    out = _filter(tree, 200, deep)
    assert len(out.removed) == 1
    assert out.removed[0].endswith("/children/0/secret")
    assert out.sensitive[0].kind == "field_name"


def test_strict_mode_refuses_a_response_that_breaks_the_schema() -> None:
    create = contract(SHOP, "POST", "/users")
    with pytest.raises(BadGateway) as info:
        _filter(create, 201, {"email": "ada@example.com"})
    assert info.value.status == 502
    assert info.value.reason == "contract.response_invalid"
    assert isinstance(info.value, ResponseContractViolation)
    assert "/id: required property is missing" in info.value.schema_errors


def test_monitor_mode_passes_projected_body_with_errors() -> None:
    create = contract(SHOP, "POST", "/users", MONITOR)
    out = _filter(create, 201, {"email": 5, "extra": 1})
    assert json.loads(out.body) == {"email": 5}
    assert out.removed == ("/extra",)
    assert set(out.schema_errors) == {
        "/email: must be of type string",
        "/id: required property is missing",
        "/name: required property is missing",
    }


def test_status_lookup_exact_range_default() -> None:
    patch = contract(SHOP, "PATCH", "/users/{user_id}")
    out = _filter(patch, 204 - 4, {**USER, "x": 1})  # "2XX"
    assert out.removed == ("/x",)
    problem = {"title": "bad", "status": 409, "trace": "at line 3"}
    out = _filter(patch, 409, problem, "application/problem+json")  # default
    assert json.loads(out.body) == {"title": "bad", "status": 409}


def test_undeclared_status_or_body_is_502_in_strict_mode() -> None:
    get_user = contract(SHOP, "GET", "/users/{user_id}")
    with pytest.raises(BadGateway) as info:
        _filter(get_user, 500, {"trace": "Traceback ..."})
    assert info.value.reason == "contract.response_undeclared"
    with pytest.raises(BadGateway):
        _filter(get_user, 404, {"detail": "no such user"})  # 404 declares no body
    relaxed = contract(SHOP, "GET", "/users/{user_id}", MONITOR)
    out = _filter(relaxed, 500, {"token": "x"})
    assert out.schema_errors == ("status 500 is not declared",)
    assert out.sensitive[0].pointer == "/token"


def test_non_json_and_empty_bodies_pass_untouched() -> None:
    get_user = contract(SHOP, "GET", "/users/{user_id}")
    for content_type, body in [
        ("text/html", b"<h1>hi</h1>"),
        (None, b"\x00\x01"),
        ("image/png", b"\x89PNG"),
        ("application/json", b""),
    ]:
        out = get_user.filter_response(200, content_type, body)
        assert out == FilteredResponse(body, False, (), (), ())


def test_oversized_json_is_502_unless_passing_large_responses() -> None:
    small = ContractLimits(max_response_bytes=64)
    body = {**USER, "name": "x" * 100}
    with pytest.raises(BadGateway) as info:
        _filter(contract(SHOP, "POST", "/users", small), 201, body)
    assert info.value.reason == "contract.response_too_large"
    passing = ContractLimits(max_response_bytes=64, pass_large_responses=True)
    out = _filter(contract(SHOP, "POST", "/users", passing), 201, body)
    assert json.loads(out.body) == body
    assert out.changed is False
    assert out.schema_errors == ("response too large to inspect",)


def test_invalid_json_from_upstream() -> None:
    with pytest.raises(BadGateway):
        contract(SHOP, "POST", "/users").filter_response(201, "application/json", b"{oops")
    out = contract(SHOP, "POST", "/users", MONITOR).filter_response(
        201, "application/json", b"{oops"
    )
    assert out.body == b"{oops"
    assert out.schema_errors == ("response is not valid JSON",)


JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"


def test_sensitive_values_are_reported_even_in_declared_fields() -> None:
    listing = contract(SHOP, "GET", "/users", MONITOR)
    body = {
        "items": [
            {**USER, "name": JWT, "address": {"city": "4111 1111 1111 1111", "street": PEM}},
            {**USER, "name": "AKIAIOSFODNN7EXAMPLE"},
        ],
        "next": "4111111111111112",
    }  # fails Luhn: not a card
    out = _filter(listing, 200, body)
    found = {(f.pointer, f.kind, f.filtered) for f in out.sensitive}
    assert found == {
        ("/items/0/name", "jwt", False),
        ("/items/0/address/city", "card_number", False),
        ("/items/0/address/street", "private_key", False),
        ("/items/1/name", "aws_access_key", False),
    }
    assert JWT not in repr(out.sensitive)


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "api_key",
        "apiKey",
        "client-secret",
        "ssn",
        "credit_card",
        "private_key",
        "refresh_token",
        "cvv",
    ],
)
def test_sensitive_field_names(name: str) -> None:
    listing = contract(SHOP, "GET", "/users", MONITOR)
    out = _filter(listing, 200, {"items": [{**USER, name: "v"}]})
    assert [(f.pointer, f.kind, f.filtered) for f in out.sensitive] == [
        (f"/items/0/{name}", "field_name", True)
    ]


def test_ordinary_names_are_not_flagged() -> None:
    listing = contract(SHOP, "GET", "/users", MONITOR)
    out = _filter(
        listing,
        200,
        {"items": [{**USER, "classname": "a", "shipping": "b", "timestamp_ms": "1700000000000"}]},
    )
    assert out.sensitive == ()


def test_pathologically_deep_response_is_a_clean_502() -> None:
    tree = contract(SHOP, "GET", "/categories")
    deep = b'{"name": "x", "children": [' * 1000 + b'{"name": "y"}' + b"]}" * 1000
    with pytest.raises(BadGateway) as info:
        tree.filter_response(200, "application/json", deep)
    assert info.value.status == 502
    out = contract(SHOP, "GET", "/categories", MONITOR).filter_response(
        200, "application/json", deep
    )
    assert out.body == deep
    assert out.schema_errors


@pytest.mark.parametrize("levels", [300, 500])
def test_an_answer_orjson_reads_but_too_deep_to_walk_is_a_clean_502(levels: int) -> None:
    """orjson reads 1,024 levels: the walks (compiled or not) meet what it returns. 600
    levels are filtered; 1,000 are "nested too deeply", never a crash."""
    tree = contract(SHOP, "GET", "/categories")
    deep = (
        b'{"name": "x", "password": "p", "children": [' * levels + b'{"name": "y"}' + b"]}" * levels
    )
    monitor = contract(SHOP, "GET", "/categories", MONITOR)
    if levels == 300:
        out = tree.filter_response(200, "application/json", deep)
        assert b"password" not in out.body
        assert len(out.removed) == levels
        assert monitor.filter_response(200, "application/json", deep).body == out.body
        return
    with pytest.raises(BadGateway) as info:
        tree.filter_response(200, "application/json", deep)
    assert info.value.status == 502
    out = monitor.filter_response(200, "application/json", deep)
    assert out.body == deep
    assert out.schema_errors == ("response nested too deeply",)


def test_removed_pointers_are_escaped_per_rfc_6901() -> None:
    create = contract(SHOP, "POST", "/users")
    out = _filter(create, 201, {**USER, "a/b": 1, "c~d": 2, "address": {"city": "x", "e/~f": 3}})
    assert out.removed == ("/a~1b", "/c~0d", "/address/e~1~0f")


def test_lone_surrogates_from_upstream_are_invalid_json() -> None:
    raw = b'{"id": "%s", "email": "a@example.com", "name": "\\udc00"}' % UUID.encode()
    with pytest.raises(BadGateway) as info:
        contract(SHOP, "POST", "/users").filter_response(201, "application/json", raw)
    assert info.value.reason == "contract.response_invalid"
    out = contract(SHOP, "POST", "/users", MONITOR).filter_response(201, "application/json", raw)
    assert out.body == raw
    assert out.schema_errors == ("response is not valid JSON",)


def test_a_name_hidden_in_an_invalid_value_is_still_reported_in_monitor_mode() -> None:
    """The projection does not enter a string-typed property; an invalid body is scanned."""
    listing = contract(SHOP, "GET", "/users", MONITOR)
    out = _filter(listing, 200, {"items": [{**USER, "name": {"password": "hunter2"}}]})
    assert out.schema_errors
    assert [(f.pointer, f.kind, f.filtered) for f in out.sensitive] == [
        ("/items/0/name/password", "field_name", False)
    ]


def test_secrets_spelled_with_escapes_are_found() -> None:
    listing = contract(SHOP, "GET", "/users", MONITOR)
    escaped = "\\u0065" + JWT[1:]  # "e" as an escape: the raw text has no "eyJ
    text = json.dumps({"items": [{**USER, "name": "x"}]}).replace('"x"', f'"{escaped}"')
    out = listing.filter_response(200, "application/json", text.encode())
    assert [(f.pointer, f.kind) for f in out.sensitive] == [("/items/0/name", "jwt")]
    kelvin = json.dumps({"items": [{**USER, "TO\u212aEN": "v"}]}, ensure_ascii=False)
    out = listing.filter_response(200, "application/json", kelvin.encode())
    assert [(f.kind, f.filtered) for f in out.sensitive] == [("field_name", True)]


def test_a_deep_schema_of_shared_subschemas_compiles_and_filters_at_once() -> None:
    """Open objects that each refer twice to the next: 2^40 paths, each plan asked once."""
    from bastion.contract.projection import PlanBuilder, Projection
    from bastion.contract.schema import SchemaCompiler

    depth = 40
    schemas: dict[str, Any] = {
        f"S{i}": {
            "type": "object",
            "additionalProperties": True,
            "properties": {
                "a": {"$ref": f"#/components/schemas/S{i + 1}"},
                "b": {"$ref": f"#/components/schemas/S{i + 1}"},
            },
        }
        for i in range(depth)
    }
    schemas[f"S{depth}"] = {"type": "object", "additionalProperties": True}
    document = {"openapi": "3.1.0", "components": {"schemas": schemas}}
    plan = PlanBuilder(document, SchemaCompiler(document, "3.1", "response")).build(
        {"$ref": "#/components/schemas/S0"}
    )
    value = {"a": {"b": {"x": 1}, "more": 2}, "extra": 3}
    out = Projection()
    plan.project(value, "", out)
    out.commit()
    assert value == {"a": {"b": {"x": 1}, "more": 2}, "extra": 3}  # open objects keep all
    assert out.removed == []


def test_objects_of_many_key_orders_are_projected_alike_and_remembered_within_a_bound() -> None:
    """Plans remember what each key order needs; an upstream inventing keys cannot grow that."""
    from bastion.contract.projection import SHAPES_PER_PLAN, ObjectPlan, PlanBuilder, Projection
    from bastion.contract.schema import SchemaCompiler

    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "object", "properties": {"c": {"type": "integer"}}},
        },
    }
    document = {"openapi": "3.1.0"}
    plan = PlanBuilder(document, SchemaCompiler(document, "3.1", "response")).build(schema)
    assert isinstance(plan, ObjectPlan)
    for i in range(3 * SHAPES_PER_PLAN):
        value = {f"k{i}": 1, "a": "x", "b": {"c": 1, "d": [2]}}
        reordered = {"b": {"d": [2], "c": 1}, "a": "x", f"k{i}": 1}
        for item, expected in ((value, [f"/k{i}", "/b/d"]), (reordered, ["/b/d", f"/k{i}"])):
            out = Projection()
            plan.project(item, "", out)
            out.commit()
            assert out.removed == expected  # document order, whatever the order
            assert item == {"a": "x", "b": {"c": 1}}
        assert len(plan._shapes) <= SHAPES_PER_PLAN


def test_a_union_reached_twice_through_one_schema_projects() -> None:
    """Two branches whose property refers to the same recursive union: merging met the
    union twice and raised (a 500 for any answer)."""
    from bastion.contract.projection import PlanBuilder, Projection
    from bastion.contract.schema import SchemaCompiler

    schemas = {
        "U": {
            "anyOf": [
                {"type": "object", "properties": {"c": {"$ref": "#/components/schemas/U"}}},
                {
                    "type": "object",
                    "required": ["c"],
                    "properties": {"c": {"$ref": "#/components/schemas/U"}, "d": {}},
                },
            ]
        }
    }
    document = {"openapi": "3.1.0", "components": {"schemas": schemas}}
    plan = PlanBuilder(document, SchemaCompiler(document, "3.1", "response")).build(
        {"$ref": "#/components/schemas/U"}
    )
    value = {"c": {"c": {}, "x": 1}, "d": 2}
    out = Projection()
    plan.project(value, "", out)
    out.commit()
    assert value == {"c": {"c": {}}, "d": 2}
    assert out.removed == ["/c/x"]


def test_pointers_of_long_keys_nested_deep_stay_bounded() -> None:
    """Pointers are built only for reported removals, and cut at 1,024 characters."""
    from bastion.contract.projection import MAX_POINTERS, PlanBuilder, Projection
    from bastion.contract.schema import SchemaCompiler

    leaf = {"type": "object", "additionalProperties": False, "properties": {"v": {}}}
    schemas = {
        "Node": {
            "type": "object",
            "additionalProperties": {"$ref": "#/components/schemas/Node"},
            "properties": {"v": {"type": "integer"}, "items": {"type": "array", "items": leaf}},
        }
    }
    document = {"openapi": "3.1.0", "components": {"schemas": schemas}}
    plan = PlanBuilder(document, SchemaCompiler(document, "3.1", "response")).build(
        {"$ref": "#/components/schemas/Node"}
    )
    key = "k" * 5_000
    value: dict[str, Any] = {"v": 1}
    for _ in range(200):  # 200 levels of 5,000-character keys: 1 MB of keys
        value = {key: value}
    out = Projection()
    plan.project(value, "", out)
    assert out.removed == []  # open objects keep everything
    wide = {"items": [{"v": 1, "junk": i} for i in range(3 * MAX_POINTERS)]}
    out = Projection()
    plan.project({key: {key: wide}}, "", out)
    assert len(out.doomed) == 3 * MAX_POINTERS
    assert len(out.removed) == MAX_POINTERS
    assert all(len(p) <= 1_024 and p.endswith("…") for p in out.removed)


def test_nested_unions_choose_branches_near_the_top_only() -> None:
    """Choosing a oneOf branch validates the whole subtree: at every level of a recursive
    union that was size x depth (1 MB at depth 200: 5 s). Below MAX_UNION_NESTING open
    choices, what any branch declares is kept; undeclared keys still go at every depth."""
    from bastion.contract import projection
    from bastion.contract.projection import MAX_UNION_NESTING, PlanBuilder, Projection, RefPlan
    from bastion.contract.schema import SchemaCompiler

    node = {"$ref": "#/components/schemas/Node"}
    schemas = {
        "Node": {
            "oneOf": [
                {"type": "object", "required": ["leaf"], "properties": {"leaf": {}}},
                {
                    "type": "object",
                    "required": ["kids"],
                    "properties": {"kids": {"type": "array", "items": node}},
                },
            ]
        }
    }
    document = {"openapi": "3.1.0", "components": {"schemas": schemas}}
    plan = PlanBuilder(document, SchemaCompiler(document, "3.1", "response")).build(node)
    # Count the branch validations (the union's validators, wrapped: the plan classes may
    # be compiled, so their methods cannot be patched).
    validations = 0

    class Counting:
        def __init__(self, validator: Any) -> None:
            self.validator = validator

        def is_valid(self, value: Any) -> bool:
            nonlocal validations
            validations += 1
            return bool(self.validator.is_valid(value))

    assert isinstance(plan, RefPlan)
    union: Any = plan.target
    union.branches = tuple((Counting(v), branch) for v, branch in union.branches)
    depth = 60
    value: dict[str, Any] = {"leaf": 1, "junk": 0}
    for level in range(depth):
        value = {"kids": [value], "junk": level}
    out = Projection()
    plan.project(value, "", out)
    assert validations == MAX_UNION_NESTING * len(union.branches)
    assert len(out.doomed) == depth + 1  # every level's junk, however deep
    assert projection.MAX_UNION_NESTING == 8
