"""Parameters: every style/explode combination, coercion, pollution and unknown names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.contract import ContractLimits, OperationContract
from bastion.errors import ValidationFailed
from bastion.types import Headers
from tests.contract.contract_helpers import contract, headers, minimal, write_spec

SCHEMAS: dict[str, dict[str, Any]] = {
    "primitive": {"type": "integer", "maximum": 1000},
    "array": {"type": "array", "items": {"type": "integer"}},
    "object": {
        "type": "object",
        "properties": {"R": {"type": "string"}, "n": {"type": "integer"}},
    },
}
EXPECTED = {"primitive": 5, "array": [3, 4, 5], "object": {"R": "admin", "n": 7}}

# (location, style, explode, shape, raw request value)
CASES = [
    ("path", "simple", False, "primitive", "5"),
    ("path", "simple", False, "array", "3,4,5"),
    ("path", "simple", False, "object", "R,admin,n,7"),
    ("path", "simple", True, "primitive", "5"),
    ("path", "simple", True, "array", "3,4,5"),
    ("path", "simple", True, "object", "R=admin,n=7"),
    ("path", "label", False, "primitive", ".5"),
    ("path", "label", False, "array", ".3,4,5"),
    ("path", "label", False, "object", ".R,admin,n,7"),
    ("path", "label", True, "primitive", ".5"),
    ("path", "label", True, "array", ".3.4.5"),
    ("path", "label", True, "object", ".R=admin.n=7"),
    ("path", "matrix", False, "primitive", ";id=5"),
    ("path", "matrix", False, "array", ";id=3,4,5"),
    ("path", "matrix", False, "object", ";id=R,admin,n,7"),
    ("path", "matrix", True, "primitive", ";id=5"),
    ("path", "matrix", True, "array", ";id=3;id=4;id=5"),
    ("path", "matrix", True, "object", ";R=admin;n=7"),
    ("query", "form", True, "primitive", "id=5"),
    ("query", "form", True, "array", "id=3&id=4&id=5"),
    ("query", "form", True, "object", "R=admin&n=7"),
    ("query", "form", False, "primitive", "id=5"),
    ("query", "form", False, "array", "id=3,4,5"),
    ("query", "form", False, "object", "id=R,admin,n,7"),
    ("query", "spaceDelimited", False, "array", "id=3%204%205"),
    ("query", "spaceDelimited", False, "object", "id=R%20admin%20n%207"),
    ("query", "pipeDelimited", False, "array", "id=3|4|5"),
    ("query", "pipeDelimited", False, "object", "id=R%7Cadmin%7Cn%7C7"),
    ("query", "spaceDelimited", True, "array", "id=3&id=4&id=5"),
    ("query", "pipeDelimited", True, "array", "id=3&id=4&id=5"),
    ("query", "deepObject", True, "object", "id%5BR%5D=admin&id[n]=7"),
    ("header", "simple", False, "primitive", "5"),
    ("header", "simple", False, "array", "3, 4, 5"),
    ("header", "simple", False, "object", "R,admin,n,7"),
    ("header", "simple", True, "primitive", "5"),
    ("header", "simple", True, "array", "3,4,5"),
    ("header", "simple", True, "object", "R=admin,n=7"),
    ("cookie", "form", False, "primitive", "id=5"),
    ("cookie", "form", False, "array", "id=3,4,5"),
    ("cookie", "form", False, "object", "id=R,admin,n,7"),
    ("cookie", "form", True, "primitive", "id=5"),
    ("cookie", "form", True, "array", "id=3; id=4; id=5"),
    ("cookie", "form", True, "object", "R=admin; n=7"),
]
NAME = {"path": "id", "query": "id", "header": "X-Id", "cookie": "id"}


def _operation(
    tmp_path: Path,
    location: str,
    style: str,
    explode: bool,
    shape: str,
    limits: ContractLimits | None = None,
) -> OperationContract:
    param = {
        "name": NAME[location],
        "in": location,
        "required": True,
        "style": style,
        "explode": explode,
        "schema": SCHEMAS[shape],
    }
    template = "/items/{id}" if location == "path" else "/items"
    doc = minimal(
        {template: {"get": {"parameters": [param], "responses": {"200": {"description": "ok"}}}}}
    )
    return contract(write_spec(tmp_path, doc), "GET", template, limits)


def _call(op: OperationContract, location: str, raw: str) -> Any:
    path_params = {"id": raw} if location == "path" else {}
    query = raw.encode() if location == "query" else b""
    pairs: list[tuple[str, str]] = []
    if location == "header":
        pairs.append(("x-id", raw))
    if location == "cookie":
        pairs.append(("cookie", raw))
    return op.validate_request(
        path_params=path_params, query_string=query, headers=headers(*pairs), body=None
    )


@pytest.mark.parametrize(("location", "style", "explode", "shape", "raw"), CASES)
def test_style_is_deserialised_and_coerced(
    tmp_path: Path, location: str, style: str, explode: bool, shape: str, raw: str
) -> None:
    op = _operation(tmp_path, location, style, explode, shape)
    result = _call(op, location, raw)
    values = {
        "path": result.path,
        "query": result.query,
        "header": result.headers,
        "cookie": result.cookies,
    }[location]
    assert values == {NAME[location]: EXPECTED[shape]}


@pytest.mark.parametrize(
    ("location", "style", "explode", "shape", "raw"),
    [
        ("path", "label", False, "primitive", "5"),
        ("path", "matrix", False, "primitive", ";other=5"),
        ("path", "simple", False, "object", "R,admin,n"),
        ("path", "simple", True, "primitive", "abc"),
        ("path", "simple", False, "array", "3,x,5"),
        ("query", "form", True, "primitive", "id=5000"),
        ("query", "form", True, "primitive", "id=5&id=6"),
        ("query", "deepObject", True, "object", "id[n]=seven"),
        ("header", "simple", True, "object", "R:admin"),
        ("cookie", "form", False, "primitive", "id=5; id=6"),
    ],
)
def test_bad_values_are_400_with_a_pointer(
    tmp_path: Path, location: str, style: str, explode: bool, shape: str, raw: str
) -> None:
    op = _operation(tmp_path, location, style, explode, shape)
    with pytest.raises(ValidationFailed) as info:
        _call(op, location, raw)
    pointers = [e["pointer"] for e in info.value.extensions["errors"]]
    assert pointers
    assert all(p.startswith(f"/{location}/{NAME[location]}") for p in pointers)


def _number_query(tmp_path: Path, schema: dict[str, Any]) -> OperationContract:
    param = {"name": "max", "in": "query", "required": True, "schema": schema}
    doc = minimal(
        {"/items": {"get": {"parameters": [param], "responses": {"200": {"description": "ok"}}}}}
    )
    return contract(write_spec(tmp_path, doc), "GET", "/items")


@pytest.mark.parametrize("raw", ["100.00000000000000001", "99.999999999999999999", "1e-400"])
def test_a_number_parameter_a_double_cannot_hold_is_400(tmp_path: Path, raw: str) -> None:
    """Read as a double, 100.00000000000000001 would pass ``maximum: 100`` as 100.0 while
    the upstream reads the query string's own text."""
    op = _number_query(tmp_path, {"type": "number", "maximum": 100})
    with pytest.raises(ValidationFailed) as info:
        op.validate_request(
            path_params={}, query_string=f"max={raw}".encode(), headers=headers(), body=None
        )
    assert info.value.extensions["errors"] == [
        {
            "pointer": "/query/max",
            "detail": f"number {raw} cannot be read exactly as a 64-bit float",
        }
    ]
    for exact in ("100", "100.0", "1E2", "0.1", "99.99"):
        result = op.validate_request(
            path_params={}, query_string=f"max={exact}".encode(), headers=headers(), body=None
        )
        assert result.query == {"max": float(exact) if "." in exact or "E" in exact else 100}
    # Where a string is allowed too, such a value is the string it is.
    either = _number_query(tmp_path, {"anyOf": [{"type": "number"}, {"type": "string"}]})
    result = either.validate_request(
        path_params={}, query_string=b"max=100.00000000000000001", headers=headers(), body=None
    )
    assert result.query == {"max": "100.00000000000000001"}


def test_missing_required_parameter(tmp_path: Path) -> None:
    op = _operation(tmp_path, "query", "form", True, "primitive")
    with pytest.raises(ValidationFailed) as info:
        _call(op, "query", "")
    assert info.value.extensions["errors"] == [
        {"pointer": "/query/id", "detail": "required parameter is missing"}
    ]


def test_unknown_query_parameter_is_refused_unless_relaxed(tmp_path: Path) -> None:
    op = _operation(tmp_path, "query", "form", True, "primitive")
    with pytest.raises(ValidationFailed) as info:
        _call(op, "query", "id=5&debug=true&debug=1")
    assert info.value.extensions["errors"] == [
        {"pointer": "/query/debug", "detail": "unknown parameter"}
    ]
    relaxed = _operation(
        tmp_path, "query", "form", True, "primitive", ContractLimits(strict_properties=False)
    )
    assert _call(relaxed, "query", "id=5&debug=true").query == {"id": 5}


def test_query_must_decode_to_utf8(tmp_path: Path) -> None:
    op = _operation(tmp_path, "query", "form", True, "primitive")
    with pytest.raises(ValidationFailed) as info:
        _call(op, "query", "id=%ff%fe")
    assert info.value.extensions["errors"][0]["pointer"] == "/query"


def test_json_content_parameter_and_ignored_headers(tmp_path: Path) -> None:
    doc = minimal(
        {
            "/search": {
                "get": {
                    "parameters": [
                        {
                            "name": "filter",
                            "in": "query",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"color": {"type": "string"}},
                                    }
                                }
                            },
                        },
                        {
                            "name": "Authorization",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        }
    )
    op = contract(write_spec(tmp_path, doc), "GET", "/search")
    ok = op.validate_request(
        path_params={},
        query_string=b"filter=%7B%22color%22%3A%22red%22%7D",
        headers=Headers([]),
        body=None,
    )
    assert ok.query == {"filter": {"color": "red"}}
    with pytest.raises(ValidationFailed) as info:
        op.validate_request(
            path_params={},
            query_string=b'filter={"color":"red","x":1}',
            headers=Headers([]),
            body=None,
        )
    assert info.value.extensions["errors"] == [
        {"pointer": "/query/filter/x", "detail": "unknown property"}
    ]


def test_string_parameters_get_the_length_cap(tmp_path: Path) -> None:
    doc = minimal(
        {
            "/s": {
                "get": {
                    "parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        }
    )
    op = contract(write_spec(tmp_path, doc), "GET", "/s", ContractLimits(max_string_length=10))
    assert op.validate_request(
        path_params={}, query_string=b"q=0123456789", headers=Headers([]), body=None
    ).query == {"q": "0123456789"}
    with pytest.raises(ValidationFailed):
        op.validate_request(
            path_params={}, query_string=b"q=0123456789A", headers=Headers([]), body=None
        )


def test_json_parameter_with_lone_surrogate_is_400(tmp_path: Path) -> None:
    doc = minimal(
        {
            "/s": {
                "get": {
                    "parameters": [
                        {
                            "name": "filter",
                            "in": "query",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        }
    )
    op = contract(write_spec(tmp_path, doc), "GET", "/s")
    with pytest.raises(ValidationFailed) as info:
        op.validate_request(
            path_params={}, query_string=b'filter={"\\ud800":1}', headers=Headers([]), body=None
        )
    assert info.value.extensions["errors"] == [
        {"pointer": "/query/filter", "detail": "invalid JSON: unpaired UTF-16 surrogate escape"}
    ]


def test_path_value_with_escaped_invalid_utf8_is_400(tmp_path: Path) -> None:
    op = _operation(tmp_path, "path", "simple", False, "primitive")
    raw = b"5\xff".decode("utf-8", "surrogateescape")  # how some routers hand over bad bytes
    with pytest.raises(ValidationFailed) as info:
        _call(op, "path", raw)
    assert info.value.extensions["errors"] == [
        {"pointer": "/path/id", "detail": "path segment is not valid UTF-8"}
    ]


def _cookie_op(tmp_path: Path) -> OperationContract:
    param = {
        "name": "session",
        "in": "cookie",
        "required": True,
        "schema": {"type": "string", "pattern": "^[a-f0-9]{8}$"},
    }
    doc = minimal(
        {"/items": {"get": {"parameters": [param], "responses": {"200": {"description": "ok"}}}}}
    )
    return contract(write_spec(tmp_path, doc), "GET", "/items")


@pytest.mark.parametrize(
    "cookie",
    [
        "%73ession=x'--; session=deadbeef",  # PHP decodes names and keeps the first copy
        "session=deadbeef; %73ession=x'--",
        "session=deadbeef; session%2Eid=1; session_id=2",  # not declared: no matter
    ],
)
def test_a_declared_cookie_sent_under_another_spelling_is_refused(
    tmp_path: Path, cookie: str
) -> None:
    op = _cookie_op(tmp_path)
    call = {"path_params": {}, "query_string": b"", "body": None}
    if "session_id" in cookie:
        assert op.validate_request(headers=headers(("cookie", cookie)), **call).cookies == {
            "session": "deadbeef"
        }
        return
    with pytest.raises(ValidationFailed) as info:
        op.validate_request(headers=headers(("cookie", cookie)), **call)
    assert info.value.extensions["errors"] == [
        {"pointer": "/cookie", "detail": "cookie 'session' is sent under two spellings of its name"}
    ]


@pytest.mark.parametrize("query", [b"id=5;debug=1", b"id=5;id=6", b"id=5;"])
def test_a_semicolon_read_as_a_separator_elsewhere_is_refused(tmp_path: Path, query: bytes) -> None:
    """Rack 2, Go before 1.17 and parse_qs before Python 3.9.2 split on ';' too: the
    upstream would read a parameter (or a value) the contract never checked."""
    op = _operation(tmp_path, "query", "form", True, "primitive")
    with pytest.raises(ValidationFailed) as info:
        _call(op, "query", query.decode())
    assert info.value.extensions["errors"][0]["pointer"] == "/query"
    assert "%3B" in info.value.extensions["errors"][0]["detail"]
    assert _call(op, "query", "id=5").query == {"id": 5}
