"""The raw-text prefilter may say "maybe" too often, never "no" when the scanner would report.

``values_may_hold_secrets`` decides whether a response's strings are scanned at all, so it
must be a superset of :func:`value_kind` for every way JSON can spell a string.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bastion.contract.sensitive import (
    Scanner,
    keys_are_harmless,
    value_kind,
    values_may_hold_secrets,
)


def _luhn_complete(digits: str) -> str:
    for check in "0123456789":
        candidate = digits + check
        total = 0
        for index, char in enumerate(reversed(candidate)):
            value = int(char) * (2 if index % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


_B64 = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=4)
jwts = st.builds(lambda a, b, c: f"eyJ{a}.eyJ{b}.{c}", _B64, _B64, _B64)
cards = st.builds(
    lambda first, rest, sep: sep.join(
        _luhn_complete(first + rest)[i : i + 4] for i in range(0, 16, 4)
    ),
    st.sampled_from("3456"),
    st.text("0123456789", min_size=14, max_size=14),
    st.sampled_from(["", " ", "-"]),
)
aws = st.builds(
    lambda p, r: p + r,
    st.sampled_from(["AKIA", "ASIA"]),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=16, max_size=16),
)
pems = st.builds(
    lambda kind, body: f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----",
    st.sampled_from(["", "RSA ", "EC "]),
    _B64,
)
secrets = st.one_of(jwts, cards, aws, pems)
documents = st.recursive(
    st.none() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _place(document: Any, secret: str, as_key: bool) -> Any:
    return {"wrapper": document, ("k" if not as_key else secret): secret if not as_key else 1}


@settings(max_examples=400, deadline=None)
@given(documents, secrets, st.booleans(), st.booleans(), st.sampled_from([None, 2]))
def test_every_reportable_value_is_seen_in_the_raw_text(
    document: Any, secret: str, ascii_only: bool, as_key: bool, indent: int | None
) -> None:
    assert value_kind(secret), secret
    text = json.dumps(
        _place(document, secret, as_key), ensure_ascii=ascii_only, indent=indent
    ).encode()
    if not as_key:
        walk = Scanner()
        walk.scan(json.loads(text))
        assert walk.findings
    assert values_may_hold_secrets(text)


@settings(max_examples=300, deadline=None)
@given(documents, st.booleans())
def test_no_maybe_is_lost_on_ordinary_documents(document: Any, ascii_only: bool) -> None:
    """Whatever the scanner reports on a random document, the prefilters announced."""
    text = json.dumps(document, ensure_ascii=ascii_only).encode()
    walk = Scanner()
    walk.scan(json.loads(text))
    values = any(f.kind != "field_name" for f in walk.findings)
    names = any(f.kind == "field_name" for f in walk.findings)
    if values:
        assert values_may_hold_secrets(text)
    if names:
        harmless = True
        stack = [json.loads(text)]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                harmless = harmless and keys_are_harmless(tuple(node))
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        assert not harmless


def test_clean_text_is_not_a_maybe() -> None:
    body = json.dumps(
        {"id": "3f1c9a52-8d7e-4b1a-9c55-0e6f2a7b8c91", "phone": "+44 20 7946 0958", "n": 1}
    ).encode()
    assert not values_may_hold_secrets(body)


# -- the projection's key check: what the walk flags, the full scan would find ------------

_SCHEMAS: dict[str, Any] = {
    "Line": {
        "type": "object",
        "properties": {
            "sku": {"type": "string"},
            "options": {"type": "object"},
            "password": {"type": "string", "writeOnly": True},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Order": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
            "meta": {"type": "object", "additionalProperties": {"type": "object"}},
            "extra": {"type": "object", "additionalProperties": True},
            "labels": {
                "type": "object",
                "patternProperties": {"^x-": {"type": "object", "properties": {"a": {}}}},
            },
            "child": {"$ref": "#/components/schemas/Order"},
        },
    },
}
_PLAIN_KEYS = ["id", "sku", "lines", "options", "meta", "extra", "labels", "x-a", "a", "child"]
_KEYS = st.sampled_from([*_PLAIN_KEYS, "tags", "password", "api_key", "Session-Id", "pin", "n"])
_VALUES = st.none() | st.integers() | st.sampled_from(["ok", "x"]) | secrets
response_documents = st.recursive(
    _VALUES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=14,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_KEYS, response_documents, max_size=6), st.booleans())
@example({"lines": [{"sku": "a", "options": {"a": 1, "n": 2, "pin": 3}}]}, False)
@example({"extra": {"n": {"id": 1, "a": [{"x-a": 2, "sku": 1, "Session-Id": 3}]}}}, False)
@example({"lines": [{"tags": ["x"], "password": "p"}], "child": {"meta": {"a": {"n": 1}}}}, True)
def test_a_response_passed_on_reports_what_the_full_scan_finds(
    document: dict[str, Any], indent: bool
) -> None:
    """filter_json in monitor mode (every answer passed on): its findings are the scan's.

    Valid answers are settled by the prefilters and the walk's key check; invalid ones
    (the walk does not enter a value where the schema says string) are scanned in full.
    """
    from bastion.contract.compiled import ContractLimits
    from bastion.contract.projection import PlanBuilder
    from bastion.contract.responses import ResponseRule, filter_json
    from bastion.contract.schema import SchemaCompiler

    spec = {"openapi": "3.1.0", "components": {"schemas": _SCHEMAS}}
    compiler = SchemaCompiler(spec, "3.1", "response")
    schema = {"$ref": "#/components/schemas/Order"}
    rule = ResponseRule(PlanBuilder(spec, compiler).build(schema), compiler.validator_for(schema))
    body = json.dumps(document, indent=2 if indent else None).encode()
    limits = ContractLimits(response_mode="monitor")
    result = filter_json(limits, 200, "application/json", body, {"application/json": rule}, False)
    full = Scanner()
    full.scan(json.loads(body))
    assert {(f.pointer, f.kind) for f in result.sensitive} == {
        (f.pointer, f.kind) for f in full.findings
    }
