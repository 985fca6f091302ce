"""Lone UTF-16 surrogates smuggled through JSON ``\\u`` escapes.

RFC 8259 §8.2: a string with an unpaired surrogate (``"\\ud800"``) is not valid Unicode and
its handling is unpredictable — a parser differential between the gateway and the upstream,
and jsonschema-rs cannot even convert such a string (it raises ``UnicodeEncodeError``).
Raw UTF-8 cannot carry surrogates (invalid UTF-8 is refused before parsing), so only bodies
containing a ``\\uD8..``–``\\uDF..`` escape are walked; everything else costs one search.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["has_lone_surrogate", "may_contain_surrogates", "unencodable"]

_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
_ESCAPE_TEXT = re.compile(r"\\u[dD][89a-fA-F]")


def may_contain_surrogates(raw: bytes | str) -> bool:
    """Cheap pre-check on the raw document."""
    if isinstance(raw, bytes):
        return b"\\" in raw and _ESCAPE_BYTES.search(raw) is not None
    return _ESCAPE_TEXT.search(raw) is not None


def unencodable(text: str) -> bool:
    """True when ``text`` holds a lone surrogate (UTF-8 cannot encode it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def has_lone_surrogate(value: Any) -> bool:
    """True when any key or string in a parsed JSON value holds a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if unencodable(item):
                return True
        elif isinstance(item, dict):
            for key, child in item.items():
                if unencodable(key):
                    return True
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
    return False
