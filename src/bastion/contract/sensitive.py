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
    "MAX_POINTER_CHARS",
    "Scanner",
    "SensitiveFinding",
    "cut_pointer",
    "keys_are_harmless",
    "name_is_sensitive",
    "pointer_token",
    "to_pointer",
    "value_kind",
    "values_may_hold_secrets",
]

MAX_FINDINGS = 100
#: The longest pointer written out (findings, removed fields): a pointer repeats every key
#: above it, so long keys nested deep would otherwise make megabytes of it.
MAX_POINTER_CHARS = 1_024

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


def name_is_sensitive(name: str) -> bool:
    # Remembered for names of ordinary length only: the cache is bounded in bytes too.
    return _name_is_sensitive(name) if len(name) <= 256 else _sensitive_norm(name)


@lru_cache(maxsize=4096)
def _name_is_sensitive(name: str) -> bool:
    return _sensitive_norm(name)


def _sensitive_norm(name: str) -> bool:
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


def pointer_token(token: str | int) -> str:
    """One RFC 6901 reference token (plain keys are returned as they are)."""
    if type(token) is int:
        return str(token)
    text = str(token)
    if "~" in text or "/" in text or not text.isascii():
        return escape_pointer(text)
    return text


def cut_pointer(pointer: str) -> str:
    """``pointer`` as written out: cut with ``…`` beyond :data:`MAX_POINTER_CHARS`."""
    if len(pointer) > MAX_POINTER_CHARS:
        return pointer[: MAX_POINTER_CHARS - 1] + "…"
    return pointer


def to_pointer(path: list[str | int]) -> str:
    """RFC 6901 pointer for a path of keys and indexes."""
    return "/" + "/".join([pointer_token(t) for t in path]) if path else ""


# values_may_hold_secrets: card characters (digits, space, dash) all read as "0", so that a
# quote followed by 13 of them, where a card number could start, is one substring search.
_CARD_TO_ZERO = bytes.maketrans(b"123456789 -", b"00000000000")
_CARD_START = b'"' + b"0" * 13
_AWS_START = re.compile(rb"A[KS]IA")


# Key sets (objects' keys, in order) already found harmless; forgotten all at once when
# full (upstream answers may invent keys). Longer ones are checked name by name.
_HARMLESS_KEYS: set[tuple[str, ...]] = set()
_HARMLESS_CAP = 4096
_HARMLESS_MAX_KEYS = 64
_HARMLESS_MAX_CHARS = 4_096


def values_may_hold_secrets(body: bytes) -> bool:
    """False only when no string in this JSON text can be a value :func:`value_kind` reports.

    A few searches of the raw bytes, so that a clean response needs no look at each of its
    strings. A reportable value starts right after its opening quote (``"eyJ``, a card
    number's 13–23 digits, spaces and dashes), contains ``AKIA``/``ASIA`` or contains
    ``PRIVATE KEY-----``. Searches for one byte are the cheapest, so ``Y``, ``J`` and ``I``
    are looked for before the strings that hold them (the private key marker alone took
    0.5 µs on the bench's 2 KB answer, its ``Y`` 0.17). JSON can spell letters and digits
    differently only with ``\\u`` escapes, so any ``\\u`` counts as a maybe. Keys match
    too: a maybe only costs the full scan.
    """
    if b"\\" in body and b"\\u" in body:
        return True
    if b"Y" in body and b"PRIVATE KEY-----" in body:
        return True
    if b"J" in body and b'"eyJ' in body:
        return True
    if b"I" in body and _AWS_START.search(body) is not None:
        return True
    return _CARD_START in body.translate(_CARD_TO_ZERO)


def keys_are_harmless(keys: tuple[str, ...]) -> bool:
    """True when none of an object's keys is a sensitive name (see :func:`name_is_sensitive`).

    Responses repeat their objects' shapes, so key tuples already found harmless are
    remembered and the usual answer costs one set lookup.
    """
    if keys in _HARMLESS_KEYS:
        return True
    if any(name_is_sensitive(name) for name in keys):
        return False
    if len(keys) <= _HARMLESS_MAX_KEYS and sum(map(len, keys)) <= _HARMLESS_MAX_CHARS:
        if len(_HARMLESS_KEYS) >= _HARMLESS_CAP:
            _HARMLESS_KEYS.clear()
        _HARMLESS_KEYS.add(keys)
    return True


class Scanner:
    """Collects findings in one walk over a parsed response (see :meth:`scan`).

    ``path`` is the current location as a stack of tokens; pointers are only built when
    something is reported, so the clean path costs no string work. ``doomed`` holds the
    (``id`` of the object, key) pairs the projection removes: what is found under them is
    reported as ``filtered``.
    """

    __slots__ = ("doomed", "findings", "path", "prefix")

    def __init__(self, prefix: str = "", doomed: set[tuple[int, str]] | None = None) -> None:
        self.findings: list[SensitiveFinding] = []
        self.path: list[str | int] = []
        self.prefix = prefix
        self.doomed = doomed or set()

    def pointer(self) -> str:
        return self.prefix + to_pointer(self.path)

    def add(self, kind: str, filtered: bool) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(SensitiveFinding(cut_pointer(self.pointer()), kind, filtered))

    def scan(self, value: Any, filtered: bool = False) -> None:
        """Walk a whole subtree for sensitive names and values."""
        kind = type(value)
        if kind is str:
            if len(value) >= 13:
                found = value_kind(value)
                if found:
                    self.add(found, filtered)
        elif kind is dict:
            path = self.path
            doomed = self.doomed
            owner = id(value)
            for key, item in value.items():
                path.append(key)
                gone = filtered or (owner, key) in doomed
                if name_is_sensitive(key):
                    self.add("field_name", gone)
                item_kind = type(item)
                if item_kind is dict or item_kind is list or item_kind is str:
                    self.scan(item, gone)
                path.pop()
        elif kind is list:
            path = self.path
            for index, item in enumerate(value):
                item_kind = type(item)
                if item_kind is dict or item_kind is list or item_kind is str:
                    path.append(index)
                    self.scan(item, filtered)
                    path.pop()
