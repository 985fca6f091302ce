"""Schemas composed with allOf, oneOf/anyOf and if/then/else, each way the contract reads them.

OpenAPI 3.0 ignores siblings of ``$ref``, so a property that needs a description wraps its
reference: ``{allOf: [{$ref: Id}], description: …}``. Only a flag on the property or on its
direct reference was read: a client could set a read-only ``id`` (mass assignment) and a
write-only ``password`` left in answers. Recursion through allOf lost the projection below
the first level; object parameters and forms composed with allOf were refused; what
``then`` declares was removed from valid answers (then a 502 for its ``required``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.contract import OperationContract
from bastion.errors import UnsupportedMediaType, ValidationFailed
from tests.contract.contract_helpers import JSON, contract, headers, minimal, write_spec


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


COMPONENTS = {
    "Filter": {
        "type": "object",
        "properties": {"limit": {"type": "integer"}, "name": {"type": "string"}},
    },
    "Wrapped": {"allOf": [_ref("Filter")]},
    "Tagged": {
        "allOf": [
            _ref("Filter"),
            {"properties": {"tags": {"type": "array", "items": {"type": "string"}}}},
        ]
    },
}


@pytest.mark.parametrize(
    ("style", "query"), [("deepObject", b"f[limit]=5&f[name]=a"), ("form", b"limit=5&name=a")]
)
def test_an_object_parameter_composed_with_allof_reads_every_branch(
    tmp_path: Path, style: str, query: bytes
) -> None:
    param = {"name": "f", "in": "query", "style": style, "explode": True, "schema": _ref("Wrapped")}
    paths = {"/x": {"get": {"parameters": [param], "responses": {"200": {"description": "ok"}}}}}
    op = contract(
        write_spec(tmp_path, minimal(paths, components={"schemas": COMPONENTS})), "GET", "/x"
    )
    result = op.validate_request(path_params={}, query_string=query, headers=JSON, body=None)
    assert result.query == {"f": {"limit": 5, "name": "a"}}


def test_a_form_body_composed_with_allof_reads_every_branch(tmp_path: Path) -> None:
    content = {"application/x-www-form-urlencoded": {"schema": _ref("Tagged")}}
    paths = {
        "/x": {
            "post": {
                "requestBody": {"content": content},
                "responses": {"200": {"description": "ok"}},
            }
        }
    }
    op = contract(
        write_spec(tmp_path, minimal(paths, components={"schemas": COMPONENTS})), "POST", "/x"
    )
    form = headers(("content-type", "application/x-www-form-urlencoded"))
    result = op.validate_request(
        path_params={}, query_string=b"", headers=form, body=b"limit=5&name=a&tags=x&tags=y"
    )
    assert result.body == {"limit": 5, "name": "a", "tags": ["x", "y"]}


def test_what_then_and_else_declare_is_kept_where_it_applies(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"kind": {"type": "string"}},
        "if": {"properties": {"kind": {"const": "card"}}},
        "then": {"properties": {"last4": {"type": "string"}}, "required": ["last4"]},
        "else": {"properties": {"iban": {"type": "string"}}},
    }
    content = {"application/json": {"schema": schema}}
    paths = {"/pay": {"get": {"responses": {"200": {"description": "ok", "content": content}}}}}
    op = contract(write_spec(tmp_path, minimal(paths, "3.1.0")), "GET", "/pay")

    def answer(body: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
        out = op.filter_response(200, "application/json", json.dumps(body).encode())
        return json.loads(out.body), out.removed

    assert answer({"kind": "card", "last4": "4242", "iban": "x"}) == (
        {"kind": "card", "last4": "4242"},
        ("/iban",),
    )
    assert answer({"kind": "bank", "last4": "4242", "iban": "x"}) == (
        {"kind": "bank", "iban": "x"},
        ("/last4",),
    )


def test_a_document_declared_for_any_media_type_is_not_passed_unchecked(tmp_path: Path) -> None:
    """``*/*`` with an object schema: a JSON body sent as text/plain skipped validation,
    and upstreams that decode bodies whatever their type (Go, Flask's force=True) read it."""
    schema = {"type": "object", "properties": {"role": {"type": "string", "enum": ["user"]}}}
    content = {"*/*": {"schema": schema}}
    paths = {
        "/x": {
            "post": {
                "requestBody": {"content": content},
                "responses": {"200": {"description": "ok"}},
            }
        }
    }
    op = contract(write_spec(tmp_path, minimal(paths)), "POST", "/x")
    body = json.dumps({"role": "admin"}).encode()
    with pytest.raises(UnsupportedMediaType):
        op.validate_request(
            path_params={},
            query_string=b"",
            headers=headers(("content-type", "text/plain")),
            body=body,
        )
    with pytest.raises(ValidationFailed):
        op.validate_request(path_params={}, query_string=b"", headers=JSON, body=body)
