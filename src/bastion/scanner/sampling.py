"""Realistic, valid sample values from JSON Schema, and ``$ref`` resolution.

Schemathesis generates the varied data; the crawl needs one plausible value per field
(the spec's example, default or first enum value first) so that real objects get created.
"""

from __future__ import annotations

from typing import Any

__all__ = ["resolve", "sample", "schema_properties"]

_MAX_DEPTH = 24


def resolve(node: Any, root: dict[str, Any], depth: int = 0) -> Any:
    """Inline local ``$ref`` pointers (``#/...``); cycles stop at a fixed depth."""
    if depth > _MAX_DEPTH:
        return {}
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part, {}) if isinstance(target, dict) else {}
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return resolve(merged, root, depth + 1)
        return {k: resolve(v, root, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, root, depth + 1) for v in node]
    return node


def _first(schema: dict[str, Any]) -> dict[str, Any]:
    for key in ("allOf", "oneOf", "anyOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            if key == "allOf":
                merged: dict[str, Any] = {}
                for option in options:
                    if isinstance(option, dict):
                        merged = {
                            **merged,
                            **option,
                            "properties": {
                                **merged.get("properties", {}),
                                **option.get("properties", {}),
                            },
                        }
                return merged
            first = options[0]
            return first if isinstance(first, dict) else {}
    return schema


def schema_properties(schema: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(schema, dict):
        return {}
    props = _first(schema).get("properties")
    return (
        {k: v for k, v in props.items() if isinstance(v, dict)} if isinstance(props, dict) else {}
    )


def _schema_type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and "properties" in schema:
        kind = "object"
    return kind if isinstance(kind, str) else None


_FORMATS = {
    "email": "scanner@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "hostname": "example.com",
}


def sample(schema: Any, *, writing: bool = True, depth: int = 0) -> Any:
    """One valid value for ``schema``; read-only properties are left out when ``writing``."""
    if not isinstance(schema, dict) or depth > 8:
        return "bastion"
    schema = _first(schema)
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = _schema_type(schema)
    if kind == "object":
        out = {}
        for name, sub in schema_properties(schema).items():
            if writing and sub.get("readOnly"):
                continue
            if not writing and sub.get("writeOnly"):
                continue
            out[name] = sample(sub, writing=writing, depth=depth + 1)
        return out
    if kind == "array":
        return [sample(schema.get("items", {}), writing=writing, depth=depth + 1)]
    if kind == "integer":
        low = schema.get("minimum", 1)
        return int(low) if isinstance(low, int | float) else 1
    if kind == "number":
        low = schema.get("minimum", 1.5)
        return float(low) if isinstance(low, int | float) else 1.5
    if kind == "boolean":
        return True
    text = _FORMATS.get(str(schema.get("format", "")), "bastion")
    min_length = schema.get("minLength", 0)
    if isinstance(min_length, int) and len(text) < min_length:
        text = text + "x" * (min_length - len(text))
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and len(text) > max_length:
        text = text[: max(max_length, 1)]
    return text
