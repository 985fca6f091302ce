"""HS256 JWTs for vulnapi (RFC 7519), written by hand so the vulnerable verifier can be wrong.

The vulnerable verifier accepts ``alg: none``, an empty signature and expired tokens, and
the vulnerable app signs with a secret from every wordlist. The fixed verifier pins HS256,
compares the signature in constant time and requires an unexpired ``exp``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

WEAK_SECRET = b"changeme"


class TokenError(Exception):
    """The token is not acceptable."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(secret: bytes, claims: dict[str, Any], lifetime: int = 3600) -> str:
    now = int(time.time())
    body = {**claims, "iat": now, "exp": now + lifetime}
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(body).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = _b64(hmac.new(secret, signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("not a JWS compact serialization")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
    except ValueError as exc:
        raise TokenError("undecodable") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenError("not objects")
    return header, claims, f"{parts[0]}.{parts[1]}", parts[2]


def verify_vulnerable(secret: bytes, token: str) -> dict[str, Any]:
    """PLANTED (API2): trusts the header's ``alg``, skips empty signatures, ignores ``exp``."""
    header, claims, signing_input, signature = _split(token)
    if header.get("alg", "").lower() == "none" or signature == "":
        return claims
    expected = _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    if signature != expected:
        raise TokenError("bad signature")
    return claims


def verify_fixed(secret: bytes, token: str) -> dict[str, Any]:
    header, claims, signing_input, signature = _split(token)
    if header.get("alg") != "HS256":
        raise TokenError("algorithm not allowed")
    expected = _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise TokenError("bad signature")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= time.time():
        raise TokenError("expired or no exp")
    return claims
