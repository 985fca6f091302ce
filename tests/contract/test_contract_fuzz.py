"""Property-based checks: generated valid bodies pass, mutated ones fail, projection is exact."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from bastion.contract import OperationContract
from bastion.errors import ValidationFailed
from tests.contract.contract_helpers import JSON, contract, minimal, write_spec

LINE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["sku", "qty"],
    "properties": {
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
        "qty": {"type": "integer", "minimum": 1, "maximum": 99},
        "gift": {"type": "boolean"},
    },
}
ORDER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["customer", "lines", "currency"],
    "properties": {
        "customer": {"type": "string", "format": "uuid"},
        "currency": {"type": "string", "enum": ["EUR", "USD", "NOK"]},
        "lines": {"type": "array", "minItems": 1, "maxItems": 5, "items": LINE},
        "note": {"type": ["string", "null"], "maxLength": 40},
        "discount": {"type": "number", "minimum": 0, "maximum": 0.5},
        "deliver_at": {"type": "string", "format": "date-time"},
        "contact": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "email": {"type": "string", "format": "email", "maxLength": 60},
                "ip": {"type": "string", "format": "ipv4"},
            },
        },
    },
}


def strategy(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Objects and arrays composed here, leaves from hypothesis-jsonschema.

    hypothesis-jsonschema 0.23.1 cannot draw objects with this Hypothesis (it uses a
    removed private API), so the containers are built with plain Hypothesis strategies.
    """
    if schema.get("type") == "object":
        props = schema["properties"]
        required = {k: strategy(v) for k, v in props.items() if k in schema.get("required", ())}
        optional = {k: strategy(v) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(required, optional=optional)
    if schema.get("type") == "array":
        return st.lists(
            strategy(schema["items"]),
            min_size=schema.get("minItems", 0),
            max_size=schema.get("maxItems", 5),
        )
    if schema.get("format") == "uuid":  # unknown to hypothesis-jsonschema (draft 2019+)
        return st.uuids().map(str)
    return from_schema(schema)


ORDERS = strategy(ORDER)
# derandomize: the shared gate must not fail on a fresh random draw. Set it to False locally
# to explore (a random run found the jsonschema-rs email false positive, see formats.py).
SETTINGS = settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _without_additional(schema: Any) -> Any:
    """The same schema as a loose spec would write it: no additionalProperties anywhere."""
    if isinstance(schema, dict):
        return {k: _without_additional(v) for k, v in schema.items() if k != "additionalProperties"}
    return schema


@pytest.fixture(scope="module")
def loose_order(tmp_path_factory: pytest.TempPathFactory) -> OperationContract:
    body = {
        "required": True,
        "content": {"application/json": {"schema": _without_additional(ORDER)}},
    }
    doc = minimal(
        {"/orders": {"post": {"requestBody": body, "responses": {"201": {"description": "ok"}}}}},
        version="3.1.0",
    )
    return contract(
        write_spec(tmp_path_factory.mktemp("loose"), doc, "loose.json"), "POST", "/orders"
    )


@pytest.fixture(scope="module")
def create_order(tmp_path_factory: pytest.TempPathFactory) -> OperationContract:
    doc = minimal(
        {
            "/orders": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": ORDER}},
                    },
                    "responses": {
                        "201": {
                            "description": "ok",
                            "content": {"application/json": {"schema": ORDER}},
                        }
                    },
                }
            }
        },
        version="3.1.0",
    )
    path: Path = write_spec(tmp_path_factory.mktemp("fuzz"), doc, "orders.json")
    return contract(path, "POST", "/orders")


def _send(op: OperationContract, body: Any) -> Any:
    return op.validate_request(
        path_params={}, query_string=b"", headers=JSON, body=json.dumps(body).encode()
    )


@SETTINGS
@given(body=ORDERS)
def test_generated_valid_bodies_are_accepted(
    create_order: OperationContract, loose_order: OperationContract, body: Any
) -> None:
    assert _send(create_order, body).body == body
    assert _send(loose_order, body).body == body  # the injected hardening adds no false positive


def _mutate(body: dict[str, Any], how: str) -> dict[str, Any]:
    bad = copy.deepcopy(body)
    if how == "extra_root":
        bad["is_admin"] = True
    elif how == "extra_nested":
        bad["lines"][0]["price"] = 0
    elif how == "drop_required":
        del bad["currency"]
    elif how == "wrong_type":
        bad["lines"][0]["qty"] = str(bad["lines"][0]["qty"])
    elif how == "out_of_range":
        bad["lines"][0]["qty"] = 100
    elif how == "bad_enum":
        bad["currency"] = "GBP"
    elif how == "bad_format":
        bad["customer"] = bad["customer"][:-1] + "z"
    elif how == "too_long":
        bad["note"] = "x" * 41
    return bad


DECLARED = {
    *ORDER["properties"],
    *LINE["properties"],
    *ORDER["properties"]["contact"]["properties"],
}
UNDECLARED = st.text(min_size=1, max_size=8).filter(lambda k: k not in DECLARED)
MUTATIONS = [
    "extra_root",
    "extra_nested",
    "drop_required",
    "wrong_type",
    "out_of_range",
    "bad_enum",
    "bad_format",
    "too_long",
]


@SETTINGS
@given(body=ORDERS, how=st.sampled_from(MUTATIONS))
def test_mutated_bodies_are_refused(
    create_order: OperationContract, loose_order: OperationContract, body: Any, how: str
) -> None:
    for op in (create_order, loose_order):
        with pytest.raises(ValidationFailed) as info:
            _send(op, _mutate(body, how))
        assert all(e["pointer"].startswith("/body") for e in info.value.extensions["errors"])


@SETTINGS
@given(
    body=ORDERS,
    junk=st.dictionaries(UNDECLARED, st.integers(), min_size=1, max_size=3),
)
def test_projection_removes_exactly_the_injected_fields(
    create_order: OperationContract, body: Any, junk: dict[str, int]
) -> None:
    polluted = copy.deepcopy(body)
    added = []
    for key, value in junk.items():
        target = polluted["lines"][0] if key[0] < "m" else polluted
        if key not in target:
            target[key] = value
            added.append(key)
    out = create_order.filter_response(201, "application/json", json.dumps(polluted).encode())
    assert json.loads(out.body) == body
    assert len(out.removed) == len(added)
    assert out.schema_errors == ()
