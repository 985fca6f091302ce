"""References to values in a request, a response or a principal: ``path.user_id``,
``query.page``, ``header.x-tenant``, ``body.customer.id``, ``/items/0/owner`` (JSON pointer),
``principal.sub``, ``principal.realm_access.roles``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = ["MISSING", "FieldRef", "lookup_path", "parse_field_ref"]

Source = Literal["path", "query", "header", "body", "principal"]
_SOURCES: dict[str, Source] = {
    "path": "path",
    "query": "query",
    "header": "header",
    "body": "body",
    "principal": "principal",
}


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class FieldRef:
    source: Source
    #: Keys below the source; for body these walk objects (str) and arrays (int).
    path: tuple[str | int, ...]

    def __str__(self) -> str:
        return ".".join([self.source, *map(str, self.path)])


def parse_field_ref(text: str, *, default_source: Source = "body") -> FieldRef:
    """Parse a dotted reference or a JSON pointer (RFC 6901, relative to ``default_source``)."""
    if text.startswith("/") or text == "":
        parts = [p.replace("~1", "/").replace("~0", "~") for p in text.split("/")[1:]]
        return FieldRef(default_source, tuple(int(p) if p.isdigit() else p for p in parts))
    prefix, _, rest = text.partition(".")
    head = _SOURCES.get(prefix)
    if head is None:
        raise ValueError(f"{text!r} must start with path., query., header., body. or principal.")
    parts = rest.split(".") if rest else []
    if head in ("path", "query", "header") and len(parts) != 1:
        raise ValueError(f"{text!r}: {head} fields have exactly one name")
    if head == "header":
        parts = [parts[0].lower()]
    return FieldRef(head, tuple(int(p) if p.isdigit() and head == "body" else p for p in parts))


def lookup_path(value: Any, path: Sequence[str | int]) -> Any:
    """Walk objects and arrays; :data:`MISSING` when any step does not exist."""
    for key in path:
        if isinstance(value, Mapping):
            if key not in value and isinstance(key, int) and str(key) in value:
                key = str(key)
            if key not in value:
                return MISSING
            value = value[key]
        elif isinstance(value, list) and isinstance(key, int):
            if not 0 <= key < len(value):
                return MISSING
            value = value[key]
        else:
            return MISSING
    return value
