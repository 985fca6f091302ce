"""Hypothesis strategies for VALID requests, drawn from the demo shop's own OpenAPI document.

Objects and arrays are composed here and leaves come from hypothesis-jsonschema (0.23.1
cannot draw objects with the pinned Hypothesis). ``readOnly`` properties are never drawn
(a client must not send them); ``writeOnly`` ones are. ``allOf`` branches are merged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from bastion.contract import load_spec
from bastion.demo import SHOP_OPENAPI_PATH

SHOP_DOC: Mapping[str, Any] = load_spec(SHOP_OPENAPI_PATH).raw
_ANNOTATIONS = frozenset({"readOnly", "writeOnly", "examples", "example", "description"})


def resolve(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Follow local ``$ref`` and merge sibling keywords (3.1 allows ``$ref`` + siblings)."""
    out = dict(schema)
    while "$ref" in out:
        ref = str(out.pop("$ref"))
        target: Any = SHOP_DOC
        for token in ref.removeprefix("#/").split("/"):
            target = target[token.replace("~1", "/").replace("~0", "~")]
        out = {**target, **out}
    if "allOf" in out:
        merged: dict[str, Any] = {k: v for k, v in out.items() if k != "allOf"}
        for branch in out["allOf"]:
            part = resolve(branch)
            merged.setdefault("properties", {}).update(part.get("properties", {}))
            merged["required"] = sorted(
                set(merged.get("required", ())) | set(part.get("required", ()))
            )
            for key, value in part.items():
                if key not in ("properties", "required"):
                    merged.setdefault(key, value)
        out = merged
    return out


def request_schema(name: str) -> dict[str, Any]:
    return resolve({"$ref": f"#/components/schemas/{name}"})


def valid_value(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values a client may send for ``schema`` (request side)."""
    resolved = resolve(schema)
    kind = resolved.get("type")
    if kind == "object" or "properties" in resolved:
        props = {
            name: resolve(sub)
            for name, sub in resolved.get("properties", {}).items()
            if not resolve(sub).get("readOnly")
        }
        required = set(resolved.get("required", ())) & set(props)
        fixed = {k: valid_value(v) for k, v in props.items() if k in required}
        optional = {k: valid_value(v) for k, v in props.items() if k not in required}
        objects = st.fixed_dictionaries(fixed, optional=optional)
        minimum = int(resolved.get("minProperties", 0))
        return objects.filter(lambda o: len(o) >= minimum) if minimum else objects
    if kind == "array":
        return st.lists(
            valid_value(resolved["items"]),
            min_size=int(resolved.get("minItems", 0)),
            max_size=min(int(resolved.get("maxItems", 5)), 5),
        )
    leaf = {k: v for k, v in resolved.items() if k not in _ANNOTATIONS}
    return from_schema(leaf)


def path_value(schema_name: str) -> st.SearchStrategy[str]:
    """A path parameter matching its pattern, percent-encoded as one segment."""
    return from_schema(request_schema(schema_name)).map(lambda v: quote(str(v), safe=""))


def order_total(body: Mapping[str, Any]) -> float:
    return float(sum(i["quantity"] * i["unit_price"] for i in body.get("items", ())))


#: ``OrderCreate`` allows 50 lines of 100 x 100 000 (5e8); ``Money`` now admits that (it once
#: did not: ``test_order_total_above_money_maximum_is_answered``). The generated bodies stay
#: small anyway, so the shared shop's listings stay small.
MONEY_MAX = 100_000_000
LOGIN = valid_value(request_schema("LoginRequest"))
REGISTRATION = valid_value(request_schema("UserRegistration"))
USER_UPDATE = valid_value(request_schema("UserUpdate"))
ORDER_CREATE = valid_value(request_schema("OrderCreate")).filter(
    lambda b: order_total(b) <= MONEY_MAX
)
ORDER_UPDATE = valid_value(request_schema("OrderUpdate")).filter(
    lambda b: order_total(b) <= MONEY_MAX
)
USER_ID = path_value("UserIdValue")
ORDER_ID = path_value("OrderIdValue")
