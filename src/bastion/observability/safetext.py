"""Untrusted text (paths, principals, user agents, alert summaries) made safe to display.

Audit events and alerts carry values a remote client chose: a refused request's path may
hold ESC and BEL, a JWT ``sub`` may hold CR/LF or U+202E. Printed raw, they rewrite an
operator's terminal (clear the screen, set the title, fake lines), inject e-mail headers or
reorder text. :func:`printable` shows every such character as a visible escape instead.
"""

from __future__ import annotations

import orjson

__all__ = ["json_line", "printable"]

_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(value: object) -> str:
    """``value`` as one line of visible text: every character that is not printable (C0
    and C1 controls, DEL, Unicode format characters such as the bidi overrides U+202E or
    U+2066-2069 and zero-width ones, line and paragraph separators, surrogates, unassigned
    and private-use code points, spaces other than U+0020) becomes ``\\xNN``, ``\\uNNNN``
    or ``\\UNNNNNNNN`` (``\\n``, ``\\r``, ``\\t`` for those three), and a backslash is
    doubled so that an escape is never ambiguous."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and "\\" not in text:
        return text  # the common case: nothing to do
    return "".join(map(_escape, text))


def _json_escape(char: str) -> str:
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON wants
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_line(value: object) -> str:
    """Compact JSON whose text is printable too: orjson escapes C0 controls only, this also
    escapes DEL, C1 controls, bidi and other format characters (same JSON value)."""
    text = orjson.dumps(value).decode()
    if text.isprintable():
        return text
    # Outside strings orjson writes printable ASCII only, so anything found is inside a
    # string literal, where \\uXXXX means the same character.
    return "".join(map(_json_escape, text))
