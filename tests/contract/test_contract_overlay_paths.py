"""The JSONPath subset used by overlays, and the package's public surface."""

from __future__ import annotations

import pytest

import bastion.contract
from bastion.contract.overlay import select

DOC = {
    "paths": {
        "/a": {"get": {"x": 1}, "post": {"x": 2}},
        "/b/{id}": {"get": {"x": 3}},
    },
    "list": [{"type": "string", "v": 1}, {"type": "integer", "v": 2}, {"v": 3}],
}


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("$.paths['/a'].get.x", [1]),
        ('$.paths["/b/{id}"].get', [{"x": 3}]),
        ("$.paths.*.get.x", [1, 3]),
        ("$.paths[*].post", [{"x": 2}]),
        ("$..x", [1, 2, 3]),
        ("$.list[1].v", [2]),
        ("$.list[-1].v", [3]),
        ("$.list[?(@.type == 'string')].v", [1]),
        ("$.list[?@.type != 'string'].v", [2, 3]),
        ("$.list[?(@.type)].v", [1, 2]),
        ("$.nope", []),
        # RFC 9535: an index out of range selects nothing (it wrapped around before)
        ("$.list[3].v", []),
        ("$.list[5].v", []),
        ("$.list[-4].v", []),
        ("$.list[-3].v", [1]),
        # a node reached twice by nested `..` is selected once
        ("$..list..v", [1, 2, 3]),
        ("$..paths..get", [{"x": 1}, {"x": 3}]),
    ],
)
def test_jsonpath_subset(path: str, values: list[object]) -> None:
    assert [node for _, _, node in select(DOC, path)] == values


def test_an_overlay_action_on_a_node_reached_twice_applies_once() -> None:
    from bastion.contract.overlay import apply_overlay

    # `..properties` selects both objects; `..enum` reaches b's enum from each of them
    doc = {"s": {"properties": {"a": {"properties": {"b": {"enum": ["1", "2", "3"]}}}}}}
    overlay = {
        "overlay": "1.0.0",
        "actions": [
            {"target": "$..properties..enum", "update": "c"},
            {"target": "$..properties..enum[0]", "remove": True},
        ],
    }
    apply_overlay(doc, overlay, location="overlay.yaml")
    assert doc["s"]["properties"]["a"]["properties"]["b"]["enum"] == ["2", "3", "c"]


@pytest.mark.parametrize("path", ["paths", "$.a[", "$.a[?(@.x ~ 1)]", "$.a b"])
def test_unsupported_jsonpath_is_refused(path: str) -> None:
    with pytest.raises(ValueError):
        select(DOC, path)


def test_public_api() -> None:
    assert sorted(bastion.contract.__all__) == [
        "ApiSpec",
        "ContractLimits",
        "FilteredResponse",
        "Operation",
        "OperationContract",
        "ResponseContractViolation",
        "SensitiveFinding",
        "ValidatedRequest",
        "compile_operation",
        "compile_spec",
        "deprecation_headers",
        "load_spec",
    ]
    for name in bastion.contract.__all__:
        assert hasattr(bastion.contract, name)
