"""Strict JSON for untrusted input.

``loads_strict`` rejects what lenient parsers accept and attackers exploit: duplicate keys
(parser-differential attacks, RFC 8259 §4 "names SHOULD be unique", RFC 8725 §3.9 for
JWTs), non-finite numbers (``NaN``, ``Infinity``, ``1e400``), invalid UTF-8, and nesting
deeper than a cap. ``dumps`` is the fast serializer used for every JSON Bastion writes.

Most documents are parsed by orjson (C speed), which keeps the last of duplicate keys, so
the absence of duplicates is proven on the text first (:func:`_loads_proven`); everything
else goes through the standard library's parser with a duplicate-key hook.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

__all__ = ["JSONError", "depth_exceeds", "dumps", "loads_strict", "no_key_dropped"]


class JSONError(ValueError):
    """The document is not acceptable JSON; the message says why (safe to show)."""


def _reject_constant(name: str) -> Any:
    raise JSONError(f"non-finite number {name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JSONError(f"duplicate key {key!r}")
            seen.add(key)
    return result


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JSONError(f"non-finite number {text[:32]} is not allowed")
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_reject_constant, parse_float=_finite_float
)

_MISSING: Any = object()
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
# orjson turns integers beyond 64 bits into floats; the shortest such has 19 digits.
_LONG_DIGITS = b"0" * 19


def _loads_proven(data: bytes) -> Any:
    """orjson's parse when the text proves it holds no duplicate key, else ``_MISSING``.

    A text without a backslash is proven by counting colons against orjson's writing of
    the parsed value (:func:`no_key_dropped`), so pretty-printed texts qualify; a text
    equal to that writing (what compact clients send) is settled by the comparison alone.
    orjson reads an integer beyond 64 bits as a float, which it writes with ``e+`` (every
    float of 1e16 or more): only then is the text searched for a run of 19 digits, and a
    text with one is parsed by the standard library, which keeps such integers exact.
    Texts with escapes, or that orjson refuses (invalid UTF-8, NaN, 1e400, lone
    surrogates), take the standard library path too, which accepts or refuses them with
    the precise reason.
    """
    if b"\\" in data:
        return _MISSING
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _MISSING
    written = orjson.dumps(value)
    if not no_key_dropped(data, written):
        return _MISSING
    # A text equal to orjson's own writing of the value (what compact clients send) holds
    # no rounded integer either.
    if written != data and b"e+" in written and _LONG_DIGITS in data.translate(_DIGITS_TO_ZERO):
        return _MISSING
    return value


def no_key_dropped(data: bytes, written: bytes) -> bool:
    """True when ``data``, a JSON text without a backslash, holds exactly the key
    occurrences of ``written``, the compact writing of what it parsed to.

    Without a backslash no string holds an escape, so every colon of the text is either a
    key occurrence's own colon or a character inside a string, written as it is; the
    writing has one colon per key kept and the same strings, so as many colons exactly
    when the parse dropped no occurrence of a repeated key. Whitespace does not matter.
    """
    return written == data or written.count(b":") == data.count(b":")


def _too_deep(value: Any, max_depth: int) -> bool:
    """Iterative depth check of a parsed value (no recursion, stops at the first excess)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        if isinstance(node, dict):
            stack.extend(
                (child, depth + 1) for child in node.values() if isinstance(child, dict | list)
            )
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, dict | list))
    return False


_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def depth_exceeds(data: bytes, max_depth: int) -> bool:
    """Bracket nesting outside strings deeper than ``max_depth``, read on the text.

    Counting opening brackets first settles small texts. Otherwise the strings are cut out
    with byte operations (C speed): escaped backslashes and then escaped quotes are
    neutralised, left to right as JSON reads them, so every quote left delimits a string,
    and the pieces outside strings are the even ones between quotes. Only the brackets are
    then walked in Python. Linear in the text, and it never parses: a too-deep text is
    refused before any parser recurses into it. (Invalid JSON may be misjudged; the parser
    refuses it next.) A regular expression did the string cutting until it was found to be
    quadratic on escaped quotes that never close a string (80 KB: 37 s).
    """
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return False
    if b"\\" in data:
        data = data.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    depth = 0
    for char in b"".join(data.split(b'"')[::2]).translate(None, _NOT_BRACKETS):
        if char in b"[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def loads_strict(data: bytes | str, *, max_depth: int = 64) -> Any:
    """Parse untrusted JSON; raise :class:`JSONError` on anything ambiguous or abusive."""
    if isinstance(data, bytes):
        if depth_exceeds(data, max_depth):
            raise JSONError(f"nesting deeper than {max_depth} levels")
        value = _loads_proven(data)
        if value is not _MISSING:
            return value
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError("body is not valid UTF-8") from exc
    else:
        text = data
    try:
        value, end = _DECODER.raw_decode(text, _skip_ws(text, 0))
    except JSONError:
        raise
    except RecursionError:
        raise JSONError(f"nesting deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise JSONError("malformed JSON") from exc
    if _skip_ws(text, end) != len(text):
        raise JSONError("trailing data after JSON value")
    # Text given as str: only a document with more brackets than the cap can be too deep,
    # so the walk is skipped for the common small ones. (Bytes were measured before.)
    if (
        not isinstance(data, bytes)
        and text.count("{") + text.count("[") > max_depth
        and _too_deep(value, max_depth)
    ):
        raise JSONError(f"nesting deeper than {max_depth} levels")
    return value


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def dumps(value: Any) -> bytes:
    """Serialize to compact UTF-8 JSON."""
    return orjson.dumps(value)
