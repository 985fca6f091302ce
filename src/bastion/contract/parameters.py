"""Parameter deserialisation (OpenAPI 3.x §4.8.12.4 "Style Values") and type coercion.

Each declared parameter becomes a :class:`ParameterRule` at load time: its style/explode,
its shape (primitive, array or object, from the schema), a coercer per value (string →
integer/number/boolean following the schema's types) and its compiled validator. Per request
a value is split by its style, coerced, then validated.

Supported: ``path`` simple/label/matrix, ``query`` form/spaceDelimited/pipeDelimited/
deepObject, ``header`` simple, ``cookie`` form, each with explode true/false, and parameters
declared with ``content: {application/json: …}`` (the value is strict JSON).

Security choices: a primitive query parameter or cookie sent twice is refused (parameter
pollution / cookie tossing: the gateway and the upstream could pick different copies);
query strings and cookies must be valid UTF-8 after percent-decoding; a query string with
more than :data:`MAX_QUERY_PAIRS` pairs is refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

import jsonschema_rs

from bastion.contract.documents import escape_pointer
from bastion.contract.schema import resolve_local, schema_properties, schema_types
from bastion.contract.surrogates import has_lone_surrogate, may_contain_surrogates
from bastion.jsonutil import JSONError, float_holds, loads_strict

__all__ = [
    "MAX_QUERY_PAIRS",
    "ParameterRule",
    "StyleError",
    "make_coercer",
    "parse_cookies",
    "parse_query",
]

MAX_QUERY_PAIRS = 1_000
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,39})")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]{0,39})(?:\.[0-9]{1,40})?(?:[eE][+-]?[0-9]{1,4})?")
_DEEP = re.compile(r"([^\[\]]+)\[([^\[\]]*)\]")

Coercer = Callable[[str], Any]


class StyleError(ValueError):
    """A raw value does not follow the parameter's style; the message is client-safe."""


def make_coercer(types: set[str]) -> Coercer:
    """A function turning one raw string into the first schema type it parses as."""
    order = [t for t in ("integer", "number", "boolean", "null") if t in types]
    if "string" in types and "null" in order:
        order.remove("null")  # an empty string parameter stays a string
    if not order:
        return str

    def coerce(raw: str) -> Any:
        for kind in order:
            if kind == "integer" and _INTEGER.fullmatch(raw):
                return int(raw)
            if kind == "number" and _NUMBER.fullmatch(raw):
                if not any(c in raw for c in ".eE"):
                    return int(raw)
                number = float(raw)
                if math.isfinite(number) and float_holds(raw, number):
                    return number
                if "string" not in types:
                    # What would be checked is another number than the upstream reads
                    # (100.00000000000000001 passes maximum: 100 as 100.0).
                    raise StyleError(f"number {raw[:32]} cannot be read exactly as a 64-bit float")
            if kind == "boolean" and raw in ("true", "false"):
                return raw == "true"
            if kind == "null" and raw in ("", "null"):
                return None
        return raw

    return coerce


def parse_query(query_string: bytes) -> list[tuple[str, str]]:
    """``application/x-www-form-urlencoded`` pairs, strictly decoded."""
    if not query_string:
        return []
    try:
        text = query_string.decode("ascii")
    except UnicodeDecodeError as exc:
        raise StyleError("query string must be percent-encoded ASCII") from exc
    parts = [p for p in text.split("&") if p]
    if len(parts) > MAX_QUERY_PAIRS:
        raise StyleError(f"more than {MAX_QUERY_PAIRS} query parameters")
    pairs: list[tuple[str, str]] = []
    for part in parts:
        name, _, value = part.partition("=")
        try:
            pairs.append(
                (unquote_plus(name, errors="strict"), unquote_plus(value, errors="strict"))
            )
        except UnicodeDecodeError as exc:
            raise StyleError("query string is not valid UTF-8 once decoded") from exc
    return pairs


def parse_cookies(values: list[str]) -> list[tuple[str, str]]:
    """RFC 6265 §4.2 ``Cookie`` pairs (several headers are joined)."""
    pairs: list[tuple[str, str]] = []
    for header in values:
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if not sep or not name:
                continue
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            try:
                pairs.append((name, unquote(value, errors="strict")))
            except UnicodeDecodeError as exc:
                raise StyleError("cookie is not valid UTF-8 once decoded") from exc
    return pairs


def _unique_object(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """An object from (name, value) pairs; a repeated name is refused, because parsers
    disagree on which copy wins (parameter pollution)."""
    result: dict[str, str] = {}
    for key, value in pairs:
        if key in result:
            raise StyleError(f"property {key!r} is repeated")
        result[key] = value
    return result


def _pairs_to_object(items: list[str]) -> dict[str, str]:
    if len(items) % 2:
        raise StyleError("object value needs name,value pairs")
    return _unique_object((items[i], items[i + 1]) for i in range(0, len(items), 2))


def _kv_object(items: list[str]) -> dict[str, str]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise StyleError("object value needs name=value items")
        pairs.append((key, value))
    return _unique_object(pairs)


@dataclass(frozen=True)
class ParameterRule:
    """A compiled parameter: how to split, coerce and validate its value."""

    name: str
    location: str
    style: str
    explode: bool
    required: bool
    shape: str  # "primitive" | "array" | "object"
    coerce: Coercer
    prop_coercers: Mapping[str, Coercer]
    #: Declared property names of an object parameter (None: any name).
    properties: frozenset[str] | None
    validator: jsonschema_rs.Validator
    json_content: bool = False
    #: Whether the validator's errors can be listed (see messages.errors_of).
    detailed: bool = True

    @property
    def prefix(self) -> str:
        return f"/{self.location}/{escape_pointer(self.name)}"

    @classmethod
    def build(
        cls,
        document: Mapping[str, Any],
        raw: Mapping[str, Any],
        validator: jsonschema_rs.Validator,
        schema: Any,
        json_content: bool,
        detailed: bool = True,
    ) -> ParameterRule:
        location = str(raw["in"])
        style = raw.get("style") or {"query": "form", "cookie": "form"}.get(location, "simple")
        explode = raw.get("explode", style == "form")
        resolved, _ = resolve_local(document, schema)
        types = schema_types(document, schema)
        shape = "primitive"
        item_coercer: Coercer = make_coercer(types)
        prop_coercers: dict[str, Coercer] = {}
        properties: frozenset[str] | None = None
        if "array" in types and isinstance(resolved, Mapping):
            shape = "array"
            item_coercer = make_coercer(schema_types(document, resolved.get("items", {})))
        elif "object" in types and isinstance(resolved, Mapping):
            shape = "object"
            props = schema_properties(document, schema)
            prop_coercers = {k: make_coercer(schema_types(document, v)) for k, v in props.items()}
            extra = resolved.get("additionalProperties")
            properties = None if extra not in (None, False) else frozenset(props)
            if isinstance(extra, Mapping):
                item_coercer = make_coercer(schema_types(document, extra))
        return cls(
            name=str(raw["name"]),
            location=location,
            style=str(style),
            explode=bool(explode),
            required=bool(raw.get("required", location == "path")),
            shape=shape,
            coerce=item_coercer,
            prop_coercers=prop_coercers,
            properties=properties,
            validator=validator,
            json_content=json_content,
            detailed=detailed,
        )

    def _finish(self, value: Any) -> Any:
        if self.shape == "array":
            return [self.coerce(v) for v in value]
        if self.shape == "object":
            return {k: self.prop_coercers.get(k, self.coerce)(v) for k, v in value.items()}
        return self.coerce(value)

    def _split(self, text: str, sep: str) -> Any:
        if self.shape == "array":
            return text.split(sep) if text else []
        if self.shape == "object":
            items = text.split(sep) if text else []
            return _kv_object(items) if self.explode else _pairs_to_object(items)
        return text

    def from_path(self, raw: str) -> Any:
        """simple ``a,b`` / label ``.a.b`` / matrix ``;id=a;id=b``."""
        if not raw.isascii() and has_lone_surrogate(raw):
            raise StyleError("path segment is not valid UTF-8")  # surrogateescape'd bytes
        if self.json_content:
            return self._json(raw)
        if self.style == "label":
            if not raw.startswith("."):
                raise StyleError("label style value must start with '.'")
            body = raw[1:]
            sep = "." if self.explode and self.shape != "primitive" else ","
            return self._finish(self._split(body, sep))
        if self.style == "matrix":
            return self._finish(self._matrix(raw))
        return self._finish(self._split(raw, ","))

    def _matrix(self, raw: str) -> Any:
        if not raw.startswith(";"):
            raise StyleError("matrix style value must start with ';'")
        segments = raw[1:].split(";")
        if self.shape == "object" and self.explode:
            return _kv_object(segments)
        values: list[str] = []
        for segment in segments:
            key, _, value = segment.partition("=")
            if key != self.name:
                raise StyleError(f"matrix style value must be ;{self.name}=...")
            values.append(value)
        if self.shape == "array" and self.explode:
            return values
        if len(values) != 1:
            raise StyleError("matrix value repeated")
        return self._split(values[0], ",")

    def from_query(self, pairs: list[tuple[str, str]], claimed: set[int]) -> tuple[bool, Any]:
        """Returns (present, value); marks the pair indexes it consumed in ``claimed``."""
        if self.style == "deepObject":
            found: dict[str, str] = {}
            for index, (key, value) in enumerate(pairs):
                match = _DEEP.fullmatch(key)
                if match and match.group(1) == self.name:
                    if match.group(2) in found:
                        raise StyleError("deepObject key repeated")
                    found[match.group(2)] = value
                    claimed.add(index)
            return bool(found), self._finish(found) if found else None
        if self.shape == "object" and self.explode and not self.json_content:
            obj: dict[str, str] = {}
            for index, (key, value) in enumerate(pairs):
                if index in claimed or key == self.name:
                    continue
                if self.properties is None or key in self.properties:
                    if key in obj:
                        raise StyleError(f"property {key!r} repeated")
                    obj[key] = value
                    claimed.add(index)
            return bool(obj), self._finish(obj) if obj else None
        values = [(i, v) for i, (k, v) in enumerate(pairs) if k == self.name]
        if not values:
            return False, None
        claimed.update(i for i, _ in values)
        if self.shape == "array" and self.explode:  # form; space/pipe explode like form
            return True, self._finish([v for _, v in values])
        if len(values) > 1:
            raise StyleError("parameter repeated")
        text = values[0][1]
        if self.json_content:
            return True, self._json(text)
        sep = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(self.style, ",")
        return True, self._finish(self._split(text, sep))

    def from_header(self, values: list[str]) -> tuple[bool, Any]:
        if not values:
            return False, None
        if len(values) > 1 and self.shape != "array":
            raise StyleError("header repeated")
        text = ",".join(values)
        if self.json_content:
            return True, self._json(text)
        if self.shape == "primitive":
            return True, self._finish(text)
        items = [item.strip() for item in text.split(",")] if text else []
        if self.shape == "array":
            return True, self._finish(items)
        return True, self._finish(_kv_object(items) if self.explode else _pairs_to_object(items))

    def from_cookies(self, pairs: list[tuple[str, str]]) -> tuple[bool, Any]:
        if self.shape == "object" and self.explode and not self.json_content:
            obj = _unique_object(
                (k, v) for k, v in pairs if self.properties is None or k in self.properties
            )
            return bool(obj), self._finish(obj) if obj else None
        values = [v for k, v in pairs if k == self.name]
        if not values:
            return False, None
        if self.shape == "array" and self.explode:
            return True, self._finish(values)
        if len(values) > 1:
            raise StyleError("cookie repeated")
        if self.json_content:
            return True, self._json(values[0])
        return True, self._finish(self._split(values[0], ","))

    def _json(self, text: str) -> Any:
        try:
            value = loads_strict(text, max_depth=32)
        except JSONError as exc:
            raise StyleError(f"invalid JSON: {exc}") from exc
        if may_contain_surrogates(text) and has_lone_surrogate(value):
            raise StyleError("invalid JSON: unpaired UTF-16 surrogate escape")
        return value
