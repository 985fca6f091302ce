"""Client-safe validation error entries: ``{"pointer": ..., "detail": ...}``.

Messages are built from the failing keyword and its limit, never from the instance: a
rejected value (which may be a password or a naughty string) is not echoed back or logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jsonschema_rs

from bastion.contract.documents import escape_pointer
from bastion.contract.formats import EMAIL_PATTERNS

__all__ = ["MAX_ERRORS", "ErrorEntry", "entries_for", "errors_of", "pointer"]

MAX_ERRORS = 20
#: Above this many bytes of JSON text (or items in a parameter), only the first error is
#: reported: jsonschema-rs (0.60) builds every error of a document before the first is
#: read, and a large document may hold hundreds of thousands of them (1 MiB of ``[1,1,…]``
#: against string items: 7.8 s of CPU and 1 GB before the 400).
ALL_ERRORS_UP_TO = 4096
ErrorEntry = dict[str, str]


def pointer(prefix: str, path: Iterable[str | int]) -> str:
    return prefix + "".join("/" + escape_pointer(token) for token in path)


def _detail(kind: Any) -> str:
    name = kind.name
    value = kind.as_dict()
    templates = {
        "type": "must be of type {types}",
        "maxLength": "must be at most {limit} characters long",
        "minLength": "must be at least {limit} characters long",
        "maxItems": "must have at most {limit} items",
        "minItems": "must have at least {limit} items",
        "maxProperties": "must have at most {limit} properties",
        "minProperties": "must have at least {limit} properties",
        "maximum": "must be at most {limit}",
        "minimum": "must be at least {limit}",
        "exclusiveMaximum": "must be less than {limit}",
        "exclusiveMinimum": "must be greater than {limit}",
        "multipleOf": "must be a multiple of {multiple_of}",
        "format": "is not a valid {format}",
        "pattern": "does not match the required pattern",
        "enum": "is not one of the allowed values",
        "constant": "is not the allowed value",
        "uniqueItems": "must not contain duplicate items",
        "falseSchema": "is not allowed here (read-only or forbidden)",
        "oneOfNotValid": "does not match any allowed shape",
        "oneOfMultipleValid": "matches more than one allowed shape",
        "anyOf": "does not match any allowed shape",
        "not": "matches a forbidden shape",
        "contains": "does not contain a required item",
        "propertyNames": "has a property name that is not allowed",
    }
    if name == "pattern" and value.get("pattern") in EMAIL_PATTERNS:
        return "is not a valid email"  # format: email, compiled to patterns (formats.py)
    template = templates.get(name)
    if template is None:
        return "is invalid"
    if "types" in value:
        value["types"] = " or ".join(str(t) for t in value["types"])
    try:
        return template.format(**value)
    except (KeyError, IndexError):
        return template.split(" {")[0]


def entries_for(
    prefix: str, errors: Iterable[jsonschema_rs.ValidationError], limit: int = MAX_ERRORS
) -> list[ErrorEntry]:
    """Turn jsonschema-rs errors into entries; unexpected properties get their own pointer."""
    entries: list[ErrorEntry] = []
    for error in errors:
        kind = error.kind
        name = kind.name
        base = list(error.instance_path)
        if name in ("additionalProperties", "unevaluatedProperties"):
            for prop in kind.as_dict().get("unexpected", ()):
                entries.append(
                    {"pointer": pointer(prefix, [*base, prop]), "detail": "unknown property"}
                )
                if len(entries) >= limit:
                    break
        elif name == "required":
            prop = kind.as_dict().get("property", "")
            entries.append(
                {
                    "pointer": pointer(prefix, [*base, prop]),
                    "detail": "required property is missing",
                }
            )
        else:
            entry = {"pointer": pointer(prefix, base), "detail": _detail(kind)}
            if not entries or entries[-1] != entry:  # an address failing two email patterns
                entries.append(entry)
        if len(entries) >= limit:
            break
    return _without_shadowed(entries)[:limit]


def _without_shadowed(entries: list[ErrorEntry]) -> list[ErrorEntry]:
    """Drop "unknown property" for a declared property that failed its own schema.

    In JSON Schema 2020-12 a failing branch yields no annotations, so
    ``unevaluatedProperties`` also reports its properties as unknown; the real error is
    the one below that property.
    """
    real = [e["pointer"] for e in entries if e["detail"] != "unknown property"]
    return [
        e
        for e in entries
        if e["detail"] != "unknown property"
        or not any(p == e["pointer"] or p.startswith(e["pointer"] + "/") for p in real)
    ]


def errors_of(
    validator: jsonschema_rs.Validator,
    value: Any,
    prefix: str,
    *,
    large: bool,
    detailed: bool = True,
) -> list[ErrorEntry]:
    """The entries for a value the validator refused (``is_valid`` said False).

    All of them (up to :data:`MAX_ERRORS`) for a small value; for a ``large`` one (see
    :data:`ALL_ERRORS_UP_TO`) only the first, which jsonschema-rs finds without building
    the others. Not ``detailed`` (a schema whose alternatives recurse,
    :func:`~bastion.contract.schema.unions_recurse`): one entry saying the value does not
    match, because finding even the first error costs 2^depth there.
    """
    if not detailed:
        return [{"pointer": prefix or "/", "detail": "does not match the schema"}]
    if not large:
        return entries_for(prefix, validator.iter_errors(value))
    try:
        validator.validate(value)
    except jsonschema_rs.ValidationError as error:
        return entries_for(prefix, (error,))
    return [{"pointer": prefix or "/", "detail": "is invalid"}]  # refused all the same
