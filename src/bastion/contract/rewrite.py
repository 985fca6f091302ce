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
from typing import Any

import orjson

from bastion.jsonutil import no_key_dropped, numbers_may_change

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
    if not numbers_may_change(body):
        return _dump(document) if written is None else written
    exact = json.loads(body, parse_float=orjson.Fragment, parse_int=orjson.Fragment)
    try:
        return orjson.dumps(_restrict(document, exact))
    except orjson.JSONEncodeError:
        # Fragments leave orjson nothing it cannot write but a document beyond its depth.
        raise RecursionError("document too deep to write exactly") from None


def _restrict(kept: Any, exact: Any) -> Any:
    """``exact`` (the same text, numbers kept as written) cut to the keys ``kept`` holds."""
    if type(kept) is dict:
        return {key: _restrict(value, exact[key]) for key, value in kept.items()}
    if type(kept) is list:
        return [_restrict(value, twin) for value, twin in zip(kept, exact, strict=True)]
    return exact
