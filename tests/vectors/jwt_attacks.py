"""JWT attack vectors (RFC 8725 threat classes, jwt_tool-style), self-contained.

``attack_tokens(...)`` returns ``(case name, token)`` pairs; every token must be refused
by a verifier configured for ``issuer``/``audience`` with exactly the algorithm of
``signing_key`` (ES256 for P-256, ES384 for P-384, RS256 for RSA), ``typ`` allow-list
``at+jwt``/``JWT``, and the public key published under ``kid``. ``valid_token(...)`` is
the positive control. ``expected_reason(case, signing_key)`` gives the precise
``InvalidToken.reason`` Bastion's verifier reports for each case.

Only ``cryptography`` and the standard library are used, so an end-to-end suite can
import this module without Bastion's own code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

__all__ = [
    "ATTACKER_URL",
    "SigningKey",
    "attack_tokens",
    "b64url",
    "compact",
    "expected_reason",
    "sign",
    "valid_claims",
    "valid_token",
]

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
#: Default target of jku/x5u vectors; pass your own listening URL to assert no fetch.
ATTACKER_URL = "http://127.0.0.1:9/jwks.json"

_EC_ALG = {"secp256r1": ("ES256", hashes.SHA256, 32), "secp384r1": ("ES384", hashes.SHA384, 48)}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def key_alg(key: SigningKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    return _EC_ALG[key.curve.name][0]


def sign(key: SigningKey, alg: str, signing_input: bytes) -> bytes:
    """JWS signature bytes (RFC 7518 §3) for ES256/ES384/RS256/PS256."""
    if isinstance(key, rsa.RSAPrivateKey):
        if alg == "PS256":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return key.sign(signing_input, pss, hashes.SHA256())
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    _, hash_cls, size = _EC_ALG[key.curve.name]
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hash_cls())))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def compact(header: bytes | dict[str, Any], payload: bytes | dict[str, Any], key: Any) -> str:
    """Build a compact JWS from raw or dict header/payload; ``key`` may be a signing key,
    HMAC secret bytes, or None (empty signature)."""
    h = header if isinstance(header, bytes) else _json(header)
    p = payload if isinstance(payload, bytes) else _json(payload)
    signing_input = f"{b64url(h)}.{b64url(p)}".encode()
    alg: str | None = json.loads(h.decode("utf-8", "replace")).get("alg") if h[:1] == b"{" else None
    if key is None:
        sig = b""
    elif isinstance(key, bytes):
        digest = {"HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(alg or "", hashlib.sha256)
        sig = hmac.new(key, signing_input, digest).digest()
    else:
        sig = sign(key, alg or key_alg(key), signing_input)
    return f"{signing_input.decode()}.{b64url(sig)}"


def valid_claims(issuer: str, audience: str, now: float, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": "user-123",
        "aud": audience,
        "iat": int(now) - 10,
        "nbf": int(now) - 10,
        "exp": int(now) + 600,
        "jti": secrets.token_hex(8),
        "client_id": "client-1",
        "scope": "orders:read orders:write",
        "roles": ["customer"],
    }
    for name, value in overrides.items():
        if value is _DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


_DROP = object()


def valid_token(
    signing_key: SigningKey,
    issuer: str,
    audience: str,
    kid: str,
    now: float,
    *,
    typ: str = "at+jwt",
    **claims: Any,
) -> str:
    """A token that must verify (the positive control); ``claims`` override the defaults."""
    header = {"alg": key_alg(signing_key), "typ": typ, "kid": kid}
    return compact(header, valid_claims(issuer, audience, now, **claims), signing_key)


def _fresh_like(key: SigningKey) -> SigningKey:
    if isinstance(key, rsa.RSAPrivateKey):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(key.curve)


def attack_tokens(
    signing_key: SigningKey,
    public_key_pem: bytes,
    public_jwk: dict[str, Any],
    issuer: str,
    audience: str,
    kid: str,
    now: float,
    *,
    attacker_url: str = ATTACKER_URL,
) -> list[tuple[str, str]]:
    """Every attack case as (name, token). See the module docstring for the setup."""
    alg = key_alg(signing_key)
    header = {"alg": alg, "typ": "at+jwt", "kid": kid}
    claims = valid_claims(issuer, audience, now)
    good = compact(header, claims, signing_key)
    h64, p64, s64 = good.split(".")
    attacker = _fresh_like(signing_key)
    attacker_jwk = _public_jwk(attacker)
    der = serialization.load_pem_public_key(public_key_pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    out: list[tuple[str, str]] = []

    def add(name: str, token: str) -> None:
        out.append((name, token))

    # alg "none" in every casing (RFC 8725 §2.1); with an empty signature and with a
    # leftover real signature (so the header check, not the structure check, refuses).
    for casing in ("none", "None", "NONE", "nOnE"):
        none_header = {"alg": casing, "typ": "at+jwt", "kid": kid}
        add(f"alg_none_{casing}", compact(none_header, claims, None))
        add(f"alg_none_{casing}_signed", f"{b64url(_json(none_header))}.{p64}.{s64}")
    add("null_signature", f"{h64}.{p64}.")
    sig_bytes = base64.urlsafe_b64decode(s64 + "=" * (-len(s64) % 4))
    add("truncated_signature", f"{h64}.{p64}.{b64url(sig_bytes[:-8])}")
    other = compact(header, valid_claims(issuer, audience, now, sub="admin"), signing_key)
    add("payload_swap", f"{h64}.{other.split('.')[1]}.{s64}")
    # Key confusion (RFC 8725 §2.1): the public key bytes used as an HMAC secret.
    jwk_bytes = _json(public_jwk)
    for form, secret in (("pem", public_key_pem), ("der", der), ("jwk", jwk_bytes)):
        hs_header = {"alg": "HS256", "typ": "at+jwt", "kid": kid}
        add(f"{alg.lower()}_to_hs256_{form}", compact(hs_header, claims, secret))
    # Header key references (RFC 8725 §3.10): never trusted, never fetched.
    add(
        "embedded_jwk",
        compact({**header, "kid": "attacker", "jwk": attacker_jwk}, claims, attacker),
    )
    add("jku", compact({**header, "kid": "attacker", "jku": attacker_url}, claims, attacker))
    add("x5u", compact({**header, "kid": "attacker", "x5u": attacker_url}, claims, attacker))
    # kid injection: looked up as an opaque map key only.
    for name, evil in (
        ("kid_path_traversal", "../../../../../../dev/null"),
        ("kid_sql_injection", "x' UNION SELECT 'secret' --"),
        ("kid_command_injection", "key$(touch /tmp/bastion-pwned)|id"),
    ):
        add(name, compact({**header, "kid": evil}, claims, attacker))
    add(
        "unknown_kid",
        compact({**header, "kid": "kid-" + secrets.token_hex(6)}, claims, signing_key),
    )
    # ECDSA psychic signatures (CVE-2022-21449): r = s = 0.
    es_header = {"alg": "ES256", "typ": "at+jwt", "kid": kid}
    es_input = f"{b64url(_json(es_header))}.{p64}"
    add("psychic_signature_raw", f"{es_input}.{b64url(bytes(64))}")
    add("psychic_signature_der", f"{es_input}.{b64url(bytes.fromhex('3006020100020100'))}")
    # A real signature under an algorithm that is not allowed.
    p384 = ec.generate_private_key(ec.SECP384R1())
    add("disallowed_alg_es384", compact({**header, "alg": "ES384"}, claims, p384))
    if isinstance(signing_key, rsa.RSAPrivateKey):
        add(
            "disallowed_alg_ps256_real_key",
            compact({**header, "alg": "PS256"}, claims, signing_key),
        )
    # Claims (RFC 7519 §4.1), each signed with the real key.
    claim_cases: dict[str, dict[str, Any]] = {
        "expired": {"exp": int(now) - 3600, "iat": int(now) - 7200, "nbf": int(now) - 7200},
        "not_yet_valid": {"nbf": int(now) + 3600},
        "future_iat": {"iat": int(now) + 3600},
        "missing_exp": {"exp": _DROP},
        "exp_string": {"exp": str(int(now) + 600)},
        "exp_null": {"exp": None},
        "exp_bool": {"exp": True},
        "wrong_iss": {"iss": issuer + ".evil"},
        "wrong_aud": {"aud": "api://someone-else"},
        "missing_aud": {"aud": _DROP},
        "missing_sub": {"sub": _DROP},
    }
    for name, override in claim_cases.items():
        add(name, compact(header, valid_claims(issuer, audience, now, **override), signing_key))
    add(
        "unknown_crit",
        compact({**header, "crit": ["x-unknown"], "x-unknown": 1}, claims, signing_key),
    )
    add("b64_false", compact({**header, "crit": ["b64"], "b64": False}, claims, signing_key))
    add("wrong_typ", compact({**header, "typ": "id+jwt"}, claims, signing_key))
    add("missing_typ", compact({"alg": alg, "kid": kid}, claims, signing_key))
    # Duplicate names (RFC 8725 §3.9): hand-built JSON, validly signed.
    dup_payload = _json(claims)[:-1] + b',"sub":"admin"}'
    add("duplicate_claims", compact(header, dup_payload, signing_key))
    dup_header = _json(header)[:-1] + b',"alg":"HS256"}'
    add("duplicate_header_alg", compact(dup_header, claims, signing_key))
    # Serializations other than JWS compact.
    add("jwe_five_segments", f"{b64url(_json({'alg': 'dir', 'enc': 'A256GCM'}))}..AAAA.BBBB.CCCC")
    add(
        "jws_json_serialization",
        json.dumps({"payload": p64, "protected": h64, "signature": s64}),
    )
    bad_utf8 = b'{"alg":"' + alg.encode() + b'","typ":"at+jwt","kid":"\xff\xfe"}'
    add("non_utf8_header", compact(bad_utf8, claims, signing_key))
    add("header_not_object", compact(b'["ES256"]', claims, signing_key))
    add("padded_signature", f"{good}==")
    big = valid_claims(issuer, audience, now, filler="A" * 9000)
    add("oversized", compact(header, big, signing_key))
    return out


def _public_jwk(key: SigningKey) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {
            "kty": "RSA",
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes(3, "big")),
        }
    nums = public.public_numbers()
    size = (public.curve.key_size + 7) // 8
    crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[public.curve.name]
    return {
        "kty": "EC",
        "crv": crv,
        "x": b64url(nums.x.to_bytes(size, "big")),
        "y": b64url(nums.y.to_bytes(size, "big")),
    }


_REASONS = {
    "null_signature": "jwt.no_signature",
    "truncated_signature": "jwt.bad_signature",
    "payload_swap": "jwt.bad_signature",
    "embedded_jwk": "jwt.jwk",
    "jku": "jwt.jku",
    "x5u": "jwt.x5u",
    "kid_path_traversal": "jwt.unknown_kid",
    "kid_sql_injection": "jwt.unknown_kid",
    "kid_command_injection": "jwt.unknown_kid",
    "unknown_kid": "jwt.unknown_kid",
    "psychic_signature_raw": "jwt.ecdsa_range",
    "psychic_signature_der": "jwt.bad_signature",
    "disallowed_alg_es384": "jwt.alg_not_allowed",
    "disallowed_alg_ps256_real_key": "jwt.alg_not_allowed",
    "expired": "jwt.expired",
    "not_yet_valid": "jwt.not_yet_valid",
    "future_iat": "jwt.iat_future",
    "missing_exp": "jwt.exp_missing",
    "exp_string": "jwt.exp_type",
    "exp_null": "jwt.exp_type",
    "exp_bool": "jwt.exp_type",
    "wrong_iss": "jwt.iss",
    "wrong_aud": "jwt.aud",
    "missing_aud": "jwt.aud_missing",
    "missing_sub": "jwt.sub",
    "unknown_crit": "jwt.crit",
    "b64_false": "jwt.crit",
    "wrong_typ": "jwt.typ",
    "missing_typ": "jwt.typ",
    "duplicate_claims": "jwt.duplicate_key",
    "duplicate_header_alg": "jwt.duplicate_key",
    "jwe_five_segments": "jwt.jwe",
    "jws_json_serialization": "jwt.json_serialization",
    "non_utf8_header": "jwt.not_utf8",
    "header_not_object": "jwt.header_invalid",
    "padded_signature": "jwt.malformed",
    "oversized": "jwt.too_large",
}


def expected_reason(case: str, signing_key: SigningKey) -> str:
    """The ``InvalidToken.reason`` Bastion's verifier gives for ``case``."""
    if case.startswith("alg_none_"):
        return "jwt.alg_none" if case.endswith("_signed") else "jwt.no_signature"
    if "_to_hs256_" in case:
        return "jwt.alg_not_allowed"
    if case.startswith("psychic_") and key_alg(signing_key) != "ES256":
        return "jwt.alg_not_allowed"
    return _REASONS[case]
