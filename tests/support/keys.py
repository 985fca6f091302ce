"""Signing keys and tokens for tests that talk to a real gateway."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.vectors.jwt_attacks import _public_jwk, valid_token

ISSUER = "https://id.test.bastion"
AUDIENCE = "api://shop"


@dataclass
class KeyIssuer:
    key: ec.EllipticCurvePrivateKey
    kid: str
    jwks_path: Path

    @property
    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def public_jwk(self) -> dict[str, Any]:
        return _public_jwk(self.key)

    def token(self, sub: str, roles: list[str], **claims: Any) -> str:
        return valid_token(
            self.key, ISSUER, AUDIENCE, self.kid, time.time(), sub=sub, roles=roles, **claims
        )

    def config(self) -> str:
        return f"""authentication:
  jwt:
    - issuer: {ISSUER}
      audiences: [{AUDIENCE}]
      algorithms: [ES256]
      keys: ["{self.jwks_path}"]
"""


def make_issuer(tmp: Path) -> KeyIssuer:
    key = ec.generate_private_key(ec.SECP256R1())
    kid = "test-key-1"
    path = tmp / "jwks.json"
    path.write_text(
        json.dumps({"keys": [{**_public_jwk(key), "kid": kid, "use": "sig", "alg": "ES256"}]})
    )
    return KeyIssuer(key, kid, path)
