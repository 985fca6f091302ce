"""OpenAPI Schema Objects → one JSON Schema 2020-12 document, hardened, compiled once.

:class:`SchemaCompiler` converts the schemas of one operation and one direction:

* OpenAPI 3.0 dialect → 2020-12: ``nullable`` becomes a ``"null"`` type (or enum member),
  boolean ``exclusiveMinimum``/``exclusiveMaximum`` become numbers, annotations that only
  cost time (``example``, ``xml``, ``discriminator``, ``x-*``) are dropped.
* Every local ``$ref`` becomes ``#/$defs/<name>``; a referenced schema is converted once per
  variant, so recursive schemas stay recursive.
* ``format: int32``/``int64`` become ``minimum``/``maximum`` bounds; ``format: email``
  becomes :data:`~bastion.contract.formats.EMAIL_CHECK` (jsonschema-rs' check, and patterns
  for the valid addresses it refuses).
* Request side (``direction="request"``), the hardening of docs/contract.md: an object that
  declares ``properties`` and says nothing about extra ones gets
  ``unevaluatedProperties: false`` (it sees through ``allOf``/``oneOf``/``anyOf``, which a
  per-branch ``additionalProperties: false`` would break), ``readOnly`` properties become
  the ``false`` schema and leave ``required``, strings without ``maxLength`` and arrays
  without ``maxItems`` get the caps from :class:`~bastion.contract.compiled.ContractLimits`.
* Response side: ``writeOnly`` properties leave ``required`` (they are removed anyway).

Validators are jsonschema-rs with ``RegexOptions()`` (the Rust ``regex`` crate: no
backtracking, linear time in the input) and ``validate_formats=True`` (email, uuid,
date-time, uri, ipv4, ipv6 are checked by jsonschema-rs' native parsers, not by regexes).
No Python callback is registered: any one slows every validation down.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import jsonschema_rs

from bastion.contract.formats import EMAIL_CHECK, EMAIL_OPTIONS
from bastion.errors import ConfigError

__all__ = [
    "SchemaCompiler",
    "compile_validator",
    "resolve_local",
    "schema_flag",
    "schema_properties",
    "schema_types",
    "unions_recurse",
]

_DROP = frozenset(
    {
        "example",
        "xml",
        "externalDocs",
        "discriminator",
        "nullable",
        "$defs",
        "definitions",
        # Every reference is rewritten to #/$defs/…: a nested $id would move the base URI.
        "$id",
        "$schema",
        "$comment",
        "$anchor",
        "$dynamicAnchor",
    }
)
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas", "$defs")
_SUBSCHEMA_ONE = (
    "additionalProperties",
    "unevaluatedProperties",
    "items",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "additionalItems",
)
_OPEN = ("allOf", "anyOf", "oneOf")
_OPEN_ONE = ("not", "if", "then", "else")
_INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def resolve_local(document: Mapping[str, Any], node: Any) -> tuple[Any, str | None]:
    """Follow local ``$ref``\\ s; returns the target and the pointer of the last hop."""
    pointer: str | None = None
    for _ in range(64):
        if not (isinstance(node, Mapping) and isinstance(node.get("$ref"), str)):
            return node, pointer
        ref = node["$ref"]
        if not ref.startswith("#/") and ref != "#":
            raise ConfigError(f"unsupported $ref {ref!r} (only JSON pointers)")
        pointer = ref[1:]
        node = document
        for raw in pointer.split("/")[1:]:
            token = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise ConfigError(f"$ref target {ref!r} does not exist")
    raise ConfigError("$ref chain longer than 64 hops")


def schema_flag(document: Mapping[str, Any], schema: Any, flag: str, _depth: int = 0) -> bool:
    """True when ``flag`` (``readOnly``, ``writeOnly``) is set on the schema, on what its
    ``$ref`` points to, or on one of its ``allOf`` branches, at any depth: annotations of
    ``allOf`` apply to the value (the 3.0 idiom ``{allOf: [{$ref: Id}], description: …}``
    wraps a reference to give it a description). ``oneOf``/``anyOf`` branches are not
    read: they apply only where they validate."""
    if _depth > 16 or not isinstance(schema, Mapping):
        return False
    if schema.get(flag) is True:
        return True
    if isinstance(schema.get("$ref"), str):
        target, _ = resolve_local(document, schema)
        if schema_flag(document, target, flag, _depth + 1):
            return True
    branches = schema.get("allOf")
    return isinstance(branches, list) and any(
        schema_flag(document, branch, flag, _depth + 1) for branch in branches
    )


def schema_properties(document: Mapping[str, Any], schema: Any, _depth: int = 0) -> dict[str, Any]:
    """The properties a schema declares, looking through ``$ref`` and compositions
    (``allOf`` branches, and the union of ``oneOf``/``anyOf`` ones; the first declaration
    of a name wins). What a form or an object parameter may carry."""
    schema, _ = resolve_local(document, schema)
    if not isinstance(schema, Mapping) or _depth > 16:
        return {}
    own = schema.get("properties")
    found: dict[str, Any] = dict(own) if isinstance(own, Mapping) else {}
    for key in _OPEN:
        branches = schema.get(key)
        for branch in branches if isinstance(branches, list) else ():
            for name, sub in schema_properties(document, branch, _depth + 1).items():
                found.setdefault(name, sub)
    return found


def schema_types(document: Mapping[str, Any], schema: Any, _depth: int = 0) -> set[str]:
    """The JSON types a schema admits, looking through ``$ref`` and compositions."""
    schema, _ = resolve_local(document, schema)
    if not isinstance(schema, Mapping) or _depth > 16:
        return set()
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared} | ({"null"} if schema.get("nullable") else set())
    if isinstance(declared, list):
        return {str(t) for t in declared}
    found: set[str] = set()
    for key in _OPEN:
        for branch in schema.get(key) or ():
            found |= schema_types(document, branch, _depth + 1)
    if not found and ("properties" in schema or "additionalProperties" in schema):
        found.add("object")
    if not found and "items" in schema:
        found.add("array")
    return found


def _objects(node: Any, *, top: bool = False) -> Iterator[Mapping[str, Any]]:
    """Every mapping written in ``node``, references not followed (a document's own
    ``$defs`` are other nodes)."""
    todo = [node]
    while todo:
        item = todo.pop()
        if isinstance(item, Mapping):
            yield item
            todo.extend(v for k, v in item.items() if not (top and item is node and k == "$defs"))
        elif isinstance(item, list):
            todo.extend(item)


def _refs(node: Any, *, top: bool = False) -> set[str]:
    """The ``$ref`` targets written in ``node``."""
    return {o["$ref"] for o in _objects(node, top=top) if isinstance(o.get("$ref"), str)}


def _unions(node: Any, *, top: bool = False) -> list[list[Any]]:
    """The branch lists of every ``oneOf``/``anyOf`` written in ``node``."""
    return [
        o[key]
        for o in _objects(node, top=top)
        for key in ("oneOf", "anyOf")
        if isinstance(o.get(key), list)
    ]


def unions_recurse(document: Mapping[str, Any]) -> bool:
    """True when a ``oneOf``/``anyOf`` of a converted document (:meth:`SchemaCompiler.
    document_for`) has two branches or more that lead back to it through references.

    Then every level of a nested value is validated once per such branch, all the way down:
    ``is_valid`` stops at the first failure and stays fast, but listing the errors of an
    invalid value explores every branch at every level, 2^depth (a 500-byte tree of
    ``oneOf: [Text, Group]`` nodes 15 deep: 11 s).
    """
    defs = document.get("$defs")
    nodes: dict[str, Any] = {"#": document}
    if isinstance(defs, Mapping):
        nodes.update({f"#/$defs/{name}": schema for name, schema in defs.items()})
    edges = {name: _refs(schema, top=name == "#") for name, schema in nodes.items()}

    def leads_to(start: set[str], goal: str) -> bool:
        seen: set[str] = set()
        todo = list(start)
        while todo:
            ref = todo.pop()
            if ref == goal:
                return True
            if ref not in seen:
                seen.add(ref)
                todo.extend(edges.get(ref, ()))
        return False

    for name, schema in nodes.items():
        for branches in _unions(schema, top=name == "#"):
            back = sum(1 for branch in branches if leads_to(_refs(branch), name))
            if back >= 2:
                return True
    return False


def compile_validator(schema: Any) -> jsonschema_rs.Validator:
    """Compile a converted 2020-12 document with the linear-time regex engine."""
    try:
        return jsonschema_rs.Draft202012Validator(
            schema,
            validate_formats=True,
            email_options=EMAIL_OPTIONS,
            pattern_options=jsonschema_rs.RegexOptions(),
        )
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        raise ConfigError(f"schema does not compile: {exc}") from exc


class SchemaCompiler:
    """Converts schemas of one operation for one direction into 2020-12 documents."""

    def __init__(
        self,
        document: Mapping[str, Any],
        version: str,
        direction: Literal["request", "response"],
        *,
        max_string_length: int | None = None,
        max_array_items: int | None = None,
        strict_properties: bool = True,
    ) -> None:
        self.document = document
        self.v30 = version == "3.0"
        self.direction = direction
        self.max_string_length = max_string_length
        self.max_array_items = max_array_items
        self.strict_properties = strict_properties and direction == "request"
        self.defs: dict[str, Any] = {}
        self._names: dict[tuple[str, bool], str] = {}

    def document_for(self, schema: Any) -> dict[str, Any]:
        """A self-contained 2020-12 document for an OpenAPI schema."""
        converted = self.convert(schema)
        return {"$schema": SCHEMA_DIALECT, "$defs": dict(self.defs), "allOf": [converted]}

    def validator_for(self, schema: Any) -> jsonschema_rs.Validator:
        return compile_validator(self.document_for(schema))

    def compile(self, schema: Any) -> tuple[jsonschema_rs.Validator, bool]:
        """The validator, and whether its errors can be listed in bounded time (False when
        :func:`unions_recurse`: then only "does not match" is said)."""
        document = self.document_for(schema)
        return compile_validator(document), not unions_recurse(document)

    def convert(self, schema: Any, *, closed: bool = True) -> Any:
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, Mapping):
            raise ConfigError("a schema must be an object or a boolean")
        if "$dynamicRef" in schema or "$recursiveRef" in schema:
            raise ConfigError("$dynamicRef/$recursiveRef are not supported in contracts")
        out: dict[str, Any] = {}
        ref = schema.get("$ref")
        structural = any(k in schema for k in ("properties", "patternProperties", *_OPEN))
        if isinstance(ref, str):
            # A bare $ref closes its target; with structural siblings the closure moves here.
            out["$ref"] = self._ref(ref, closed and not structural)
            closed = closed and structural
        skip = self._skipped_properties(schema)
        for key, value in schema.items():
            if key in _DROP or key == "$ref" or key.startswith("x-"):
                continue
            if key in _SUBSCHEMA_MAPS and isinstance(value, Mapping):
                out[key] = {
                    name: (False if name in skip and key == "properties" else self.convert(sub))
                    for name, sub in value.items()
                    if not (name in skip and self.direction == "response")
                }
            elif key in _SUBSCHEMA_ONE and isinstance(value, Mapping | bool):
                out[key] = self.convert(value)
            elif key == "prefixItems" and isinstance(value, list):
                out[key] = [self.convert(v) for v in value]
            elif key in _OPEN and isinstance(value, list):
                out[key] = [self.convert(v, closed=False) for v in value]
            elif key in _OPEN_ONE and isinstance(value, Mapping | bool):
                out[key] = self.convert(value, closed=False)
            elif key == "required" and isinstance(value, list):
                out[key] = [name for name in value if name not in skip]
            else:
                out[key] = value
        if self.v30:
            self._dialect_30(schema, out)
        if out.get("format") == "email":
            # The native check, and patterns for the valid addresses it refuses (formats.py).
            del out["format"]
            out["allOf"] = [*out.get("allOf", ()), copy.deepcopy(EMAIL_CHECK)]
        self._bounds(out)
        if self.direction == "request":
            self._harden(schema, out, closed)
        if self.v30 and schema.get("nullable") is True and "type" not in out:
            return {"anyOf": [{"type": "null"}, out]}
        return out

    def _ref(self, ref: str, closed: bool) -> str:
        target, pointer = resolve_local(self.document, {"$ref": ref})
        assert pointer is not None
        key = (pointer, closed)
        if key not in self._names:
            name = f"s{len(self._names)}"
            self._names[key] = name
            self.defs[name] = True
            self.defs[name] = self.convert(target, closed=closed)
        return f"#/$defs/{self._names[key]}"

    def _skipped_properties(self, schema: Mapping[str, Any]) -> set[str]:
        """readOnly (request) or writeOnly (response) property names."""
        flag = "readOnly" if self.direction == "request" else "writeOnly"
        properties = schema.get("properties") or {}
        return {name for name, sub in properties.items() if schema_flag(self.document, sub, flag)}

    def _dialect_30(self, schema: Mapping[str, Any], out: dict[str, Any]) -> None:
        for bound in ("Minimum", "Maximum"):
            flag = schema.get(f"exclusive{bound}")
            if isinstance(flag, bool):
                del out[f"exclusive{bound}"]
                if flag and bound.lower() in schema:
                    out[f"exclusive{bound}"] = out.pop(bound.lower())
        if schema.get("nullable") is True:
            declared = out.get("type")
            if isinstance(declared, str):
                out["type"] = [declared, "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]

    def _bounds(self, out: dict[str, Any]) -> None:
        bounds = _INT_BOUNDS.get(str(out.get("format")))
        declared = out.get("type")
        types = {declared} if isinstance(declared, str) else set(declared or ())
        if bounds and "integer" in types:
            if "minimum" not in out and "exclusiveMinimum" not in out:
                out["minimum"] = bounds[0]
            if "maximum" not in out and "exclusiveMaximum" not in out:
                out["maximum"] = bounds[1]

    def _harden(self, schema: Mapping[str, Any], out: dict[str, Any], closed: bool) -> None:
        declared = out.get("type")
        types = {declared} if isinstance(declared, str) else set(declared or ())
        fixed = "enum" in out or "const" in out
        if "string" in types and "maxLength" not in out and self.max_string_length and not fixed:
            out["maxLength"] = self.max_string_length
        if "array" in types and "maxItems" not in out and self.max_array_items:
            out["maxItems"] = self.max_array_items
        if (
            closed
            and self.strict_properties
            and "additionalProperties" not in schema
            and "unevaluatedProperties" not in schema
            and self._declares_properties(schema, 0)
        ):
            out["unevaluatedProperties"] = False

    def _declares_properties(self, schema: Any, depth: int) -> bool:
        schema, _ = resolve_local(self.document, schema)
        if not isinstance(schema, Mapping) or depth > 16:
            return False
        if "properties" in schema or "patternProperties" in schema:
            return True
        return any(
            self._declares_properties(branch, depth + 1)
            for key in _OPEN
            for branch in schema.get(key) or ()
        )
