"""One short string that matches a JSON Schema ``pattern`` (ECMA-262 regex, the common part).

Request bodies are only useful when the target accepts them: a ``sku`` constrained by
``^[A-Z0-9-]{3,32}$`` must not be sent as ``"bastion"``. The pattern is parsed with Python's
own regex parser and the shortest string is built from it (each repeat at its minimum, the
first alternative, the first member of a character class); the result is checked with
``re.search`` before it is used, so an unsupported construct gives ``None``, never a wrong
value.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

__all__ = ["matching_string"]

_parser: Any = importlib.import_module("re._parser")
_MAX_LENGTH = 256
_CATEGORY_CHARS = {
    "CATEGORY_DIGIT": "0",
    "CATEGORY_NOT_DIGIT": "a",
    "CATEGORY_WORD": "a",
    "CATEGORY_NOT_WORD": "-",
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_SPACE": "a",
}
_FALLBACK_CHARS = "aA0-_. x"


def _class_char(items: list[tuple[Any, Any]]) -> str | None:
    negate = any(str(op) == "NEGATE" for op, _ in items)
    if negate:
        members = "".join(c for c in _FALLBACK_CHARS if not _class_char_in(items, c))
        return members[0] if members else None
    for op, value in items:
        name = str(op)
        if name == "LITERAL":
            return chr(value)
        if name == "RANGE":
            low, high = value
            for c in "aA0":
                if low <= ord(c) <= high:
                    return c
            return chr(low)
        if name == "CATEGORY":
            return _CATEGORY_CHARS.get(str(value))
    return None


def _class_char_in(items: list[tuple[Any, Any]], char: str) -> bool:
    """Whether ``char`` is one of the (non-negated) members of a character class."""
    code = ord(char)
    for op, value in items:
        name = str(op)
        if name == "LITERAL" and value == code:
            return True
        if name == "RANGE" and value[0] <= code <= value[1]:
            return True
        if name == "CATEGORY":
            probe = {
                "CATEGORY_DIGIT": r"\d",
                "CATEGORY_NOT_DIGIT": r"\D",
                "CATEGORY_WORD": r"\w",
                "CATEGORY_NOT_WORD": r"\W",
                "CATEGORY_SPACE": r"\s",
                "CATEGORY_NOT_SPACE": r"\S",
            }.get(str(value))
            if probe is not None and re.fullmatch(probe, char):
                return True
    return False


def _build(items: Any, out: list[str]) -> bool:
    for op, value in items:
        name = str(op)
        if len(out) > _MAX_LENGTH:
            return False
        if name == "LITERAL":
            out.append(chr(value))
        elif name == "NOT_LITERAL":
            out.append("a" if value != ord("a") else "b")
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            char = _class_char(list(value))
            if char is None:
                return False
            out.append(char)
        elif name in {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}:
            low, _, sub = value
            for _ in range(min(int(low), _MAX_LENGTH)):
                if not _build(sub, out):
                    return False
        elif name == "SUBPATTERN":
            if not _build(value[-1], out):
                return False
        elif name == "ATOMIC_GROUP":
            if not _build(value, out):
                return False
        elif name == "BRANCH":
            if not value[1] or not _build(value[1][0], out):
                return False
        elif name in {"AT", "ASSERT", "ASSERT_NOT"}:
            continue  # anchors and lookarounds: the final check decides
        else:
            return False  # back-references, conditionals: not generated
    return True


def matching_string(pattern: str, preferred: str | None = None) -> str | None:
    """``preferred`` when it matches ``pattern``, else the shortest string built from it.

    ``None`` when the pattern cannot be compiled or no matching string could be built.
    """
    try:
        compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    if preferred is not None and compiled.search(preferred):
        return preferred
    try:
        parsed = _parser.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    out: list[str] = []
    if not _build(parsed, out):
        return None
    text = "".join(out)
    return text if compiled.search(text) else None
