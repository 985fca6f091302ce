"""Request bodies: media type negotiation (415), strict parsing and validation (400).

JSON media types (``application/json``, ``*+json``) are parsed with
:func:`bastion.jsonutil.loads_strict` (duplicate keys, NaN/Infinity, invalid UTF-8 and
nesting deeper than ``ContractLimits.max_depth`` are refused) and validated; a ``charset``
other than UTF-8 is a 415. ``application/x-www-form-urlencoded`` bodies are decoded like a
query string, coerced to the schema's property types and validated. Other declared media
types (multipart, binary) are only size-checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from bastion.contract.media import is_json, match_media, parse_media_type
from bastion.contract.messages import ALL_ERRORS_UP_TO, ErrorEntry, errors_of
from bastion.contract.parameters import Coercer, StyleError, make_coercer, parse_query
from bastion.contract.schema import resolve_local, schema_properties, schema_types
from bastion.contract.surrogates import has_lone_surrogate, may_contain_surrogates
from bastion.errors import UnsupportedMediaType
from bastion.jsonutil import JSONError, loads_strict

__all__ = ["BodyRule", "FormDecoder", "parse_json"]

_FORM = "application/x-www-form-urlencoded"
#: Wildcards under which a document schema means a document, whatever the type says.
_ANY_DOCUMENT = frozenset({"*/*", "application/*", "text/*"})


def parse_json(body: bytes, max_depth: int) -> Any:
    """:func:`bastion.jsonutil.loads_strict`, and no lone surrogate escapes."""
    value = loads_strict(body, max_depth=max_depth)
    if may_contain_surrogates(body) and has_lone_surrogate(value):
        raise JSONError("unpaired UTF-16 surrogate escape")
    return value


@dataclass(frozen=True)
class FormDecoder:
    """Decodes an urlencoded body into an object typed by the schema's properties."""

    coercers: Mapping[str, Coercer]
    arrays: frozenset[str]

    @classmethod
    def build(cls, document: Mapping[str, Any], schema: Any) -> FormDecoder:
        props = schema_properties(document, schema)
        coercers: dict[str, Coercer] = {}
        arrays: set[str] = set()
        for name, sub in props.items():
            types = schema_types(document, sub)
            if "array" in types:
                arrays.add(name)
                item, _ = resolve_local(document, sub)
                types = schema_types(document, item.get("items", {}))
            coercers[name] = make_coercer(types)
        return cls(coercers, frozenset(arrays))

    def decode(self, body: bytes) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, raw in parse_query(body):
            value = self.coercers.get(name, str)(raw)
            if name in self.arrays:
                result.setdefault(name, []).append(value)
            elif name in result:
                raise StyleError(f"field {name!r} repeated")
            else:
                result[name] = value
        return result


@dataclass(frozen=True)
class BodyRule:
    """One declared request media type."""

    media: str
    validator: jsonschema_rs.Validator | None
    form: FormDecoder | None
    #: Whether the validator's errors can be listed (see messages.errors_of).
    detailed: bool = True
    #: The schema describes an object or array (a document the contract can check).
    structured: bool = False

    @staticmethod
    def select(
        bodies: Mapping[str, BodyRule], content_type: str | None
    ) -> tuple[BodyRule | None, str | None]:
        parsed = parse_media_type(content_type)
        if parsed is None:
            return None, None
        media, params = parsed
        key = match_media(media, bodies)
        if key is None:
            return None, media
        if is_json(media) and params.get("charset", "utf-8") not in ("utf-8", "utf8"):
            return None, media
        return bodies[key], media

    def parse(
        self, body: bytes, media: str | None, max_depth: int, errors: list[ErrorEntry]
    ) -> Any:
        if media is not None and is_json(media):
            try:
                value = parse_json(body, max_depth)
            except JSONError as bad_json:
                errors.append({"pointer": "/body", "detail": str(bad_json)})
                return None
        elif media == _FORM and self.form is not None:
            try:
                value = self.form.decode(body)
            except StyleError as bad_form:  # compiled, one name holds one exception type
                errors.append({"pointer": "/body", "detail": str(bad_form)})
                return None
        elif self.structured and self.media in _ANY_DOCUMENT:
            # A document schema declared for any media type (*/*): text/plain carrying
            # JSON would pass unchecked to an upstream that decodes it anyway (Go, Flask's
            # get_json(force=True)). Declared multipart or binary types stay size-checked.
            raise UnsupportedMediaType(reason="contract.media_type")
        else:
            return None
        if self.validator is not None and not self.validator.is_valid(value):
            large = len(body) > ALL_ERRORS_UP_TO
            errors.extend(
                errors_of(self.validator, value, "/body", large=large, detailed=self.detailed)
            )
        return value
