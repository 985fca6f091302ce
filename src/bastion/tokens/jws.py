"""JWS compact serialization, parsed strictly, and signature checks (RFC 7515, RFC 8725).

Only the JWS Compact Serialization (RFC 7515 §7.1) is accepted: exactly three
base64url segments, no padding, canonical encoding, non-empty signature. A JWE
(five segments, RFC 7516 §7.1) and the JWS JSON serialization (RFC 7515 §7.2) are
refused. Header and payload are parsed with :func:`bastion.jsonutil.loads_strict`
(duplicate names refused: RFC 8725 §3.9, RFC 7515 §5.2 step 4).

Header rules (RFC 8725 §2.1, §3.1, §3.10, RFC 7515 §4.1.11):
``alg`` compared exactly against an allow-list, ``none`` refused in every casing;
``crit`` refused (we implement no extension, so ``b64: false`` of RFC 7797 is refused
too); ``jku``, ``x5u`` and ``jwk`` refused, never followed; ``x5c`` ignored.

Signature: the key-type/algorithm pairing is enforced by :class:`.keys.KeyStore`;
ECDSA signatures are additionally checked to have ``0 < r, s < n`` before the
cryptographic check (the "psychic signatures" class, CVE-2022-21449).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import Key
from joserfc.jws import JWSRegistry

from bastion.errors import InvalidToken
from bastion.jsonutil import JSONError, loads_strict

from .config import normalize_typ

__all__ = ["ParsedToken", "decode_segment", "parse_compact", "verify_signature"]

_B64URL = re.compile(rb"[A-Za-z0-9_-]*")
#: ECDSA group orders (SEC 2 v2 §2.4.2, §2.5.1, §2.6.1; FIPS 186-4 D.1.2).
_EC_ORDER = {
    "ES256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "ES384": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
        "581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
    "ES512": int(
        "01FF" + "FFFFFFFF" * 7 + "FFFFFFFA"
        "51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
        16,
    ),
}
_EC_SIG_BYTES = {"ES256": 64, "ES384": 96, "ES512": 132}
_MAX_KID = 1024
_MAX_DEPTH = 32


def _fail(reason: str) -> InvalidToken:
    return InvalidToken(reason=f"jwt.{reason}")


def decode_segment(segment: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2, §C): canonical encodings only."""
    raw = segment.encode("ascii")
    if _B64URL.fullmatch(raw) is None or len(raw) % 4 == 1:
        raise _fail("malformed")
    try:
        data = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise _fail("malformed") from None
    if base64.urlsafe_b64encode(data).rstrip(b"=") != raw:
        raise _fail("malformed")  # non-canonical trailing bits: a malleable encoding
    return data


def _json_object(segment: str, what: str) -> dict[str, Any]:
    raw = decode_segment(segment)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail("not_utf8") from None
    # loads_strict pre-scans nesting depth in pure Python; when the document has fewer
    # brackets than the cap, no nesting can exceed it and the (C-speed) count suffices.
    brackets = text.count("{") + text.count("[")
    max_depth = len(text) + 1 if brackets <= _MAX_DEPTH else _MAX_DEPTH
    try:
        value = loads_strict(text, max_depth=max_depth)
    except JSONError as exc:
        if str(exc).startswith("duplicate key"):
            raise _fail("duplicate_key") from None
        raise _fail(f"{what}_invalid") from None
    if not isinstance(value, dict):
        raise _fail(f"{what}_invalid")
    return value


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A compact JWS whose structure and header passed; the signature is not yet checked."""

    header: dict[str, Any]
    payload: dict[str, Any]
    alg: str
    #: Normalised ``typ`` (RFC 7515 §4.1.9).
    typ: str
    kid: str | None
    signing_input: bytes
    signature: bytes


def parse_compact(
    token: str, allowed_algs: frozenset[str], allowed_types: frozenset[str]
) -> ParsedToken:
    """Structure, header and payload checks, cheapest first. Raises ``InvalidToken``.

    ``allowed_algs`` and ``allowed_types`` (normalised ``typ`` values) are the unions
    over all issuers: a cheap early refusal; the exact per-issuer allow-lists are
    checked again once ``iss`` is known.
    """
    if token[:1] == "{":
        raise _fail("json_serialization")
    dots = token.count(".")
    if dots == 4:
        raise _fail("jwe")
    if dots != 2:
        raise _fail("malformed")
    header_b64, payload_b64, signature_b64 = token.split(".")
    if not signature_b64:
        raise _fail("no_signature")
    if not header_b64 or not payload_b64:
        raise _fail("malformed")

    header = _json_object(header_b64, "header")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise _fail("alg_missing")
    if alg.lower() == "none":
        raise _fail("alg_none")
    if alg not in allowed_algs:
        raise _fail("alg_not_allowed")
    typ = header.get("typ")
    if not isinstance(typ, str) or normalize_typ(typ) not in allowed_types:
        raise _fail("typ")
    if "crit" in header:
        raise _fail("crit")
    if "b64" in header:
        raise _fail("b64")
    for name in ("jku", "x5u", "jwk"):
        if name in header:
            raise _fail(name)
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > _MAX_KID):
        raise _fail("kid_invalid")

    payload = _json_object(payload_b64, "payload")
    signature = decode_segment(signature_b64)
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    return ParsedToken(header, payload, alg, normalize_typ(typ), kid, signing_input, signature)


def verify_signature(parsed: ParsedToken, keys: tuple[Key, ...]) -> None:
    """Verify with the first matching key; raises ``InvalidToken`` when none verifies."""
    alg = parsed.alg
    signature = parsed.signature
    order = _EC_ORDER.get(alg)
    if order is not None:
        size = _EC_SIG_BYTES[alg]
        if len(signature) != size:
            raise _fail("bad_signature")  # e.g. a DER-encoded signature (RFC 7518 §3.4)
        half = size // 2
        r = int.from_bytes(signature[:half], "big")
        s = int.from_bytes(signature[half:], "big")
        if not (0 < r < order and 0 < s < order):
            raise _fail("ecdsa_range")  # CVE-2022-21449 "psychic signatures"
    model = JWSRegistry.algorithms[alg]
    for key in keys:
        try:
            if model.verify(parsed.signing_input, signature, key):
                return
        except (JoseError, ValueError, TypeError):
            continue
    raise _fail("bad_signature")
