"""Strict JSON for untrusted input.

``loads_strict`` rejects what lenient parsers accept and attackers exploit: duplicate keys
(parser-differential attacks, RFC 8259 §4 "names SHOULD be unique", RFC 8725 §3.9 for
JWTs), non-finite numbers (``NaN``, ``Infinity``), invalid UTF-8, and nesting deeper than a
cap. ``dumps`` is the fast serializer used for every JSON Bastion writes.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["JSONError", "dumps", "loads_strict"]


class JSONError(ValueError):
    """The document is not acceptable JSON; the message says why (safe to show)."""


def _reject_constant(name: str) -> Any:
    raise JSONError(f"non-finite number {name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JSONError(f"duplicate key {key!r}")
        result[key] = value
    return result


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def _depth_ok(data: str, max_depth: int) -> bool:
    """Cheap pre-scan: bracket depth outside strings never exceeds ``max_depth``."""
    depth = 0
    in_string = False
    escaped = False
    for char in data:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return False
        elif char in "]}":
            depth -= 1
    return True


def loads_strict(data: bytes | str, *, max_depth: int = 64) -> Any:
    """Parse untrusted JSON; raise :class:`JSONError` on anything ambiguous or abusive."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError("body is not valid UTF-8") from exc
    else:
        text = data
    if ("[" in text or "{" in text) and max_depth < len(text) and not _depth_ok(text, max_depth):
        raise JSONError(f"nesting deeper than {max_depth} levels")
    try:
        value, end = _DECODER.raw_decode(text, _skip_ws(text, 0))
    except JSONError:
        raise
    except (ValueError, RecursionError) as exc:
        raise JSONError("malformed JSON") from exc
    if _skip_ws(text, end) != len(text):
        raise JSONError("trailing data after JSON value")
    return value


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def dumps(value: Any) -> bytes:
    """Serialize to compact UTF-8 JSON."""
    return orjson.dumps(value)
