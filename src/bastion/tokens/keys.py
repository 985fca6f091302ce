"""Verification keys: loading (PEM SPKI, JWK, JWKS) and lookup by ``kid`` and ``alg``.

- RFC 7517 §4/§5: JWK and JWK Set. Keys with an unknown ``kty``, ``use`` other than
  ``sig``, ``key_ops`` without ``verify``, or a ``alg`` member different from the token's
  are never used for it (RFC 8725 §3.1: one key, one algorithm).
- Private key material is refused: a verifier holds public keys only. The one exception
  is an HMAC secret, accepted only as a static JWK with ``"kty": "oct"`` of at least
  32 bytes, and at least the hash size for HS384/HS512 (RFC 7518 §3.2).
- RSA keys under 2048 bits are refused (RFC 7518 §3.3, NIST SP 800-131A).
- A key is usable only for the algorithms of its family (RFC 8725 §2.1: an RSA or EC
  public key can never act as an HMAC secret). The allowed (kid, alg) pairs are
  computed once per key set, so the per-token lookup is one dict access.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, JWKRegistry, Key, OctKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from bastion.jsonutil import JSONError, loads_strict

__all__ = [
    "MAX_JWKS_BYTES",
    "MAX_JWKS_KEYS",
    "KeyLoadError",
    "KeyStore",
    "load_key_file",
    "parse_jwk",
    "parse_jwks",
]

#: Largest JWKS document accepted (bytes) and the most keys taken from it.
MAX_JWKS_BYTES = 64 * 1024
MAX_JWKS_KEYS = 64
_MAX_KEY_FILE_BYTES = 1024 * 1024
_MIN_RSA_BITS = 2048
_MIN_HMAC_BYTES = 32
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_EDDSA_CURVES = frozenset({"Ed25519", "Ed448"})


class KeyLoadError(ValueError):
    """A key or key set cannot be used; the message says why (never contains key bytes)."""


def parse_jwk(data: Any, *, allow_oct: bool) -> Key:
    """Import one public JWK (RFC 7517 §4), or an HMAC ``oct`` JWK when ``allow_oct``."""
    if not isinstance(data, dict):
        raise KeyLoadError("a JWK must be a JSON object")
    kty = data.get("kty")
    if not isinstance(kty, str):
        raise KeyLoadError("JWK without a string 'kty'")
    kid = data.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise KeyLoadError("JWK 'kid' must be a string")
    if kty == "oct":
        if not allow_oct:
            raise KeyLoadError("symmetric (oct) keys are only accepted from static files")
    elif _PRIVATE_MEMBERS & data.keys():
        raise KeyLoadError(f"JWK {kid!r} contains private key material; give the public key")
    if kty not in JWKRegistry.key_types:
        raise KeyLoadError(f"unsupported key type {kty!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)
            key = JWKRegistry.import_key(dict(data))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise KeyLoadError(f"invalid {kty} JWK {kid!r}: {type(exc).__name__}") from None
    _check_strength(key)
    return key


def _check_strength(key: Key) -> None:
    if isinstance(key, RSAKey) and key.public_key.key_size < _MIN_RSA_BITS:
        raise KeyLoadError(f"RSA key {key.kid!r} is shorter than {_MIN_RSA_BITS} bits")
    if isinstance(key, OctKey) and len(key.raw_value) < _MIN_HMAC_BYTES:
        raise KeyLoadError(f"HMAC key {key.kid!r} is shorter than {_MIN_HMAC_BYTES} bytes")


def parse_jwks(
    body: bytes, *, allow_oct: bool = False, max_keys: int = MAX_JWKS_KEYS
) -> tuple[list[Key], list[str]]:
    """Parse a JWK Set (RFC 7517 §5). Returns (usable keys, reasons for skipped keys).

    Members that cannot be used are skipped (RFC 7517 §5: "ignore JWKs ... that it does
    not understand"); a set without any usable key, too large, or malformed is an error.
    """
    if len(body) > MAX_JWKS_BYTES:
        raise KeyLoadError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
    try:
        document = loads_strict(body)
    except JSONError as exc:
        raise KeyLoadError(f"JWKS is not strict JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeyLoadError("JWKS must be an object with a 'keys' list")
    entries = document["keys"]
    if len(entries) > max_keys:
        raise KeyLoadError(f"JWKS has more than {max_keys} keys")
    keys: list[Key] = []
    skipped: list[str] = []
    for entry in entries:
        try:
            keys.append(parse_jwk(entry, allow_oct=allow_oct))
        except KeyLoadError as exc:
            skipped.append(str(exc))
    if not keys:
        detail = f": {'; '.join(skipped[:3])}" if skipped else ""
        raise KeyLoadError(f"JWKS contains no usable key{detail}")
    return keys, skipped


def _from_public_key(obj: object) -> Key:
    if isinstance(obj, RSAPublicKey):
        if obj.key_size < _MIN_RSA_BITS:
            raise KeyLoadError(f"RSA key is shorter than {_MIN_RSA_BITS} bits")
        return RSAKey.import_key(obj)
    if isinstance(obj, EllipticCurvePublicKey):
        return ECKey.import_key(obj)
    if isinstance(obj, Ed25519PublicKey | Ed448PublicKey):
        return OKPKey.import_key(obj)
    raise KeyLoadError(f"unsupported public key type {type(obj).__name__}")


def load_key_file(path: str) -> list[Key]:
    """Load a static key file: PEM SPKI public key, a JWK, or a JWKS (JSON)."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyLoadError(f"cannot read key file: {exc.strerror}") from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise KeyLoadError("key file is larger than 1 MiB")
    stripped = data.strip()
    if stripped.startswith(b"-----BEGIN"):
        if not stripped.startswith(b"-----BEGIN PUBLIC KEY-----"):
            raise KeyLoadError("PEM key files must hold a public key (BEGIN PUBLIC KEY)")
        try:
            public = load_pem_public_key(stripped)
        except (ValueError, TypeError) as exc:
            raise KeyLoadError(f"invalid PEM public key: {type(exc).__name__}") from None
        return [_from_public_key(public)]
    if len(data) > MAX_JWKS_BYTES:
        raise KeyLoadError(f"JWK/JWKS files are limited to {MAX_JWKS_BYTES} bytes")
    try:
        document = loads_strict(data)
    except JSONError as exc:
        raise KeyLoadError(f"key file is neither PEM nor strict JSON: {exc}") from None
    if isinstance(document, dict) and "keys" in document:
        keys, skipped = parse_jwks(data, allow_oct=True)
        if skipped:
            raise KeyLoadError("; ".join(skipped))
        return keys
    return [parse_jwk(document, allow_oct=True)]


def _usable_for(key: Key, alg: str) -> bool:
    """Whether ``key`` may verify ``alg`` (RFC 8725 §2.1, §3.1)."""
    model = JWSRegistry.algorithms.get(alg)
    if model is None:
        return False
    try:
        model.check_key(key)  # use == sig, kty matches the family, JWK "alg", EC curve
        key.check_key_op("verify")
    except JoseError:
        return False
    if isinstance(key, OctKey):
        return len(key.raw_value) >= _HMAC_MIN_BYTES.get(alg, 1 << 30)
    if isinstance(key, OKPKey):
        return key.curve_name in _EDDSA_CURVES and (alg == "EdDSA" or key.curve_name == alg)
    return True


class KeyStore:
    """An immutable set of verification keys of one issuer, indexed by (kid, alg).

    Keys without an explicit ``kid`` are indexed under their RFC 7638 thumbprint. A token
    without ``kid`` (optional per RFC 7515 §4.1.4) is tried against every key usable for
    its algorithm; a set holds at most :data:`MAX_JWKS_KEYS` keys.
    """

    __slots__ = ("_by_alg", "_by_kid_alg", "_kids", "thumbprints")

    def __init__(self, keys: Iterable[Key], algorithms: Collection[str]) -> None:
        by_kid_alg: dict[tuple[str, str], list[Key]] = {}
        by_alg: dict[str, list[Key]] = {}
        kids: set[str] = set()
        thumbprints: set[str] = set()
        for key in keys:
            explicit = key.kid
            thumb = key.thumbprint()
            thumbprints.add(thumb)
            kid = explicit if explicit is not None else thumb
            kids.add(kid)
            for alg in algorithms:
                if not _usable_for(key, alg):
                    continue
                by_kid_alg.setdefault((kid, alg), []).append(key)
                by_alg.setdefault(alg, []).append(key)
        self._by_kid_alg: Mapping[tuple[str, str], tuple[Key, ...]] = {
            k: tuple(v) for k, v in by_kid_alg.items()
        }
        self._by_alg: Mapping[str, tuple[Key, ...]] = {k: tuple(v) for k, v in by_alg.items()}
        self._kids = frozenset(kids)
        #: RFC 7638 thumbprints of every key, to tell whether a refresh removed keys.
        self.thumbprints = frozenset(thumbprints)

    def __len__(self) -> int:
        return len(self.thumbprints)

    def knows_kid(self, kid: str) -> bool:
        return kid in self._kids

    def candidates(self, kid: str | None, alg: str) -> tuple[Key, ...]:
        """Keys that may verify a token with this ``kid`` and ``alg`` (possibly empty)."""
        if kid is None:
            return self._by_alg.get(alg, ())
        return self._by_kid_alg.get((kid, alg), ())
