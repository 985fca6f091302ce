"""Client credentials, RFC 9068 tokens, discovery, JWKS and client authentication."""

from __future__ import annotations

import base64
import secrets
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from tests.identity.harness import FakeClock, Live, basic, live_server, seed

pytestmark = pytest.mark.rfc("6749-4.4")


async def _verify_via_discovery(live: Live, token: str) -> tuple[dict, dict]:
    async with live.http.get(live.base + "/.well-known/oauth-authorization-server") as resp:
        meta = await resp.json()
    async with live.http.get(meta["jwks_uri"]) as resp:
        assert "max-age" in resp.headers["Cache-Control"]
        jwks = await resp.json()
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"])
    return dict(decoded.header), dict(decoded.claims)


@pytest.mark.rfc("9068-2")
async def test_client_credentials_token_is_rfc9068_and_verifies_through_discovery(
    live: Live,
) -> None:
    await seed(live)
    status, body = await live.token(
        "svc", grant_type="client_credentials", resource="api://orders", scope="orders:read"
    )
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert "refresh_token" not in body
    header, claims = await _verify_via_discovery(live, body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header["kid"]
    client = live.clients["svc"][0]
    assert claims["iss"] == live.base
    assert claims["aud"] == "api://orders"
    assert claims["sub"] == client.client_id == claims["client_id"]
    assert claims["exp"] - claims["iat"] == 600
    assert claims["jti"]
    assert claims["scope"] == "orders:read"
    assert claims["roles"] == ["service"]


async def test_token_response_is_not_cacheable(live_sqlite: Live) -> None:
    live = live_sqlite
    await seed(live)
    entry, secret = live.clients["svc"]
    status, _, resp = await live.post(
        "/token", {"grant_type": "client_credentials"}, basic(entry.client_id, secret or "")
    )
    assert status == 200
    assert resp.headers["Cache-Control"] == "no-store"


@pytest.mark.rfc("8414-3")
async def test_both_discovery_documents_advertise_only_what_is_enforced(live_sqlite: Live) -> None:
    live = live_sqlite
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        async with live.http.get(live.base + path) as resp:
            meta = await resp.json()
        assert meta["issuer"] == live.base
        assert meta["response_types_supported"] == ["code"]
        assert meta["code_challenge_methods_supported"] == ["S256"]
        assert "implicit" not in meta["grant_types_supported"]
        assert "password" not in meta["grant_types_supported"]
        assert meta["authorization_response_iss_parameter_supported"] is True
        assert "client_secret_post" not in meta["token_endpoint_auth_methods_supported"]


@pytest.mark.rfc("6749-3.3")
async def test_scope_and_resource_allow_lists(live_sqlite: Live) -> None:
    live = live_sqlite
    await seed(live)
    status, body = await live.token("svc", grant_type="client_credentials", scope="admin")
    assert (status, body["error"]) == (400, "invalid_scope")
    status, body = await live.token(
        "svc", grant_type="client_credentials", resource="https://evil.example"
    )
    assert (status, body["error"]) == (400, "invalid_target")


@pytest.mark.rfc("9700-2.4")
@pytest.mark.parametrize(
    "grant", ["password", "implicit", "urn:ietf:params:oauth:grant-type:device_code"]
)
async def test_password_and_implicit_grants_do_not_exist(live_sqlite: Live, grant: str) -> None:
    live = live_sqlite
    await seed(live)
    status, body = await live.token("svc", grant_type=grant, username="a", password="b")
    assert (status, body["error"]) == (400, "unsupported_grant_type")


@pytest.mark.rfc("6749-5.2")
async def test_grant_not_allowed_for_client(live_sqlite: Live) -> None:
    live = live_sqlite
    await seed(live)
    status, body = await live.token("web", grant_type="client_credentials")
    assert (status, body["error"]) == (400, "unauthorized_client")


@pytest.mark.rfc("6749-2.3")
async def test_client_authentication_failures(live_sqlite: Live) -> None:
    live = live_sqlite
    await seed(live)
    entry, secret = live.clients["svc"]
    assert secret is not None
    cases = [
        basic(entry.client_id, secret[:-1] + ("A" if secret[-1] != "A" else "B")),
        basic("no-such-client", secret),
        basic(entry.client_id, ""),
        {"Authorization": "Basic !!!notbase64"},
        basic(entry.client_id, secret + "%41" * 2_000),  # over the length read at all
        {"Authorization": "Bearer " + secret},
        {},
    ]
    for headers in cases:
        status, body, resp = await live.post(
            "/token", {"grant_type": "client_credentials"}, headers
        )
        assert (status, body["error"]) == (401, "invalid_client"), headers
        assert resp.headers["WWW-Authenticate"].startswith("Basic")
    # client_secret_post is not supported, and two methods at once are refused
    status, body, _ = await live.post(
        "/token",
        {"grant_type": "client_credentials", "client_id": entry.client_id, "client_secret": secret},
    )
    assert status == 401
    # a public client cannot use client credentials
    spa = live.clients["spa"][0]
    status, body, _ = await live.post(
        "/token", {"grant_type": "client_credentials", "client_id": spa.client_id}
    )
    assert status == 400
    assert body["error"] == "unauthorized_client"


async def test_unknown_client_ids_are_not_cached_and_long_ones_not_looked_up(
    sqlite_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every miss was cached under the id sent, of any length: 1,000 requests with a 60 KB
    # client_id held 60 MB (up to 10,000 entries, 600 MB per worker).
    async with live_server(sqlite_url, clock, tokens={"client_cache_ttl": 2}) as live:
        await seed(live)
        registry = live.service.clients
        cached = set(registry._cache)
        assert cached  # registered clients are cached (create reads them back)
        db = live.service.db
        lookups: list[int] = []
        read = db.read

        def counting_read():  # type: ignore[no-untyped-def]
            lookups.append(1)
            return read()

        monkeypatch.setattr(db, "read", counting_read)
        for client_id, lookups_each in (("a" * 60_000, 0), ("b" * 129, 0), ("unknown", 1)):
            for _ in range(3):
                lookups.clear()
                status, body, _ = await live.post(
                    "/token", {"grant_type": "client_credentials", "client_id": client_id}
                )
                assert (status, body["error"]) == (401, "invalid_client")
                assert len(lookups) == lookups_each, len(client_id)
        assert set(registry._cache) == cached
        with pytest.raises(ValueError, match="at most 128"):
            await registry.create(name="Long", client_id="c" * 129)


@pytest.mark.rfc("6749-3.1")
async def test_repeated_parameters_and_wrong_content_type_are_refused(live_sqlite: Live) -> None:
    live = live_sqlite
    await seed(live)
    entry, secret = live.clients["svc"]
    headers = basic(entry.client_id, secret or "")
    status, body, _ = await live.post(
        "/token", [("grant_type", "client_credentials"), ("scope", "a"), ("scope", "b")], headers
    )
    assert (status, body["error"]) == (400, "invalid_request")
    async with live.http.post(
        live.base + "/token", json={"grant_type": "client_credentials"}, headers=headers
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_request"


def _assertion(
    key: ECKey, client_id: str, aud: str, jti: str | None = None, exp_in: int = 60
) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + exp_in,
        "jti": jti or secrets.token_urlsafe(16),
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


@pytest.mark.rfc("7523-3")
async def test_private_key_jwt_accepts_once_and_refuses_replay_and_wrong_alg(live: Live) -> None:
    # private_key_jwt checks exp against the service clock: align it with real time here
    live.clock.now = time.time()
    key = ECKey.generate_key("P-256", parameters={"kid": "c1"}, private=True)
    client, secret = await live.service.clients.create(
        name="Signed",
        auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
        jwt_alg="ES256",
        grant_types=["client_credentials"],
        scopes=["x"],
    )
    assert secret is None
    token_url = live.base + "/token"
    assertion = _assertion(key, client.client_id, token_url)
    form = {
        "grant_type": "client_credentials",
        "client_assertion": assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    status, body, _ = await live.post("/token", form)
    assert status == 200, body
    status, body, _ = await live.post("/token", form)  # the same jti again
    assert (status, body["error"]) == (401, "invalid_client")
    other = ECKey.generate_key("P-256", parameters={"kid": "c1"}, private=True)
    for bad in (
        _assertion(other, client.client_id, token_url),  # wrong key
        _assertion(key, client.client_id, "https://other/token"),  # wrong audience
        _assertion(key, client.client_id, token_url, exp_in=3600),  # too long lived
    ):
        status, body, _ = await live.post("/token", {**form, "client_assertion": bad})
        assert (status, body["error"]) == (401, "invalid_client")
    # alg none / HS256 with the public key as secret: refused (alg pinned to ES256)
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    payload = _assertion(key, client.client_id, token_url).split(".")[1]
    status, body, _ = await live.post(
        "/token", {**form, "client_assertion": f"{header}.{payload}."}
    )
    assert status == 401
