"""JWT access tokens per RFC 9068 ("JWT Profile for OAuth 2.0 Access Tokens").

§2.1: header ``typ: at+jwt``, signed (ES256 here, with ``kid``). §2.2: claims ``iss``,
``exp``, ``aud``, ``sub``, ``client_id``, ``iat``, ``jti``; ``scope`` (§2.2.3, space
delimited) and ``roles`` (§2.2.3.1). For the client credentials grant ``sub`` is the
client id (§2.2). :meth:`AccessTokens.verify` is what introspection (RFC 7662) uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from bastion.identity.keys import KeyStore
from bastion.identity.sealing import b64url, new_token
from bastion.jsonutil import JSONError, dumps, loads_strict

__all__ = ["AccessTokens", "IssuedToken"]

_MAX_TOKEN = 8192


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    issued_at: int
    expires_at: int


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


class _ES256Signer:
    """JWS compact serialisation with ES256 (RFC 7515 §7.1, RFC 7518 §3.4), done directly
    on ``cryptography``: the header segment is computed once per key, the signature is the
    fixed-width ``R || S``. Measured about twice as fast as the generic joserfc path on the
    token endpoint; verification (here and at the gateway) still goes through joserfc."""

    __slots__ = ("_key", "_prefix", "kid")

    def __init__(self, kid: str, key: ECKey) -> None:
        self.kid = kid
        private = key.private_key
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise ValueError("not an EC private key")
        if not isinstance(private.curve, ec.SECP256R1):
            raise ValueError("ES256 needs a P-256 key")
        self._key = private
        header = dumps({"typ": "at+jwt", "alg": "ES256", "kid": kid})
        self._prefix = b64url(header) + "."

    def sign(self, payload: bytes) -> str:
        signing_input = self._prefix + b64url(payload)
        r, s = decode_dss_signature(self._key.sign(signing_input.encode("ascii"), _ECDSA_SHA256))
        return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class AccessTokens:
    def __init__(self, keys: KeyStore, issuer: str, ttl: int) -> None:
        self._keys = keys
        self.issuer = issuer
        self.ttl = ttl
        self._signer: _ES256Signer | None = None

    def issue(
        self,
        *,
        subject: str,
        client_id: str,
        audience: str,
        scope: Iterable[str],
        roles: Iterable[str],
        now: float,
        auth_time: float | None = None,
    ) -> IssuedToken:
        kid, key = self._keys.signing_key()
        signer = self._signer
        if signer is None or signer.kid != kid:
            signer = self._signer = _ES256Signer(kid, key)
        iat = int(now)
        jti = new_token(16)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "client_id": client_id,
            "iat": iat,
            "exp": iat + self.ttl,
            "jti": jti,
            "scope": " ".join(sorted(set(scope))),
            "roles": sorted(set(roles)),
        }
        if auth_time is not None:
            claims["auth_time"] = int(auth_time)
        return IssuedToken(signer.sign(dumps(claims)), jti, iat, iat + self.ttl)

    def verify(self, token: str, now: float) -> dict[str, Any] | None:
        """Claims of a token this service signed that is unexpired; otherwise ``None``."""
        if len(token) > _MAX_TOKEN or token.count(".") != 2:
            return None
        try:
            sig = jws.deserialize_compact(token, self._keys.keyset(), algorithms=["ES256"])
            header = sig.headers()
            if header.get("typ") != "at+jwt" or "crit" in header:
                return None
            claims = loads_strict(sig.payload)
        except (JoseError, JSONError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(claims, dict) or claims.get("iss") != self.issuer:
            return None
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= now:
            return None
        return claims
