"""Verified-token cache: hits, exp re-check, invalidation by jti/subject, LRU bound."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bastion.errors import InvalidToken
from bastion.tokens import IssuerSettings, JWTVerifier
from tests.tokens.conftest import AUDIENCE, ISSUER, FakeClock, KeyPair, jwks_bytes, make_ec
from tests.vectors.jwt_attacks import valid_token

KEY = make_ec("k1")


class CountingFetcher:
    def __init__(self, pair: KeyPair) -> None:
        self.pair = pair
        self.calls = 0

    async def __call__(self, url: str) -> bytes:
        self.calls += 1
        return jwks_bytes(self.pair)


@pytest.fixture
async def verifier(clock: FakeClock) -> AsyncIterator[JWTVerifier]:
    settings = IssuerSettings(
        issuer=ISSUER, audiences=(AUDIENCE,), algorithms=("ES256",), jwks_uri="https://x/jwks"
    )
    v = JWTVerifier([settings], fetcher=CountingFetcher(KEY), clock=clock, cache_size=3)
    await v.start()
    yield v
    await v.close()


def _token(clock: FakeClock, **claims: Any) -> str:
    return valid_token(KEY.private, ISSUER, AUDIENCE, KEY.kid, clock(), **claims)


async def test_repeat_verification_is_a_cache_hit(verifier: JWTVerifier, clock: FakeClock) -> None:
    token = _token(clock)
    first = await verifier.verify(token)
    assert await verifier.verify(token) is first
    assert len(verifier._cache) == 1


async def test_cached_token_still_expires(verifier: JWTVerifier, clock: FakeClock) -> None:
    token = _token(clock, exp=int(clock()) + 40)
    await verifier.verify(token)
    clock.advance(40 + 29)  # inside the 30 s leeway
    assert (await verifier.verify(token)).subject == "user-123"
    clock.advance(2)
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(token)
    assert info.value.reason == "jwt.expired"


async def test_invalidate_by_jti_and_subject(verifier: JWTVerifier, clock: FakeClock) -> None:
    a = _token(clock, jti="jti-a", sub="alice")
    b = _token(clock, jti="jti-b", sub="bob")
    first_a, first_b = await verifier.verify(a), await verifier.verify(b)
    verifier.invalidate(jti="jti-a")
    assert await verifier.verify(a) is not first_a  # verified again, not served from cache
    assert await verifier.verify(b) is first_b
    verifier.invalidate(subject="bob")
    assert await verifier.verify(b) is not first_b
    verifier.invalidate(jti="never-seen", subject="nobody")  # no error


async def test_cache_is_bounded(verifier: JWTVerifier, clock: FakeClock) -> None:
    tokens = [_token(clock, jti=f"j{i}") for i in range(10)]
    for token in tokens:
        await verifier.verify(token)
    assert len(verifier._cache) == 3


async def test_cache_entry_expires_after_cache_ttl(clock: FakeClock) -> None:
    settings = IssuerSettings(
        issuer=ISSUER, audiences=(AUDIENCE,), algorithms=("ES256",), jwks_uri="https://x/jwks"
    )
    v = JWTVerifier([settings], fetcher=CountingFetcher(KEY), clock=clock, cache_ttl=5.0)
    await v.start()
    try:
        token = _token(clock, exp=int(clock()) + 3600)
        first = await v.verify(token)
        clock.advance(4)
        assert await v.verify(token) is first
        clock.advance(2)
        assert await v.verify(token) is not first
    finally:
        await v.close()


async def test_verified_claims_are_read_only(verifier: JWTVerifier, clock: FakeClock) -> None:
    result = await verifier.verify(_token(clock))
    with pytest.raises(TypeError):
        result.claims["sub"] = "admin"  # type: ignore[index]
