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
    ],
)
def test_jsonpath_subset(path: str, values: list[object]) -> None:
    assert [node for _, _, node in select(DOC, path)] == values


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
