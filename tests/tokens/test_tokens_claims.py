"""Claims (RFC 7519 §4.1, RFC 9068 §2.2): times with leeway, aud, sub, roles and scopes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bastion.errors import InvalidToken
from bastion.tokens import IssuerSettings, JWTVerifier, VerifiedToken
from tests.tokens.conftest import AUDIENCE, ISSUER, FakeClock, jwks_bytes, make_ec
from tests.vectors.jwt_attacks import compact, valid_token

KEY = make_ec("k1")
Verify = Callable[..., Any]


@pytest.fixture
async def verify(clock: FakeClock) -> AsyncIterator[Verify]:
    verifiers: list[JWTVerifier] = []

    async def fetch(url: str) -> bytes:
        return jwks_bytes(KEY)

    async def run(claims: dict[str, Any], typ: str = "at+jwt", **settings: Any) -> VerifiedToken:
        issuer = IssuerSettings(
            issuer=ISSUER,
            audiences=(AUDIENCE, "api://other"),
            algorithms=("ES256",),
            jwks_uri="https://x/jwks",
            **settings,
        )
        verifier = JWTVerifier([issuer], fetcher=fetch, clock=clock)
        verifiers.append(verifier)
        await verifier.start()
        token = valid_token(KEY.private, ISSUER, AUDIENCE, KEY.kid, clock(), typ=typ, **claims)
        return await verifier.verify(token)

    yield run
    for v in verifiers:
        await v.close()


async def _reason(verify: Verify, claims: dict[str, Any], **settings: Any) -> str:
    with pytest.raises(InvalidToken) as info:
        await verify(claims, **settings)
    return info.value.reason


async def test_roles_from_dotted_path_and_scope_string(verify: Verify) -> None:
    result = await verify(
        {"realm_access": {"roles": ["admin", "customer"]}, "scope": "a b  c"},
        roles_claim="realm_access.roles",
    )
    assert result.roles == {"admin", "customer"}
    assert result.scopes == {"a", "b", "c"}


async def test_scp_list_and_scp_string(verify: Verify) -> None:
    assert (await verify({"scp": ["read", "write"]}, scopes_claim="scp")).scopes == {
        "read",
        "write",
    }
    assert (await verify({"scp": "read write"}, scopes_claim="scp")).scopes == {"read", "write"}


async def test_missing_roles_and_scopes_are_empty(verify: Verify) -> None:
    result = await verify({"roles": None, "scope": None})
    assert result.roles == frozenset()
    assert result.scopes == frozenset()
    assert (await verify({}, roles_claim="realm_access.roles")).roles == frozenset()


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"roles": {"admin": True}}, "jwt.roles_claim"),
        ({"roles": ["admin", 1]}, "jwt.roles_claim"),
        ({"scope": 7}, "jwt.scopes_claim"),
        ({"aud": ["api://x", 3]}, "jwt.aud_type"),
        ({"aud": []}, "jwt.aud_type"),
        ({"sub": ""}, "jwt.sub"),
        ({"sub": 42}, "jwt.sub"),
        ({"jti": 5}, "jwt.jti"),
        ({"nbf": "0"}, "jwt.nbf_type"),
        ({"iat": False}, "jwt.iat_type"),
        ({"exp": float("inf")}, "jwt.payload_invalid"),  # serialised as Infinity
    ],
)
async def test_malformed_claims_refused(
    verify: Verify, claims: dict[str, Any], reason: str
) -> None:
    assert await _reason(verify, claims) == reason


@pytest.mark.parametrize(
    ("claims", "settings", "reason"),
    [
        # A role holding the X-Bastion-Roles separator would read upstream as two roles.
        ({"roles": ["customer", "x,admin"]}, {}, "jwt.roles_claim"),
        ({"roles": "x,admin"}, {}, "jwt.roles_claim"),
        ({"roles": ["a admin"]}, {}, "jwt.roles_claim"),
        ({"roles": ["a\tadmin"]}, {}, "jwt.roles_claim"),
        ({"roles": ["a\u00a0admin"]}, {}, "jwt.roles_claim"),
        ({"roles": ["admin\r\nx-evil: 1"]}, {}, "jwt.roles_claim"),
        ({"roles": ["a\x1fadmin"]}, {}, "jwt.roles_claim"),
        ({"roles": ["a\x00"]}, {}, "jwt.roles_claim"),
        # Scopes: RFC 6749 scope-tokens only, and a scope string splits on SP alone.
        ({"scp": ["read admin:all"]}, {"scopes_claim": "scp"}, "jwt.scopes_claim"),
        ({"scope": "read\x1fadmin"}, {}, "jwt.scopes_claim"),
        ({"scope": "read\u00a0admin"}, {}, "jwt.scopes_claim"),
        ({"scope": "read\tadmin"}, {}, "jwt.scopes_claim"),
        ({"scope": "read\nadmin"}, {}, "jwt.scopes_claim"),
        ({"scope": 'read "admin"'}, {}, "jwt.scopes_claim"),
        ({"scope": "read a\\b"}, {}, "jwt.scopes_claim"),
        ({"scope": "read caf\u00e9"}, {}, "jwt.scopes_claim"),
    ],
)
async def test_roles_and_scopes_that_would_inject_header_entries_are_refused(
    verify: Verify, claims: dict[str, Any], settings: dict[str, Any], reason: str
) -> None:
    assert await _reason(verify, claims, **settings) == reason


async def test_scope_string_splits_on_space_only(verify: Verify) -> None:
    result = await verify({"scope": " read  orders:write https://x/y!#$%&'()*+,/ ", "roles": "a.b"})
    assert result.scopes == {"read", "orders:write", "https://x/y!#$%&'()*+,/"}
    assert result.roles == {"a.b"}
    unicode_role = await verify({"roles": ["r\u00f4le", "team:eng/platform"]})
    assert unicode_role.roles == {"r\u00f4le", "team:eng/platform"}


async def test_aud_list_intersects(verify: Verify) -> None:
    assert (await verify({"aud": ["api://nobody", "api://other"]})).subject == "user-123"


async def test_required_claims(verify: Verify) -> None:
    assert await _reason(verify, {}, required_claims=("exp", "client_id", "tenant")) == (
        "jwt.missing_claim"
    )
    assert (await verify({"tenant": "t1"}, required_claims=("tenant",))).claims["tenant"] == "t1"


async def test_leeway_edges(verify: Verify, clock: FakeClock) -> None:
    now = int(clock())
    assert (await verify({"exp": now - 29})).subject == "user-123"
    assert await _reason(verify, {"exp": now - 30}) == "jwt.expired"
    assert (await verify({"nbf": now + 30, "iat": now + 30})).subject == "user-123"
    assert await _reason(verify, {"nbf": now + 31}) == "jwt.not_yet_valid"
    assert await _reason(verify, {"iat": now + 1}, leeway=0) == "jwt.iat_future"
    assert await _reason(verify, {"exp": now}, leeway=0) == "jwt.expired"


async def test_typ_compared_case_insensitively_with_optional_application_prefix(
    verify: Verify,
) -> None:
    for typ in ("at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT", "jwt"):
        assert (await verify({}, typ=typ)).subject == "user-123"
    with pytest.raises(InvalidToken) as info:
        await verify({}, typ="JWT", token_types=("at+jwt",))
    assert info.value.reason == "jwt.typ"


async def test_exp_overflowing_to_infinity_is_refused(clock: FakeClock) -> None:
    """``1e400`` is valid JSON that Python reads as inf: a never-expiring token.

    The strict JSON parser refuses non-finite numbers anywhere, so the payload itself is
    refused before its claims are looked at.
    """
    payload = b'{"iss":"%s","aud":"%s","sub":"u","exp":1e400}' % (
        ISSUER.encode(),
        AUDIENCE.encode(),
    )
    token = compact({"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid}, payload, KEY.private)

    async def fetch(url: str) -> bytes:
        return jwks_bytes(KEY)

    settings = IssuerSettings(
        issuer=ISSUER, audiences=(AUDIENCE,), algorithms=("ES256",), jwks_uri="https://x/jwks"
    )
    verifier = JWTVerifier([settings], fetcher=fetch, clock=clock)
    await verifier.start()
    try:
        with pytest.raises(InvalidToken) as info:
            await verifier.verify(token)
        assert info.value.reason == "jwt.payload_invalid"
    finally:
        await verifier.close()


async def test_integer_exp_beyond_float_range_is_refused(clock: FakeClock) -> None:
    payload = b'{"iss":"%s","aud":"%s","sub":"u","exp":1%s}' % (
        ISSUER.encode(),
        AUDIENCE.encode(),
        b"0" * 400,
    )
    token = compact({"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid}, payload, KEY.private)

    async def fetch(url: str) -> bytes:
        return jwks_bytes(KEY)

    settings = IssuerSettings(
        issuer=ISSUER, audiences=(AUDIENCE,), algorithms=("ES256",), jwks_uri="https://x/jwks"
    )
    verifier = JWTVerifier([settings], fetcher=fetch, clock=clock)
    await verifier.start()
    try:
        with pytest.raises(InvalidToken) as info:
            await verifier.verify(token)
        assert info.value.reason == "jwt.exp_type"
    finally:
        await verifier.close()


async def test_two_issuers_each_with_their_own_rules(clock: FakeClock) -> None:
    from tests.tokens.conftest import make_rsa

    rsa_key = make_rsa("r1")

    async def fetch(url: str) -> bytes:
        return jwks_bytes(KEY) if "ec" in url else jwks_bytes(rsa_key)

    ec_issuer = IssuerSettings(
        issuer=ISSUER, audiences=(AUDIENCE,), algorithms=("ES256",), jwks_uri="https://ec/j"
    )
    rsa_issuer = IssuerSettings(
        issuer="https://other.test",
        audiences=("api://b",),
        algorithms=("RS256",),
        jwks_uri="https://rsa/j",
        token_types=("at+jwt",),
    )
    verifier = JWTVerifier([ec_issuer, rsa_issuer], fetcher=fetch, clock=clock)
    await verifier.start()
    try:
        ok = valid_token(rsa_key.private, "https://other.test", "api://b", "r1", clock())
        assert (await verifier.verify(ok)).issuer is rsa_issuer
        cases = {
            # RS256 is allowed for the other issuer only.
            "jwt.alg_not_allowed": valid_token(rsa_key.private, ISSUER, AUDIENCE, "r1", clock()),
            # "JWT" is allowed for the EC issuer only.
            "jwt.typ": valid_token(
                rsa_key.private, "https://other.test", "api://b", "r1", clock(), typ="JWT"
            ),
            # The EC issuer's audience is not the other's.
            "jwt.aud": valid_token(rsa_key.private, "https://other.test", AUDIENCE, "r1", clock()),
        }
        for reason, token in cases.items():
            with pytest.raises(InvalidToken) as info:
                await verifier.verify(token)
            assert info.value.reason == reason
    finally:
        await verifier.close()
