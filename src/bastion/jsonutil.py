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
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

__all__ = [
    "JSONError",
    "depth_exceeds",
    "dumps",
    "float_holds",
    "loads_strict",
    "no_key_dropped",
    "numbers_may_change",
]


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


def _exact_float(text: str) -> float:
    value = _finite_float(text)
    if not float_holds(text, value):
        raise JSONError(
            f"number {text[:32]} cannot be read exactly as a 64-bit float; send it as a string"
        )
    return value


def float_holds(text: str, value: float) -> bool:
    """True when ``value``, the double read from the number ``text``, says what it says.

    The shortest writing of the double (``repr``) must be the same number as the text
    (``0.1``, ``1.50``, ``1E2``, ``16.990000000000002``): what is checked as a double is
    then, compared and tested for being an integer, what a reader of exact decimals sees.
    ``100.00000000000000001`` (read as 100.0: it passes ``maximum: 100`` and ``type:
    integer``) and ``1e-400`` (read as 0.0) do not hold.
    """
    shortest = repr(value)
    return shortest == text or Decimal(text) == Decimal(shortest)


_DECODERS = {
    exact: json.JSONDecoder(
        object_pairs_hook=_no_duplicates,
        parse_constant=_reject_constant,
        parse_float=_exact_float if exact else _finite_float,
    )
    for exact in (True, False)
}

_MISSING: Any = object()
_WHITESPACE = b" \t\n\r"


def _loads_proven(data: bytes) -> Any:
    """orjson's parse when the text proves it holds no duplicate key, else ``_MISSING``.

    A text without a backslash is proven by counting colons against orjson's writing of
    the parsed value (:func:`no_key_dropped`), so pretty-printed texts qualify. A text
    equal to that writing, or equal once whitespace is taken out of both (what compact
    and pretty-printing clients send: no number holds whitespace, and without escapes the
    strings are written as they came), is settled by that comparison alone, numbers
    included: orjson writes each double shortest, so such a text holds no number a double
    changed. Otherwise a text with a number orjson may have read as another
    (:func:`numbers_may_change`: an integer beyond 64 bits, which the standard library
    keeps exact; a decimal of more digits than a double holds, which it refuses) takes the
    standard library path, as do texts with escapes and texts that orjson refuses (invalid
    UTF-8, NaN, 1e400, lone surrogates): it accepts or refuses them with the precise reason.
    """
    if b"\\" in data:
        return _MISSING
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _MISSING
    try:
        written = orjson.dumps(value)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (255 levels)
        return _MISSING
    if written == data or data.translate(None, _WHITESPACE) == written.translate(None, _WHITESPACE):
        return value
    if not no_key_dropped(data, written) or numbers_may_change(data):
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


# Digits and dots read as "0" (and "E" as "e"): a run of 16 is where a number of 16
# significant digits or more could be (15 survive a double; fewer characters cannot hold
# more digits), and "e-000" where an exponent of -100 or less is: the subnormal doubles,
# below 2.2e-308, keep fewer digits.
_NUMERALS_TO_ZERO = bytes.maketrans(b"123456789.E", b"0000000000e")
_LONG_RUN = b"0" * 16
# Spelt out, so that the search starts from a literal (a class at every offset: 100 µs).
_LONG_NUMBER = re.compile(rb"0000000000000000+(?:e[-+]?0+)?")
_TINY_NUMBER = re.compile(rb"0+e-0000*")
# A literal pattern: re's search for it took half the time of ``b"e-000" in zeros``, whose
# search keys on the last byte, the most common one in such a text.
_TINY = re.compile(rb"e-000")
_MINUS = ord("-")
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def numbers_may_change(body: bytes) -> bool:
    """True when a number of the text may not survive orjson's parse and its writing.

    Looks at the raw text, strings included: a match inside a string only costs the slower
    path (the standard library's parse; the response filter's exact writing). Most long
    numbers were written shortest by their sender's serializer (computed prices:
    ``16.990000000000002``), so all of them are first read and written by orjson at once;
    only when that changes one is each looked at (:func:`_survives`).
    """
    tokens = _candidates(body)
    if not tokens:
        return False
    joined = b"[" + b",".join(tokens) + b"]"
    try:
        if orjson.dumps(orjson.loads(joined)) == joined:
            return False
    except orjson.JSONDecodeError:
        pass
    return not all(_survives(token) for token in tokens)


def _candidates(body: bytes) -> list[bytes]:
    """The numbers of the text that a double may not hold, with sign and exponent."""
    zeros = body.translate(_NUMERALS_TO_ZERO)
    spans: list[tuple[int, int]] = []
    if _LONG_RUN in zeros:
        spans += [m.span() for m in _LONG_NUMBER.finditer(zeros)]
    if _TINY.search(zeros) is not None:
        spans += [m.span() for m in _TINY_NUMBER.finditer(zeros)]
    return [
        body[start - 1 if start and body[start - 1] == _MINUS else start : end]
        for start, end in spans
    ]


def _survives(token: bytes) -> bool:
    text = token.decode("ascii")
    try:
        if "." not in text and "e" not in text and "E" not in text:
            return _INT64_MIN <= int(text) <= _UINT64_MAX
        return float_holds(text, float(text))
    except (ValueError, InvalidOperation):
        return False  # "2026.11.28...": no number, so no telling; take the slower path


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

    Counting brackets first settles most texts: a JSON text nests at most half as deep as
    it has brackets (each level opens and closes one; strings only add), and one
    ``translate`` counts them all (0.8 µs per 2 KB; two ``count`` calls took 1.2).
    Otherwise the strings are cut out with byte operations (C speed): escaped backslashes
    and then escaped quotes are neutralised, left to right as JSON reads them, so every
    quote left delimits a string, and the pieces outside strings are the even ones between
    quotes. Only the brackets are then walked in Python. Linear in the text, and it never
    parses: a too-deep text is refused before any parser recurses into it. (Invalid JSON
    may be misjudged; the parser refuses it next.) A regular expression did the string
    cutting until it was found to be quadratic on escaped quotes that never close a string
    (80 KB: 37 s).
    """
    if len(data.translate(None, _NOT_BRACKETS)) <= 2 * max_depth:
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


def loads_strict(data: bytes | str, *, max_depth: int = 64, exact_numbers: bool = True) -> Any:
    """Parse untrusted JSON; raise :class:`JSONError` on anything ambiguous or abusive.

    A decimal that a double cannot hold (:func:`float_holds`) is refused unless
    ``exact_numbers`` is False (then it is read as the nearest double, for a caller that
    keeps the text's own spelling of numbers, as the response filter does).
    """
    if isinstance(data, bytes):
        if depth_exceeds(data, max_depth):
            raise JSONError(f"nesting deeper than {max_depth} levels")
        value = _loads_proven(data)
        if value is not _MISSING:
            return value
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as not_utf8:
            raise JSONError("body is not valid UTF-8") from not_utf8
    else:
        text = data
    try:
        value, end = _DECODERS[exact_numbers].raw_decode(text, _skip_ws(text, 0))
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
