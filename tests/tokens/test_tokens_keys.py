"""Static key files (PEM SPKI, JWK, JWKS, HMAC oct JWK) and key/algorithm pairing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bastion.errors import ConfigError, InvalidToken
from bastion.tokens import IssuerSettings, JWTVerifier
from tests.tokens.conftest import AUDIENCE, ISSUER, FakeClock, make_ec, make_rsa, write_json
from tests.vectors.jwt_attacks import b64url, compact, valid_claims, valid_token


def _settings(paths: list[str], algs: tuple[str, ...] = ("ES256",)) -> IssuerSettings:
    return IssuerSettings(
        issuer=ISSUER, audiences=(AUDIENCE,), algorithms=algs, static_keys=tuple(paths)
    )


async def _verify(settings: IssuerSettings, token: str, clock: FakeClock) -> str:
    verifier = JWTVerifier([settings], clock=clock)
    await verifier.start()
    try:
        return (await verifier.verify(token)).subject
    except InvalidToken as exc:
        return exc.reason
    finally:
        await verifier.close()


async def test_pem_public_key_without_kid(tmp_path: Path, clock: FakeClock) -> None:
    pair = make_ec("ignored")
    path = tmp_path / "pub.pem"
    path.write_bytes(pair.pem)
    no_kid = compact(
        {"alg": "ES256", "typ": "at+jwt"}, valid_claims(ISSUER, AUDIENCE, clock()), pair.private
    )
    assert await _verify(_settings([str(path)]), no_kid, clock) == "user-123"
    # A kid the store does not know is refused even though the key would verify.
    with_kid = valid_token(pair.private, ISSUER, AUDIENCE, "some-kid", clock())
    assert await _verify(_settings([str(path)]), with_kid, clock) == "jwt.unknown_kid"


async def test_rsa_pem_and_jwk_files(tmp_path: Path, clock: FakeClock) -> None:
    pair = make_rsa("r1")
    jwk_path = write_json(tmp_path / "key.jwk", pair.jwk_with_kid())
    token = valid_token(pair.private, ISSUER, AUDIENCE, "r1", clock())
    assert await _verify(_settings([jwk_path], ("RS256",)), token, clock) == "user-123"
    # The same RSA key may not verify an ES256 token even when that alg is allowed.
    mixed = _settings([jwk_path], ("RS256", "ES256"))
    es = valid_token(make_ec("r1").private, ISSUER, AUDIENCE, "r1", clock())
    assert await _verify(mixed, es, clock) == "jwt.key_mismatch"


async def test_eddsa_key(tmp_path: Path, clock: FakeClock) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "ed.pem"
    path.write_bytes(pem)
    header = b64url(json.dumps({"alg": "Ed25519", "typ": "at+jwt"}).encode())
    payload = b64url(json.dumps(valid_claims(ISSUER, AUDIENCE, clock())).encode())
    signature = b64url(private.sign(f"{header}.{payload}".encode()))
    token = f"{header}.{payload}.{signature}"
    assert await _verify(_settings([str(path)], ("Ed25519",)), token, clock) == "user-123"


async def test_hmac_secret_from_oct_jwk(tmp_path: Path, clock: FakeClock) -> None:
    secret = b"k" * 32
    path = write_json(
        tmp_path / "hmac.jwk", {"kty": "oct", "kid": "h1", "k": b64url(secret), "alg": "HS256"}
    )
    claims = valid_claims(ISSUER, AUDIENCE, clock())
    token = compact({"alg": "HS256", "typ": "at+jwt", "kid": "h1"}, claims, secret)
    assert await _verify(_settings([path], ("HS256",)), token, clock) == "user-123"
    forged = compact({"alg": "HS256", "typ": "at+jwt", "kid": "h1"}, claims, b"x" * 32)
    assert await _verify(_settings([path], ("HS256",)), forged, clock) == "jwt.bad_signature"
    # A 32-byte secret is too short for HS512 (RFC 7518 §3.2): no usable key.
    hs512 = compact({"alg": "HS512", "typ": "at+jwt", "kid": "h1"}, claims, secret)
    assert await _verify(_settings([path], ("HS512",)), hs512, clock) == "jwt.key_mismatch"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (json.dumps({"kty": "oct", "k": b64url(b"short-secret")}), "shorter than 32"),
        (json.dumps({"keys": [{"kty": "oct", "k": b64url(b"s" * 8)}]}), "shorter than 32"),
        ("secret-as-plain-text", "neither PEM nor strict JSON"),
        ('{"kty": "EC", "kty": "RSA"}', "strict JSON"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "public key"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "invalid PEM"),
        ('{"kty": "XYZ"}', "unsupported key type"),
        ("[1, 2]", "JSON object"),
    ],
)
async def test_bad_static_key_files_are_startup_errors(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "key"
    path.write_text(content)
    verifier = JWTVerifier([_settings([str(path)], ("HS256",))])
    with pytest.raises(ConfigError, match=message):
        await verifier.start()


async def test_private_jwk_and_weak_rsa_refused(tmp_path: Path) -> None:
    pair = make_ec("e1")
    private_jwk = {**pair.jwk_with_kid(), "d": b64url(b"\x01" * 32)}
    verifier = JWTVerifier([_settings([write_json(tmp_path / "p.jwk", private_jwk)])])
    with pytest.raises(ConfigError, match="private key material"):
        await verifier.start()
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point of the test)
    pem = weak.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "weak.pem").write_bytes(pem)
    verifier = JWTVerifier([_settings([str(tmp_path / "weak.pem")], ("RS256",))])
    with pytest.raises(ConfigError, match="2048"):
        await verifier.start()


async def test_jwk_alg_and_use_members_restrict_the_key(tmp_path: Path, clock: FakeClock) -> None:
    pair = make_ec("e1")
    token = valid_token(pair.private, ISSUER, AUDIENCE, "e1", clock())
    enc = write_json(tmp_path / "enc.jwk", {**pair.jwk_with_kid(), "use": "enc"})
    assert await _verify(_settings([enc]), token, clock) == "jwt.key_mismatch"
    other_alg = write_json(tmp_path / "alg.jwk", {**pair.jwk_with_kid(), "alg": "ES384"})
    assert await _verify(_settings([other_alg]), token, clock) == "jwt.key_mismatch"
    ops = write_json(tmp_path / "ops.jwk", {**pair.jwk, "kid": "e1", "key_ops": ["encrypt"]})
    assert await _verify(_settings([ops]), token, clock) == "jwt.key_mismatch"


async def test_p384_key_cannot_verify_es256(tmp_path: Path, clock: FakeClock) -> None:
    p384 = make_ec("e1", ec.SECP384R1())
    path = write_json(tmp_path / "k.jwk", p384.jwk_with_kid())
    claims = valid_claims(ISSUER, AUDIENCE, clock())
    token = compact({"alg": "ES256", "typ": "at+jwt", "kid": "e1"}, claims, make_ec("e1").private)
    assert await _verify(_settings([path]), token, clock) == "jwt.key_mismatch"


def test_ec_group_orders_are_the_curve_orders() -> None:
    """A private scalar must be in [1, n-1]: n-1 is accepted, n is not."""
    from bastion.tokens.jws import _EC_ORDER

    curves = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
    for alg, curve in curves.items():
        n = _EC_ORDER[alg]
        ec.derive_private_key(n - 1, curve)
        with pytest.raises(ValueError):
            ec.derive_private_key(n, curve)


def test_base64_helper_roundtrip() -> None:
    assert base64.urlsafe_b64decode(b64url(b"\xff\xfe") + "==") == b"\xff\xfe"
