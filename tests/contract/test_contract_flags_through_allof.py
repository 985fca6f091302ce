"""readOnly and writeOnly reached through ``allOf``: annotations of allOf apply to the value.

OpenAPI 3.0 ignores siblings of ``$ref``, so a property that needs a description wraps its
reference: ``{allOf: [{$ref: Id}], description: …}``. Only a flag on the property or on its
direct reference was read: a client could set a read-only ``id`` (mass assignment) and a
write-only ``password`` left in answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.contract import OperationContract
from bastion.errors import ValidationFailed
from tests.contract.contract_helpers import JSON, contract, minimal, write_spec


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


WRAPPINGS = [
    pytest.param(lambda name: {"allOf": [_ref(name)], "description": "wrapped"}, id="allOf-ref"),
    pytest.param(lambda name: {"allOf": [{"allOf": [_ref(name)]}]}, id="allOf-allOf-ref"),
    pytest.param(lambda name: _ref(f"{name}Alias"), id="ref-to-wrapping"),
]


def _users(tmp_path: Path, wrap: Any) -> OperationContract:
    components = {
        "Id": {"type": "string", "readOnly": True},
        "IdAlias": {"allOf": [_ref("Id")]},
        "Secret": {"type": "string", "writeOnly": True},
        "SecretAlias": {"allOf": [_ref("Secret")]},
        "User": {
            "type": "object",
            "properties": {
                "id": wrap("Id"),
                "password": wrap("Secret"),
                "name": {"type": "string"},
            },
        },
    }
    content = {"application/json": {"schema": _ref("User")}}
    paths = {
        "/users": {
            "post": {
                "requestBody": {"required": True, "content": content},
                "responses": {"201": {"description": "created", "content": content}},
            }
        }
    }
    spec = write_spec(tmp_path, minimal(paths, components={"schemas": components}))
    return contract(spec, "POST", "/users")


@pytest.mark.parametrize("wrap", WRAPPINGS)
def test_a_wrapped_read_only_property_is_refused_in_requests(tmp_path: Path, wrap: Any) -> None:
    op = _users(tmp_path, wrap)
    body = json.dumps({"id": "chosen-by-the-client", "name": "a"}).encode()
    with pytest.raises(ValidationFailed) as info:
        op.validate_request(path_params={}, query_string=b"", headers=JSON, body=body)
    assert [e["pointer"] for e in info.value.extensions["errors"]] == ["/body/id"]
    ok = json.dumps({"name": "a", "password": "a long passphrase"}).encode()
    op.validate_request(path_params={}, query_string=b"", headers=JSON, body=ok)


@pytest.mark.parametrize("wrap", WRAPPINGS)
def test_a_wrapped_write_only_property_leaves_answers(tmp_path: Path, wrap: Any) -> None:
    op = _users(tmp_path, wrap)
    answer = json.dumps({"id": "u-1", "password": "hunter2", "name": "a"}).encode()
    out = op.filter_response(201, "application/json", answer)
    assert json.loads(out.body) == {"id": "u-1", "name": "a"}
    assert out.removed == ("/password",)


def test_an_empty_properties_map_declares_no_field_on_either_side(tmp_path: Path) -> None:
    """``{type: object, properties: {}}`` was closed for requests (nothing may be sent) and
    free-form for answers (everything left); an answer now keeps nothing undeclared."""
    meta = {"type": "object", "properties": {}}
    schema = {"type": "object", "properties": {"meta": meta, "name": {"type": "string"}}}
    content = {"application/json": {"schema": schema}}
    paths = {
        "/things": {
            "post": {
                "requestBody": {"required": True, "content": content},
                "responses": {"200": {"description": "ok", "content": content}},
            }
        }
    }
    op = contract(write_spec(tmp_path, minimal(paths)), "POST", "/things")
    body = json.dumps({"meta": {"internal": 1}, "name": "a"}).encode()
    with pytest.raises(ValidationFailed) as info:
        op.validate_request(path_params={}, query_string=b"", headers=JSON, body=body)
    assert [e["pointer"] for e in info.value.extensions["errors"]] == ["/body/meta/internal"]
    out = op.filter_response(200, "application/json", body)
    assert json.loads(out.body) == {"meta": {}, "name": "a"}
    assert out.removed == ("/meta/internal",)


@pytest.mark.parametrize(
    "components",
    [
        # a self-reference wrapped in allOf (to give it a description)
        {
            "Node": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "parent": {"allOf": [_ref("Node")], "description": "the parent"},
                },
            }
        },
        # a recursive schema composed with allOf
        {
            "Base": {"type": "object", "properties": {"id": {"type": "integer"}}},
            "Node": {
                "allOf": [
                    _ref("Base"),
                    {"type": "object", "properties": {"parent": _ref("Node")}},
                ]
            },
        },
    ],
)
def test_recursion_through_allof_is_projected_at_every_level(
    tmp_path: Path, components: dict[str, Any]
) -> None:
    """The plan of a reference still being built was merged as "keep whole": undeclared
    fields left from the second level down (a manager's salary and ssn)."""
    content = {"application/json": {"schema": _ref("Node")}}
    paths = {"/nodes": {"get": {"responses": {"200": {"description": "ok", "content": content}}}}}
    op = contract(
        write_spec(tmp_path, minimal(paths, components={"schemas": components})), "GET", "/nodes"
    )
    answer = {"id": 1, "ssn": "x", "parent": {"id": 2, "ssn": "y", "parent": {"id": 3, "ssn": "z"}}}
    out = op.filter_response(200, "application/json", json.dumps(answer).encode())
    assert json.loads(out.body) == {"id": 1, "parent": {"id": 2, "parent": {"id": 3}}}
    assert out.removed == ("/ssn", "/parent/ssn", "/parent/parent/ssn")
