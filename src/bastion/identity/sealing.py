"""Keyed hashing and sealing with the service secret (``secret_key`` in the settings).

* :meth:`Sealer.digest` — HMAC-SHA-256 of a high-entropy secret (client secrets, refresh
  tokens, codes, session ids, recovery codes): what is stored at rest; lookups are by
  digest and equality is checked again with :func:`hmac.compare_digest`.
* :meth:`Sealer.seal` / :meth:`Sealer.open` — AES-256-GCM for what must be recovered
  (TOTP seeds, private signing keys), with the purpose bound as associated data.
* :meth:`Sealer.audit_id` — a short keyed hash of an identifier for audit lines, so logs
  correlate events without naming users.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["Sealer", "b64url", "new_token"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_token(nbytes: int = 32) -> str:
    """A fresh URL-safe random secret (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def _derive(master: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(master)


class Sealer:
    def __init__(self, master: bytes) -> None:
        if len(master) < 32:
            raise ValueError("the secret key must be at least 32 bytes")
        self._hash_key = _derive(master, b"bastion-identity/digest")
        self._audit_key = _derive(master, b"bastion-identity/audit")
        self._csrf_key = _derive(master, b"bastion-identity/csrf")
        self._aead = AESGCM(_derive(master, b"bastion-identity/seal"))

    def digest(self, secret: str) -> str:
        return hmac.new(self._hash_key, secret.encode("utf-8"), hashlib.sha256).hexdigest()

    def matches(self, secret: str, stored_digest: str | None) -> bool:
        """Constant-time check of ``secret`` against a stored digest (None never matches)."""
        expected = stored_digest or "0" * 64
        ok = hmac.compare_digest(self.digest(secret), expected)
        return ok and stored_digest is not None

    def audit_id(self, identifier: str) -> str:
        mac = hmac.new(self._audit_key, identifier.encode("utf-8"), hashlib.sha256)
        return mac.hexdigest()[:16]

    def csrf(self, binding: str) -> str:
        return b64url(hmac.new(self._csrf_key, binding.encode("utf-8"), hashlib.sha256).digest())

    def csrf_ok(self, binding: str, token: str) -> bool:
        return hmac.compare_digest(self.csrf(binding).encode(), token.encode("utf-8", "replace"))

    def seal(self, plaintext: bytes, purpose: str) -> str:
        nonce = secrets.token_bytes(12)
        return "v1." + b64url(nonce + self._aead.encrypt(nonce, plaintext, purpose.encode()))

    def open(self, sealed: str, purpose: str) -> bytes:
        """Decrypt; raises ``ValueError`` if the value was tampered with or keyed differently."""
        if not sealed.startswith("v1."):
            raise ValueError("unknown sealing version")
        raw = _unb64url(sealed[3:])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], purpose.encode())
        except Exception as exc:  # cryptography raises InvalidTag
            raise ValueError("sealed value cannot be opened with this key") from exc
