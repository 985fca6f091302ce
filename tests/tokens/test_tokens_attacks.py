"""Every JWT attack vector is refused with its precise reason; the valid token passes."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.errors import InvalidToken
from bastion.tokens import IssuerSettings, JWTVerifier
from tests.tokens.conftest import (
    AUDIENCE,
    ISSUER,
    NOW,
    FakeClock,
    JWKSServer,
    KeyPair,
    make_ec,
    make_rsa,
)
from tests.vectors.jwt_attacks import attack_tokens, expected_reason, valid_token

pytestmark = pytest.mark.rfc("RFC 8725 §2, §3")

EC = make_ec("ec-attack")
RSA = make_rsa("rsa-attack")
ATTACKER_URL = "http://127.0.0.1:9/attacker"


class RecordingFetcher:
    """Serves the real JWKS and records every URL the verifier asked for."""

    def __init__(self, pair: KeyPair) -> None:
        self.pair = pair
        self.urls: list[str] = []

    async def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        return json.dumps({"keys": [self.pair.jwk_with_kid()]}).encode()


def _cases(pair: KeyPair) -> list[tuple[str, str]]:
    return attack_tokens(
        pair.private, pair.pem, pair.jwk, ISSUER, AUDIENCE, pair.kid, NOW, attacker_url=ATTACKER_URL
    )


def _settings(pair: KeyPair, **extra: object) -> IssuerSettings:
    alg = "RS256" if pair is RSA else "ES256"
    return IssuerSettings(issuer=ISSUER, audiences=(AUDIENCE,), algorithms=(alg,), **extra)  # type: ignore[arg-type]


@pytest.fixture(params=[EC, RSA], ids=["es256", "rs256"])
def pair(request: pytest.FixtureRequest) -> KeyPair:
    key: KeyPair = request.param
    return key


@pytest.fixture
async def remote_verifier(pair: KeyPair) -> AsyncIterator[tuple[JWTVerifier, RecordingFetcher]]:
    fetcher = RecordingFetcher(pair)
    settings = _settings(pair, jwks_uri="https://id.example.test/jwks.json")
    verifier = JWTVerifier([settings], fetcher=fetcher, clock=FakeClock())
    await verifier.start()
    yield verifier, fetcher
    await verifier.close()


async def test_every_attack_refused_with_precise_reason_remote_jwks(
    remote_verifier: tuple[JWTVerifier, RecordingFetcher], pair: KeyPair
) -> None:
    verifier, fetcher = remote_verifier
    cases = _cases(pair)
    assert len(cases) >= 45
    failures = []
    for name, token in cases:
        with pytest.raises(InvalidToken) as info:
            await verifier.verify(token)
        error = info.value
        if error.reason != expected_reason(name, pair.private):
            failures.append((name, error.reason, expected_reason(name, pair.private)))
        assert error.status == 401
        assert error.code == "invalid_token"
        assert error.detail is None  # the client sees only the generic title
    assert failures == []
    # jku / x5u / embedded jwk were never followed: only the configured JWKS was fetched.
    assert set(fetcher.urls) == {"https://id.example.test/jwks.json"}
    assert ATTACKER_URL not in fetcher.urls


async def test_every_attack_refused_with_static_jwks_file(pair: KeyPair, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [pair.jwk_with_kid()]}))
    verifier = JWTVerifier([_settings(pair, static_keys=(str(path),))], clock=FakeClock())
    await verifier.start()
    try:
        for name, token in _cases(pair):
            with pytest.raises(InvalidToken) as info:
                await verifier.verify(token)
            assert info.value.reason == expected_reason(name, pair.private), name
        good = valid_token(pair.private, ISSUER, AUDIENCE, pair.kid, NOW)
        assert (await verifier.verify(good)).subject == "user-123"
    finally:
        await verifier.close()


async def test_valid_token_passes(remote_verifier: tuple[JWTVerifier, RecordingFetcher]) -> None:
    verifier, _ = remote_verifier
    pair = EC if verifier._issuers[ISSUER].settings.algorithms == ("ES256",) else RSA
    token = valid_token(pair.private, ISSUER, AUDIENCE, pair.kid, NOW)
    result = await verifier.verify(token)
    assert result.subject == "user-123"
    assert result.issuer.issuer == ISSUER
    assert result.header["alg"] in ("ES256", "RS256")
    assert result.expires_at == int(NOW) + 600


async def test_non_string_and_non_ascii_tokens_refused(
    remote_verifier: tuple[JWTVerifier, RecordingFetcher],
) -> None:
    verifier, _ = remote_verifier
    for junk in ("", ".", "..", "a.b", "a.b.c.d", "ä.b.c", "a.b.c\n", " . . "):
        with pytest.raises(InvalidToken):
            await verifier.verify(junk)
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(123)  # type: ignore[arg-type]
    assert info.value.reason == "jwt.malformed"


async def test_signature_r_equal_to_group_order_is_refused() -> None:
    """r = n (mod n == 0) is the other psychic form; refused before OpenSSL sees it."""
    from bastion.tokens.jws import _EC_ORDER

    token = valid_token(EC.private, ISSUER, AUDIENCE, EC.kid, NOW)
    head, payload, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    forged = _EC_ORDER["ES256"].to_bytes(32, "big") + raw[32:]
    forged_b64 = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()

    async def fetch(url: str) -> bytes:
        return json.dumps({"keys": [EC.jwk_with_kid()]}).encode()

    verifier = JWTVerifier(
        [_settings(EC, jwks_uri="https://x.test/jwks")], fetcher=fetch, clock=FakeClock()
    )
    await verifier.start()
    try:
        with pytest.raises(InvalidToken) as info:
            await verifier.verify(f"{head}.{payload}.{forged_b64}")
        assert info.value.reason == "jwt.ecdsa_range"
    finally:
        await verifier.close()


async def test_attacks_through_real_http_never_reach_the_attacker_url(
    jwks_server: JWKSServer,
) -> None:
    """With the default aiohttp fetcher: jku/x5u targets on a listening socket get no hit."""
    jwks_server.body = json.dumps({"keys": [EC.jwk_with_kid()]}).encode()
    attacker = f"{jwks_server.base_url}/attacker/jwks.json"
    settings = _settings(EC, jwks_uri=jwks_server.jwks_url)
    clock = FakeClock()
    verifier = JWTVerifier([settings], clock=clock)
    await verifier.start()
    try:
        cases = attack_tokens(
            EC.private, EC.pem, EC.jwk, ISSUER, AUDIENCE, EC.kid, NOW, attacker_url=attacker
        )
        clock.advance(60)  # allow one unknown-kid refetch during the run
        for name, token in cases:
            with pytest.raises(InvalidToken) as info:
                await verifier.verify(token)
            assert info.value.reason == expected_reason(name, EC.private), name
    finally:
        await verifier.close()
    assert jwks_server.total("/attacker/jwks.json") == 0
    assert set(jwks_server.hits) == {"/jwks.json"}
    assert jwks_server.total() <= 2
