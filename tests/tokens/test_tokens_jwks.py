"""Remote JWKS through a real HTTP server on 127.0.0.1: single-flight, rotation, TTL,
fail-closed, stale grace, discovery. Time is moved on an injected clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bastion.errors import ConfigError, InvalidToken
from bastion.tokens import HTTPFetcher, IssuerSettings, JWTVerifier
from bastion.tokens.jwks import STALE_GRACE_FACTOR
from tests.tokens.conftest import (
    AUDIENCE,
    ISSUER,
    FakeClock,
    JWKSServer,
    jwks_bytes,
    make_ec,
)
from tests.vectors.jwt_attacks import valid_token

pytestmark = pytest.mark.rfc("RFC 7517 §5, RFC 8725 §3.10")

Factory = Callable[..., JWTVerifier]


@pytest.fixture
async def make_verifier(jwks_server: JWKSServer, clock: FakeClock) -> AsyncIterator[Factory]:
    created: list[JWTVerifier] = []

    def factory(**settings: object) -> JWTVerifier:
        options: dict[str, object] = {"jwks_uri": jwks_server.jwks_url, **settings}
        issuer = IssuerSettings(
            issuer=ISSUER,
            audiences=(AUDIENCE,),
            algorithms=("ES256",),
            **options,  # type: ignore[arg-type]
        )
        verifier = JWTVerifier([issuer], clock=clock)
        created.append(verifier)
        return verifier

    yield factory
    for verifier in created:
        await verifier.close()


async def _reason(verifier: JWTVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(token)
    return info.value.reason


async def test_flood_of_unknown_kids_causes_at_most_one_fetch(
    jwks_server: JWKSServer, make_verifier: Factory, clock: FakeClock
) -> None:
    key = make_ec("k1")
    jwks_server.body = jwks_bytes(key)
    verifier = make_verifier()
    await verifier.start()
    assert jwks_server.total() == 1
    clock.advance(60)  # past the min refetch interval: exactly one refetch is allowed
    forged = [
        valid_token(make_ec(f"x{i % 7}").private, ISSUER, AUDIENCE, f"unknown-{i}", clock())
        for i in range(1000)
    ]
    results = await asyncio.gather(*(verifier.verify(t) for t in forged), return_exceptions=True)
    assert all(isinstance(r, InvalidToken) and r.reason == "jwt.unknown_kid" for r in results)
    assert jwks_server.total() == 2  # the start fetch + one shared refetch for the whole flood
    # Within the interval, further unknown kids do not refetch at all.
    assert await _reason(verifier, forged[0]) == "jwt.unknown_kid"
    assert jwks_server.total() == 2


async def test_rotation_new_kid_is_picked_up(
    jwks_server: JWKSServer, make_verifier: Factory, clock: FakeClock
) -> None:
    old, new = make_ec("old"), make_ec("new")
    jwks_server.body = jwks_bytes(old)
    verifier = make_verifier()
    await verifier.start()
    assert (
        await verifier.verify(valid_token(old.private, ISSUER, AUDIENCE, "old", clock()))
    ).subject
    jwks_server.body = jwks_bytes(old, new)
    clock.advance(31)
    token = valid_token(new.private, ISSUER, AUDIENCE, "new", clock())
    assert (await verifier.verify(token)).subject == "user-123"
    assert jwks_server.total() == 2


async def test_removed_key_stops_working_after_ttl(
    jwks_server: JWKSServer, make_verifier: Factory, clock: FakeClock
) -> None:
    a, b = make_ec("a"), make_ec("b")
    jwks_server.body = jwks_bytes(a, b)
    verifier = make_verifier(jwks_ttl=300.0)
    await verifier.start()
    token_a = valid_token(a.private, ISSUER, AUDIENCE, "a", clock(), exp=int(clock()) + 3600)
    assert (await verifier.verify(token_a)).subject == "user-123"
    jwks_server.body = jwks_bytes(b)  # the issuer removed key "a"
    clock.advance(100)  # before the TTL the old key set (and the cache) still serves
    assert (await verifier.verify(token_a)).subject == "user-123"
    clock.advance(201)  # TTL passed: a refetch happens, "a" is gone
    assert await _reason(verifier, token_a) == "jwt.unknown_kid"
    token_b = valid_token(b.private, ISSUER, AUDIENCE, "b", clock())
    assert (await verifier.verify(token_b)).subject == "user-123"


async def test_never_fetched_fails_closed_then_recovers(
    jwks_server: JWKSServer, make_verifier: Factory, clock: FakeClock
) -> None:
    key = make_ec("k1")
    jwks_server.status = 503
    verifier = make_verifier()
    await verifier.start()  # does not raise: the gateway starts, but refuses tokens
    assert not verifier.ready()
    token = valid_token(key.private, ISSUER, AUDIENCE, "k1", clock())
    assert await _reason(verifier, token) == "jwt.keys_unavailable"
    jwks_server.status = 200
    jwks_server.body = jwks_bytes(key)
    assert await _reason(verifier, token) == "jwt.keys_unavailable"  # rate-limited retry
    clock.advance(31)
    assert (await verifier.verify(token)).subject == "user-123"
    assert verifier.ready()


async def test_failed_refresh_serves_last_good_keys_until_grace_then_fails_closed(
    jwks_server: JWKSServer, make_verifier: Factory, clock: FakeClock
) -> None:
    key = make_ec("k1")
    jwks_server.body = jwks_bytes(key)
    verifier = make_verifier(jwks_ttl=100.0, jwks_min_refetch_interval=10.0)
    await verifier.start()
    jwks_server.status = 500
    clock.advance(150)  # stale, refresh fails: last good keys are still served
    fresh = valid_token(key.private, ISSUER, AUDIENCE, "k1", clock())
    assert (await verifier.verify(fresh)).subject == "user-123"
    clock.advance(100 * STALE_GRACE_FACTOR)  # past ttl * grace: fail closed
    fresh = valid_token(key.private, ISSUER, AUDIENCE, "k1", clock())
    assert await _reason(verifier, fresh) == "jwt.keys_unavailable"
    jwks_server.status = 200
    clock.advance(11)
    assert (await verifier.verify(fresh)).subject == "user-123"


async def test_stale_keys_also_refuse_cached_tokens(
    jwks_server: JWKSServer, make_verifier: Factory, clock: FakeClock
) -> None:
    key = make_ec("k1")
    jwks_server.body = jwks_bytes(key)
    verifier = JWTVerifier(
        [
            IssuerSettings(
                issuer=ISSUER,
                audiences=(AUDIENCE,),
                algorithms=("ES256",),
                jwks_uri=jwks_server.jwks_url,
                jwks_ttl=10.0,
                jwks_min_refetch_interval=5.0,
            )
        ],
        clock=clock,
        cache_ttl=3600.0,
    )
    await verifier.start()
    try:
        token = valid_token(key.private, ISSUER, AUDIENCE, "k1", clock(), exp=int(clock()) + 7200)
        await verifier.verify(token)
        jwks_server.status = 500
        clock.advance(10 * STALE_GRACE_FACTOR + 1)
        assert await _reason(verifier, token) == "jwt.keys_unavailable"
    finally:
        await verifier.close()


async def test_discovery_finds_jwks_uri(
    jwks_server: JWKSServer, make_verifier: Factory, clock: FakeClock
) -> None:
    key = make_ec("k1")
    jwks_server.body = jwks_bytes(key)
    jwks_server.metadata = {"issuer": ISSUER, "jwks_uri": jwks_server.jwks_url}
    verifier = make_verifier(jwks_uri=None, discovery_url=jwks_server.discovery_url)
    await verifier.start()
    assert verifier.ready()
    token = valid_token(key.private, ISSUER, AUDIENCE, "k1", clock())
    assert (await verifier.verify(token)).subject == "user-123"
    assert jwks_server.total("/.well-known/openid-configuration") == 1


async def test_discovery_with_foreign_issuer_is_refused(
    jwks_server: JWKSServer, make_verifier: Factory, clock: FakeClock
) -> None:
    key = make_ec("k1")
    jwks_server.body = jwks_bytes(key)
    jwks_server.metadata = {"issuer": "https://evil.test", "jwks_uri": jwks_server.jwks_url}
    verifier = make_verifier(jwks_uri=None, discovery_url=jwks_server.discovery_url)
    await verifier.start()
    assert not verifier.ready()
    token = valid_token(key.private, ISSUER, AUDIENCE, "k1", clock())
    assert await _reason(verifier, token) == "jwt.keys_unavailable"
    assert jwks_server.total() == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"keys": {}}',
        b'{"keys": [], "keys": []}',
        b'{"keys": []}',
        json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}).encode(),
        json.dumps({"keys": [{"kty": "oct", "k": "A" * 64, "kid": "k1"}]}).encode(),
        b'{"keys": [' + b",".join([b'{"kty":"EC"}'] * 100) + b"]}",
        b'{"pad": "' + b"A" * 70_000 + b'"}',
    ],
    ids=["not-json", "keys-not-list", "duplicate", "empty", "bad-ec", "oct", "too-many", "huge"],
)
async def test_bad_jwks_documents_are_never_trusted(
    jwks_server: JWKSServer, make_verifier: Factory, clock: FakeClock, body: bytes
) -> None:
    jwks_server.body = body
    verifier = make_verifier()
    await verifier.start()
    assert not verifier.ready()
    key = make_ec("k1")
    token = valid_token(key.private, ISSUER, AUDIENCE, "k1", clock())
    assert await _reason(verifier, token) == "jwt.keys_unavailable"


async def test_default_fetcher_caps_size_and_refuses_non_200(jwks_server: JWKSServer) -> None:
    fetcher = HTTPFetcher(max_bytes=1024)
    try:
        jwks_server.body = b"x" * 2048
        with pytest.raises(Exception, match="exceeds"):
            await fetcher(jwks_server.jwks_url)
        jwks_server.body = b"{}"
        jwks_server.status = 404
        with pytest.raises(Exception, match="404"):
            await fetcher(jwks_server.jwks_url)
        jwks_server.status = 200
        assert await fetcher(jwks_server.jwks_url) == b"{}"
    finally:
        await fetcher.close()


async def test_default_fetcher_reads_a_large_body_completely(jwks_server: JWKSServer) -> None:
    keys = [make_ec(f"kid-{i}") for i in range(60)]
    jwks_server.body = jwks_bytes(*keys) + b" " * 40_000  # arrives in several chunks
    fetcher = HTTPFetcher()
    try:
        assert await fetcher(jwks_server.jwks_url) == jwks_server.body
    finally:
        await fetcher.close()


async def test_jwks_endpoint_down_does_not_break_startup() -> None:
    from tests.conftest import free_port

    settings = IssuerSettings(
        issuer=ISSUER,
        audiences=(AUDIENCE,),
        algorithms=("ES256",),
        jwks_uri=f"http://127.0.0.1:{free_port()}/jwks.json",
    )
    verifier = JWTVerifier([settings])
    await verifier.start()
    try:
        assert not verifier.ready()
        token = valid_token(make_ec("k").private, ISSUER, AUDIENCE, "k", 1_800_000_000)
        with pytest.raises(InvalidToken) as info:
            await verifier.verify(token)
        assert info.value.reason == "jwt.keys_unavailable"
    finally:
        await verifier.close()


def test_hmac_with_remote_jwks_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        IssuerSettings(
            issuer=ISSUER, audiences=(AUDIENCE,), algorithms=("HS256",), jwks_uri="https://x/j"
        )


async def test_background_task_refreshes_before_expiry_and_retries_failures(
    jwks_server: JWKSServer, make_verifier: Factory, clock: FakeClock
) -> None:
    key = make_ec("k1")
    jwks_server.body = jwks_bytes(key)
    verifier = make_verifier(jwks_ttl=100.0, jwks_min_refetch_interval=10.0)
    delays: list[float] = []
    proceed = asyncio.Event()
    slept = asyncio.Event()

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        clock.advance(delay)
        slept.set()
        await proceed.wait()
        proceed.clear()

    await verifier.start()
    remote = verifier._issuers[ISSUER].remote
    assert remote is not None
    # Replace the running loop by one driven by the fake sleep.
    for task in verifier._tasks:
        task.cancel()
    remote.sleep = fake_sleep
    verifier._tasks = [asyncio.get_running_loop().create_task(remote.run())]
    await slept.wait()
    slept.clear()
    assert delays == [pytest.approx(80.0)]  # refresh at 80 % of the TTL
    jwks_server.status = 500
    before = jwks_server.total()
    proceed.set()
    await slept.wait()
    assert jwks_server.total() == before + 1
    assert delays[1] == pytest.approx(10.0)  # failed: retry after the min interval
    # Keys fetched 90 s ago are still within TTL * grace: tokens keep verifying.
    token = valid_token(key.private, ISSUER, AUDIENCE, "k1", clock())
    assert (await verifier.verify(token)).subject == "user-123"


async def test_token_without_kid_is_tried_against_matching_keys(
    jwks_server: JWKSServer, make_verifier: Factory, clock: FakeClock
) -> None:
    from tests.vectors.jwt_attacks import compact, valid_claims

    a, b = make_ec("a"), make_ec("b")
    jwks_server.body = jwks_bytes(a, b)
    verifier = make_verifier()
    await verifier.start()
    claims = valid_claims(ISSUER, AUDIENCE, clock())
    token = compact({"alg": "ES256", "typ": "at+jwt"}, claims, b.private)
    assert (await verifier.verify(token)).subject == "user-123"
    forged = compact({"alg": "ES256", "typ": "at+jwt"}, claims, make_ec("c").private)
    assert await _reason(verifier, forged) == "jwt.bad_signature"


async def test_static_keys_beside_a_remote_jwks(
    jwks_server: JWKSServer, make_verifier: Factory, clock: FakeClock, tmp_path: Path
) -> None:
    from tests.vectors.jwt_attacks import compact, valid_claims

    remote_key, static_key = make_ec("remote"), make_ec("static")
    jwks_server.body = jwks_bytes(remote_key)
    path = tmp_path / "static.jwk"
    path.write_text(json.dumps(static_key.jwk_with_kid()))
    verifier = make_verifier(static_keys=(str(path),))
    await verifier.start()
    claims = valid_claims(ISSUER, AUDIENCE, clock())
    for pair in (remote_key, static_key):
        with_kid = valid_token(pair.private, ISSUER, AUDIENCE, pair.kid, clock())
        assert (await verifier.verify(with_kid)).subject == "user-123"
        no_kid = compact({"alg": "ES256", "typ": "at+jwt"}, claims, pair.private)
        assert (await verifier.verify(no_kid)).subject == "user-123"
    # With the JWKS endpoint gone for good, static-key tokens keep working.
    jwks_server.status = 500
    clock.advance(300 * STALE_GRACE_FACTOR + 1)
    token = valid_token(static_key.private, ISSUER, AUDIENCE, "static", clock())
    assert (await verifier.verify(token)).subject == "user-123"
    token = valid_token(remote_key.private, ISSUER, AUDIENCE, "remote", clock())
    assert await _reason(verifier, token) == "jwt.keys_unavailable"


async def test_metadata_fetched_over_https_cannot_send_the_keys_over_http() -> None:
    """https discovery metadata naming an http:// jwks_uri (or an internal address) was
    followed: anyone on that path could swap the keys."""
    from bastion.tokens.jwks import KeyLoadError, RemoteKeys

    discovery = "https://id.example/.well-known/openid-configuration"
    issuer = IssuerSettings(
        issuer="https://id.example",
        audiences=(AUDIENCE,),
        algorithms=("ES256",),
        jwks_uri=None,
        discovery_url=discovery,
    )
    fetched: list[str] = []

    async def fetch(url: str) -> bytes:
        fetched.append(url)
        return json.dumps(
            {"issuer": "https://id.example", "jwks_uri": "http://169.254.169.254/jwks.json"}
        ).encode()

    keys = RemoteKeys(issuer, fetch, lambda: 0.0)
    with pytest.raises(KeyLoadError, match="plain-http jwks_uri"):
        await keys._discover()
    assert fetched == [discovery]
