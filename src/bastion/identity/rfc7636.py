"""Proof Key for Code Exchange, S256 only (RFC 7636 §4; RFC 9700 §2.1.1).

``plain`` is refused, and so is a missing ``code_challenge_method`` (RFC 7636 §4.3 would
default it to ``plain``). A verifier is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from bastion.identity.oautherrors import InvalidGrant, InvalidRequest
from bastion.identity.sealing import b64url

__all__ = ["challenge_for", "check_challenge", "verify"]

_CHARS = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def challenge_for(verifier: str) -> str:
    """The S256 challenge of a verifier (§4.2)."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def check_challenge(challenge: str | None, method: str | None) -> str:
    """Validate an authorization request's PKCE parameters; returns the challenge."""
    if not challenge:
        raise InvalidRequest("code_challenge is required (PKCE)", reason="pkce.missing")
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256", reason="pkce.method")
    if not _S256_CHALLENGE.fullmatch(challenge):
        raise InvalidRequest("code_challenge is malformed", reason="pkce.malformed")
    return challenge


def verify(verifier: str | None, challenge: str) -> None:
    """Raise ``invalid_grant`` unless ``verifier`` hashes to ``challenge`` (§4.6)."""
    if not verifier or not _CHARS.fullmatch(verifier):
        raise InvalidGrant("code_verifier is missing or malformed", reason="pkce.verifier")
    if not hmac.compare_digest(challenge_for(verifier), challenge):
        raise InvalidGrant("PKCE verification failed", reason="pkce.mismatch")
