"""Schemas whose alternatives recurse: an invalid value is refused without listing its errors.

A tree of ``oneOf: [Text, Group]`` nodes is an ordinary document schema. ``is_valid`` stops
at the first failure, but listing the errors of an invalid tree explores both branches at
every level: 2^depth (a 522-byte body 15 levels deep took 11 s of CPU, the GIL held, before
its 400; the default depth cap allows 16). Such validators answer "does not match the
schema" instead; every other schema still gets its pointers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.contract import ContractLimits, OperationContract
from bastion.contract.schema import SchemaCompiler, unions_recurse
from bastion.errors import ValidationFailed
from tests.contract.contract_helpers import JSON, contract, minimal, write_spec

TREE = {
    "Node": {
        "oneOf": [{"$ref": "#/components/schemas/Text"}, {"$ref": "#/components/schemas/Group"}]
    },
    "Text": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": ["text"]},
            "text": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
        },
    },
    "Group": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": ["group"]},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
        },
    },
}
NODE = {"$ref": "#/components/schemas/Node"}


def _operation(
    tmp_path: Path, components: dict[str, Any], limits: ContractLimits | None = None
) -> OperationContract:
    content = {"application/json": {"schema": NODE}}
    paths = {
        "/tree": {
            "post": {
                "requestBody": {"required": True, "content": content},
                "responses": {"200": {"description": "ok", "content": content}},
            }
        }
    }
    doc = minimal(paths, components={"schemas": components})
    return contract(write_spec(tmp_path, doc), "POST", "/tree", limits)


def _tree(depth: int, leaf: dict[str, Any]) -> dict[str, Any]:
    node = leaf
    for _ in range(depth):
        node = {"type": "group", "children": [node]}
    return node


def test_an_invalid_deep_tree_is_refused_with_one_error(tmp_path: Path) -> None:
    op = _operation(tmp_path, TREE)
    body = json.dumps(_tree(15, {"type": "text", "text": 5})).encode()
    with pytest.raises(ValidationFailed) as info:
        op.validate_request(path_params={}, query_string=b"", headers=JSON, body=body)
    assert info.value.extensions["errors"] == [
        {"pointer": "/body", "detail": "does not match the schema"}
    ]
    valid = json.dumps(_tree(15, {"type": "text", "text": "leaf"})).encode()
    op.validate_request(path_params={}, query_string=b"", headers=JSON, body=valid)


def test_an_invalid_deep_tree_from_the_upstream_is_reported_alike(tmp_path: Path) -> None:
    op = _operation(tmp_path, TREE, ContractLimits(response_mode="monitor"))
    answer = json.dumps(_tree(15, {"type": "text", "text": 5})).encode()
    filtered = op.filter_response(200, "application/json", answer)
    assert filtered.schema_errors == ("/: does not match the schema",)


def _converted(components: dict[str, Any], schema: Any) -> dict[str, Any]:
    document = minimal({}, components={"schemas": components})
    return SchemaCompiler(document, "3.0", "request").document_for(schema)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


@pytest.mark.parametrize(
    ("components", "recurse"),
    [
        (TREE, True),
        # anyOf too, the branches inline
        (
            {
                "Node": {
                    "anyOf": [
                        {
                            "type": "object",
                            "properties": {"a": {"type": "array", "items": _ref("Node")}},
                        },
                        {
                            "type": "object",
                            "properties": {"b": {"type": "array", "items": _ref("Node")}},
                        },
                    ]
                }
            },
            True,
        ),
        # one branch recurses (a nullable link): each level is validated once
        (
            {
                "Node": {
                    "anyOf": [
                        {"type": "null"},
                        {"type": "object", "properties": {"next": _ref("Node")}},
                    ]
                }
            },
            False,
        ),
        # recursion without alternatives
        (
            {
                "Node": {
                    "type": "object",
                    "properties": {"kids": {"type": "array", "items": _ref("Node")}},
                }
            },
            False,
        ),
        # alternatives without recursion
        (
            {
                "Node": {
                    "oneOf": [
                        {"type": "string"},
                        {"type": "object", "properties": {"x": {"type": "integer"}}},
                    ]
                }
            },
            False,
        ),
    ],
)
def test_recursing_alternatives_are_found(components: dict[str, Any], recurse: bool) -> None:
    assert unions_recurse(_converted(components, _ref("Node"))) is recurse


def test_other_schemas_still_get_every_pointer(tmp_path: Path) -> None:
    components = {
        "Node": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "kids": {"type": "array", "items": _ref("Node")},
            },
        }
    }
    op = _operation(tmp_path, components)
    body = json.dumps({"name": 1, "kids": [{"name": 2}]}).encode()
    with pytest.raises(ValidationFailed) as info:
        op.validate_request(path_params={}, query_string=b"", headers=JSON, body=body)
    pointers = {e["pointer"] for e in info.value.extensions["errors"]}
    assert pointers == {"/body/name", "/body/kids/0/name"}
