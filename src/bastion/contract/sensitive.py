"""Sensitive-data detector for response bodies (OWASP API3:2023 excessive data exposure).

Looks at field names (``password``, ``secret``, ``token``, ``api_key``, ``ssn``,
``credit_card``, ``private_key`` …, compared after lower-casing and dropping ``_``, ``-``
and ``.``) and at string values that look like a JWT (three base64url segments, the first
two starting ``eyJ``), a payment card number (13–19 digits starting 3–6, Luhn check), a PEM
private key, or an AWS access key id (``AKIA``/``ASIA`` + 16). Checks are plain string
operations, linear in the value. Findings carry the JSON pointer and the kind — never the
value — so they are safe to log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bastion.contract.documents import escape_pointer

__all__ = [
    "MAX_FINDINGS",
    "Scanner",
    "SensitiveFinding",
    "name_is_sensitive",
    "to_pointer",
    "value_kind",
]

MAX_FINDINGS = 100

_NAME_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "creditcard",
    "cardnumber",
    "ccnumber",
    "socialsecurity",
    "authorization",
    "sessionid",
    "accesskey",
    "credential",
)
_NAME_EXACT = frozenset({"ssn", "pwd", "pin", "cvv", "cvc", "cvv2", "iban", "otp", "totp"})
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_AWS = re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}")
_CARD_CHARS = frozenset("0123456789 -")


@dataclass(frozen=True, slots=True)
class SensitiveFinding:
    """One suspicious field: where, what kind, and whether the projection removed it."""

    pointer: str
    #: ``field_name`` | ``jwt`` | ``card_number`` | ``private_key`` | ``aws_access_key``
    kind: str
    #: True when the field was removed from the response by the projection.
    filtered: bool


@lru_cache(maxsize=4096)
def name_is_sensitive(name: str) -> bool:
    norm = name.lower().replace("_", "").replace("-", "").replace(".", "")
    return norm in _NAME_EXACT or any(part in norm for part in _NAME_PARTS)


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def value_kind(value: str) -> str | None:
    """The kind of secret a string looks like, or None."""
    if len(value) < 13:
        return None
    if value.startswith("eyJ") and value.count(".") == 2:
        head, payload, signature = value.split(".")
        if payload.startswith("eyJ") and all(
            _B64URL.fullmatch(part) for part in (head, payload, signature)
        ):
            return "jwt"
    if "-----BEGIN" in value and "PRIVATE KEY-----" in value:
        return "private_key"
    if len(value) == 20 and _AWS.fullmatch(value):
        return "aws_access_key"
    if len(value) <= 23 and value[0] in "3456" and _CARD_CHARS.issuperset(value):
        digits = value.replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _luhn(digits):
            return "card_number"
    return None


def _token(token: str | int) -> str:
    if type(token) is int:
        return str(token)
    text = str(token)
    if "~" in text or "/" in text or not text.isascii():
        return escape_pointer(text)
    return text


def to_pointer(path: list[str | int]) -> str:
    """RFC 6901 pointer for a path of keys and indexes."""
    return "/" + "/".join([_token(t) for t in path]) if path else ""


class Scanner:
    """Collects findings and removed pointers during the projection walk (one per response).

    ``path`` is the current location as a stack of tokens; pointers are only built when
    something is reported, so the clean path costs no string work.
    """

    __slots__ = ("findings", "path", "prefix", "removed")

    def __init__(self, prefix: str = "") -> None:
        self.findings: list[SensitiveFinding] = []
        self.removed: list[str] = []
        self.path: list[str | int] = []
        self.prefix = prefix

    def pointer(self) -> str:
        return self.prefix + to_pointer(self.path)

    def add(self, kind: str, filtered: bool) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(SensitiveFinding(self.pointer(), kind, filtered))

    def check_leaf(self, value: str, sensitive_name: bool) -> None:
        """Report a kept string leaf at the current path (name and/or value)."""
        if sensitive_name:
            self.add("field_name", False)
        kind = value_kind(value)
        if kind:
            self.add(kind, False)

    def check_name(self, name: str, filtered: bool) -> None:
        if name_is_sensitive(name):
            self.add("field_name", filtered)

    def scan(self, value: Any, filtered: bool) -> None:
        """Walk a whole subtree (kept as-is or removed) for names and values."""
        kind = type(value)
        if kind is str:
            if len(value) >= 13:
                found = value_kind(value)
                if found:
                    self.add(found, filtered)
        elif kind is dict:
            path = self.path
            for key, item in value.items():
                path.append(key)
                if name_is_sensitive(key):
                    self.add("field_name", filtered)
                item_kind = type(item)
                if item_kind is dict or item_kind is list or item_kind is str:
                    self.scan(item, filtered)
                path.pop()
        elif kind is list:
            path = self.path
            for index, item in enumerate(value):
                item_kind = type(item)
                if item_kind is dict or item_kind is list or item_kind is str:
                    path.append(index)
                    self.scan(item, filtered)
                    path.pop()
