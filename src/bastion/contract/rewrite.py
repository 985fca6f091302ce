"""What a filtered JSON response sends: the upstream's text, or the checked document.

The projection, the sensitive-data scan and the validator all read the document as orjson
parsed it. The upstream's text can say something else in two ways:

* a **repeated key**: the parse keeps the last occurrence, which is what was checked, but a
  client that keeps the first one reads a value nobody checked (``{"status": "<script>",
  "status": "accepted"}``; a template that pastes user input into JSON makes such texts);
* a **number a double cannot hold**: orjson reads an integer beyond 64 bits, or a decimal
  of more than 15 significant digits, as the nearest double; writing that double back
  would change the value for every client that reads numbers exactly (big integers,
  decimals: ``123456789012345678901234567890`` became ``1.2345678901234568e+29``).

So the upstream's text goes out only when nothing was removed and the text provably holds
exactly the key occurrences parsed (:func:`response_text`); otherwise the checked document
is written, each number spelt as the upstream spelt it.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from bastion.jsonutil import no_key_dropped

__all__ = ["response_text"]


def _dump(value: Any) -> bytes:
    """Compact JSON; the standard library writes what orjson cannot (deeper than 255)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def response_text(body: bytes, document: Any, *, removed: bool) -> bytes:
    """``body`` itself when it says exactly what ``document`` holds, else ``document`` written.

    The text proves it by the colon count of :func:`bastion.jsonutil.no_key_dropped` (the
    request side's proof). A text with escapes is written again: counting cannot prove it,
    and the standard library's parse that could costs several times more. Raises
    RecursionError for a document nested too deeply to be written exactly.
    """
    written = None
    if not removed and b"\\" not in body:
        written = _dump(document)
        if no_key_dropped(body, written):
            return body
    if not _numbers_may_change(body):
        return _dump(document) if written is None else written
    exact = json.loads(body, parse_float=orjson.Fragment, parse_int=orjson.Fragment)
    try:
        return orjson.dumps(_restrict(document, exact))
    except orjson.JSONEncodeError:
        # Fragments leave orjson nothing it cannot write but a document beyond its depth.
        raise RecursionError("document too deep to write exactly") from None


# Digits and dots read as "0" (and "E" as "e"): a run of 16 is where a number of 16
# significant digits or more could be (15 survive a double; fewer characters cannot hold
# more digits), and "e-000" where an exponent of -100 or less is: the subnormal doubles,
# below 2.2e-308, keep fewer digits.
_NUMERALS_TO_ZERO = bytes.maketrans(b"123456789.E", b"0000000000e")
_LONG_RUN = b"0" * 16
_TINY = b"e-000"
# Spelt out, so that the search starts from a literal (a class at every offset: 100 µs).
_LONG_NUMBER = re.compile(rb"0000000000000000+(?:e[-+]?0+)?")
_TINY_NUMBER = re.compile(rb"0+e-0000*")
_MINUS = ord("-")
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _numbers_may_change(body: bytes) -> bool:
    """True when a number of the text may not survive orjson's parse and its writing.

    Looks at the raw text, strings included: a match inside a string only costs the exact
    writing. Most long numbers were written shortest by the upstream's own serializer
    (computed prices: ``16.990000000000002``), so all of them are first read and written
    by orjson at once; only when that changes one is each looked at (:func:`_survives`).
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
    if _TINY in zeros:
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
        shortest = repr(float(text))
        # Computed prices (12.990000000000002) come written shortest already: one compare.
        return shortest == text or Decimal(text) == Decimal(shortest)
    except (ValueError, InvalidOperation):
        return False  # "2026.11.28...": no number, so no telling; write it exactly


def _restrict(kept: Any, exact: Any) -> Any:
    """``exact`` (the same text, numbers kept as written) cut to the keys ``kept`` holds."""
    if type(kept) is dict:
        return {key: _restrict(value, exact[key]) for key, value in kept.items()}
    if type(kept) is list:
        return [_restrict(value, twin) for value, twin in zip(kept, exact, strict=True)]
    return exact
