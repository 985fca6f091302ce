"""Realistic, valid sample values from JSON Schema, and ``$ref`` resolution.

Schemathesis generates the varied data; the crawl needs one plausible value per field
(the spec's example, default or first enum value first) so that real objects get created.
"""

from __future__ import annotations

import secrets
from typing import Any

from bastion.scanner.pattern_sample import matching_string

__all__ = ["BUNDLE_KEY", "resolve", "sample", "schema_properties", "unique_tag"]

_MAX_DEPTH = 64  # nesting of plain JSON nodes
_MAX_REFS = 24  # $ref hops on one branch


BUNDLE_KEY = "x-bundled"
_BUNDLE_PREFIX = "#/" + BUNDLE_KEY + "/"


def _lookup(ref: str, root: dict[str, Any], bundle: dict[str, Any]) -> Any:
    if ref.startswith(_BUNDLE_PREFIX) and bundle:
        return bundle.get(ref[len(_BUNDLE_PREFIX) :], {})
    target: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return target


def resolve(
    node: Any,
    root: dict[str, Any],
    depth: int = 0,
    *,
    bundle: dict[str, Any] | None = None,
    chain: tuple[str, ...] = (),
) -> Any:
    """Inline local ``$ref`` pointers (``#/...``); a cycle resolves to ``{}``.

    Schemathesis 4 hands schemas over *bundled*: ``{"$ref": "#/x-bundled/schema1",
    "x-bundled": {"schema1": {...}, "schema2": {...}}}``, where nested ``$ref``s point into
    the ``x-bundled`` map the schema carries, not into the document. Those are resolved
    against the bundle (inherited by every node below it); the bundle itself is dropped from
    the result.
    """
    if depth > _MAX_DEPTH:
        return {}
    if isinstance(node, dict):
        carried = node.get(BUNDLE_KEY)
        if isinstance(carried, dict):
            bundle = {**(bundle or {}), **carried}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            if ref in chain or len(chain) >= _MAX_REFS:
                return {}
            target = _lookup(ref, root, bundle or {})
            siblings = {k: v for k, v in node.items() if k not in ("$ref", BUNDLE_KEY)}
            merged = {**target, **siblings} if isinstance(target, dict) else siblings
            return resolve(merged, root, depth, bundle=bundle, chain=(*chain, ref))
        return {
            k: resolve(v, root, depth + 1, bundle=bundle, chain=chain)
            for k, v in node.items()
            if k != BUNDLE_KEY
        }
    if isinstance(node, list):
        return [resolve(v, root, depth + 1, bundle=bundle, chain=chain) for v in node]
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


def unique_tag() -> str:
    """A short random suffix for :func:`sample`'s ``tag`` (one per object created)."""
    return "-" + secrets.token_hex(3)


def sample(schema: Any, *, writing: bool = True, depth: int = 0, tag: str = "") -> Any:
    """One valid value for ``schema``; read-only properties are left out when ``writing``.

    ``tag`` (e.g. ``"-alice-3f9a"``) is appended to free-text strings and e-mail local parts,
    so that two creations do not collide on a unique field (a username, an e-mail address);
    a ``pattern`` is honoured (the tagged text when it matches, else a string built from the
    pattern).
    """
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
            out[name] = sample(sub, writing=writing, depth=depth + 1, tag=tag)
        return out
    if kind == "array":
        count = schema.get("minItems", 1)
        count = min(max(int(count), 1), 8) if isinstance(count, int) else 1
        item = schema.get("items", {})
        return [sample(item, writing=writing, depth=depth + 1, tag=tag) for _ in range(count)]
    if kind == "integer":
        low = schema.get("minimum", 1)
        return int(low) if isinstance(low, int | float) else 1
    if kind == "number":
        low = schema.get("minimum", 1.5)
        return float(low) if isinstance(low, int | float) else 1.5
    if kind == "boolean":
        return True
    return _string(schema, tag)


def _string(schema: dict[str, Any], tag: str) -> str:
    fmt = str(schema.get("format", ""))
    if fmt == "email":
        text = f"scanner{tag}@example.com"
    else:
        text = _FORMATS.get(fmt, "bastion" + (tag if fmt not in _FORMATS else ""))
    min_length = schema.get("minLength", 0)
    if isinstance(min_length, int) and len(text) < min_length:
        text = text + "x" * (min_length - len(text))
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and len(text) > max_length:
        text = text[: max(max_length, 1)]
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        text = matching_string(pattern, text) or text
    return text
