"""Format checks written here instead of taken from jsonschema-rs.

``email`` (RFC 5321 §4.1.2 ``Mailbox`` with the §4.5.3.1 size limits): jsonschema-rs refuses
some valid addresses — a domain whose IDNA A-label is not lower-case
(``user@d.xN--6fRZ82G``, found by the property-based tests) — and a contract must not reject
valid input. The check is a single pass over the string with ``str`` operations and
:mod:`ipaddress` for address literals: linear time, no regular expression.
"""

from __future__ import annotations

import ipaddress
import string

__all__ = ["FORMATS", "is_email", "is_hostname"]

_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_ATEXT_DOT = _ATEXT | {"."}
_LDH = frozenset(string.ascii_letters + string.digits + "-")
_QTEXT = frozenset(chr(c) for c in range(32, 127)) - {'"', "\\"}
_VCHAR_SP = frozenset(chr(c) for c in range(32, 127))


def _dot_atom(text: str) -> bool:
    """Non-empty atext parts separated by single dots (``text`` is not empty)."""
    return text[0] != "." and text[-1] != "." and ".." not in text and _ATEXT_DOT.issuperset(text)


def _quoted(text: str) -> bool:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return False
    escaped = False
    for char in text[1:-1]:
        if escaped:
            if char not in _VCHAR_SP:
                return False
            escaped = False
        elif char == "\\":
            escaped = True
        elif char not in _QTEXT:
            return False
    return not escaped


def is_hostname(text: str) -> bool:
    """RFC 1123 §2.1 host name: LDH labels of 1–63 characters, 253 in all."""
    if not text or len(text) > 253:
        return False
    for label in text.split("."):
        if not (0 < len(label) <= 63) or label[0] == "-" or label[-1] == "-":
            return False
        if not _LDH.issuperset(label):
            return False
    return True


def _literal(text: str) -> bool:
    inner = text[1:-1]
    try:
        if inner[:5].lower() == "ipv6:":
            ipaddress.IPv6Address(inner[5:])
        else:
            ipaddress.IPv4Address(inner)
    except ValueError:
        return False
    return True


def is_email(value: object) -> bool:
    """RFC 5321 mailbox (ASCII; internationalised addresses are ``idn-email``)."""
    if not isinstance(value, str):
        return True  # formats only constrain strings
    if len(value) > 254 or not value.isascii():
        return False
    local, at, domain = value.rpartition("@")
    if not at or not local or len(local) > 64 or not domain:
        return False
    if not (_dot_atom(local) or _quoted(local)):
        return False
    if domain[0] == "[" and domain[-1] == "]":
        return _literal(domain)
    return is_hostname(domain)


FORMATS = {"email": is_email}
