"""Authorization code + PKCE, redirect URI matching, single-use codes, RFC 9207 iss."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import pytest

from tests.identity.harness import Browser, Live, basic, login_for_code, pkce_pair, seed

pytestmark = pytest.mark.rfc("6749-4.1")


async def _redeem(
    live: Live, client: str, code: str, redirect: str, verifier: str | None
) -> tuple[int, dict]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect}
    if verifier is not None:
        form["code_verifier"] = verifier
    return await live.token(client, **form)


@pytest.mark.rfc("9207-2")
async def test_code_flow_issues_user_token_refresh_token_and_iss(live: Live) -> None:
    seeded = await seed(live)
    web = live.clients["web"][0]
    verifier, challenge = pkce_pair()
    params = await login_for_code(
        live,
        Browser(live),
        web,
        seeded.redirect_uri,
        challenge,
        username=seeded.username,
        resource="api://orders",
    )
    assert params["iss"] == live.base
    assert params["state"] == "st-1"
    status, body = await _redeem(live, "web", params["code"], seeded.redirect_uri, verifier)
    assert status == 200, body
    assert body["refresh_token"]
    assert body["scope"] == "orders:read profile"
    status, info, _ = await live.post(
        "/introspect",
        {"token": body["access_token"]},
        basic(web.client_id, live.clients["web"][1] or ""),
    )
    assert info["active"] is True
    assert info["sub"] == seeded.user_id
    assert info["roles"] == ["customer"]
    assert info["aud"] == "api://orders"


async def test_existing_session_skips_the_login_page(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    web = live.clients["web"][0]
    browser = Browser(live)
    _, challenge = pkce_pair()
    await login_for_code(
        live, browser, web, seeded.redirect_uri, challenge, username=seeded.username
    )
    _, challenge2 = pkce_pair()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": web.client_id,
            "redirect_uri": seeded.redirect_uri,
            "code_challenge": challenge2,
            "code_challenge_method": "S256",
        }
    )
    status, _, resp = await browser.get("/authorize?" + query)
    assert status == 303
    assert "code=" in resp.headers["Location"]


@pytest.mark.rfc("7636-4.4")
@pytest.mark.parametrize(
    ("challenge", "method"),
    [(None, None), ("x" * 43, "plain"), ("x" * 43, None), ("short", "S256"), ("x" * 43, "S512")],
)
async def test_pkce_missing_plain_or_malformed_is_refused(
    live_sqlite: Live, challenge: str | None, method: str | None
) -> None:
    live = live_sqlite
    seeded = await seed(live)
    web = live.clients["web"][0]
    query = {
        "response_type": "code",
        "client_id": web.client_id,
        "redirect_uri": seeded.redirect_uri,
        "state": "s",
    }
    if challenge:
        query["code_challenge"] = challenge
    if method:
        query["code_challenge_method"] = method
    status, _, resp = await Browser(live).get("/authorize?" + urlencode(query))
    assert status == 303
    location = resp.headers["Location"]
    assert location.startswith(seeded.redirect_uri + "?")
    assert "error=invalid_request" in location
    assert "code=" not in location
    assert "iss=" in location
    assert "state=s" in location


@pytest.mark.rfc("7636-4.6")
async def test_wrong_or_missing_verifier_fails_and_burns_the_code(live: Live) -> None:
    seeded = await seed(live)
    web = live.clients["web"][0]
    verifier, challenge = pkce_pair()
    params = await login_for_code(
        live, Browser(live), web, seeded.redirect_uri, challenge, username=seeded.username
    )
    other, _ = pkce_pair()
    status, body = await _redeem(live, "web", params["code"], seeded.redirect_uri, other)
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await _redeem(live, "web", params["code"], seeded.redirect_uri, verifier)
    assert (status, body["error"]) == (400, "invalid_grant")  # single use, even after a failure

    params = await login_for_code(
        live, Browser(live), web, seeded.redirect_uri, challenge, username=seeded.username
    )
    status, body = await _redeem(live, "web", params["code"], seeded.redirect_uri, None)
    assert (status, body["error"]) == (400, "invalid_grant")


@pytest.mark.rfc("9700-4.1")
@pytest.mark.parametrize(
    "variant",
    [
        "https://app.example.com/callback/",  # trailing slash
        "https://APP.example.com/callback",  # case
        "https://app.example.com/Callback",
        "https://user@app.example.com/callback",  # userinfo
        "https://app.example.com@evil.example/callback",
        "https://app.example.com/callback#frag",  # fragment
        "https://app.example.com:8443/callback",  # other port, non-loopback
        "https://app.example.com/callback?x=1",  # extra query
        "https://app.example.com/callback/../evil",  # path tricks
        "https://app.example.com/callback%2f..%2fevil",
        "https://evil.example/callback",
        "https://app.example.com.evil.example/callback",
        "//evil.example/callback",
        "https:\\\\evil.example\\callback",
        "http://app.example.com/callback",  # scheme downgrade
        "http://localhost/cb",  # loopback by name is not the IP
        "",
    ],
)
async def test_redirect_uri_variants_are_refused_without_redirecting(
    live_sqlite: Live, variant: str
) -> None:
    live = live_sqlite
    await seed(live)
    web = live.clients["web"][0]
    _, challenge = pkce_pair()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": web.client_id,
            "redirect_uri": variant,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    status, html, resp = await Browser(live).get("/authorize?" + query)
    assert status == 400
    assert "Location" not in resp.headers
    assert "not registered" in html


@pytest.mark.rfc("8252-7.3")
async def test_loopback_redirect_accepts_any_port(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    web = live.clients["web"][0]
    verifier, challenge = pkce_pair()
    redirect = "http://127.0.0.1:51234/cb"
    params = await login_for_code(
        live, Browser(live), web, redirect, challenge, username=seeded.username
    )
    status, body = await _redeem(live, "web", params["code"], redirect, verifier)
    assert status == 200, body
    # the redirect_uri at the token endpoint must be the same string
    params = await login_for_code(
        live, Browser(live), web, redirect, challenge, username=seeded.username
    )
    status, body = await _redeem(live, "web", params["code"], "http://127.0.0.1:9/cb", verifier)
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_unknown_client_gets_an_error_page(live_sqlite: Live) -> None:
    live = live_sqlite
    query = urlencode(
        {
            "response_type": "code",
            "client_id": "nope",
            "redirect_uri": "https://evil.example/",
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
        }
    )
    status, _, resp = await Browser(live).get("/authorize?" + query)
    assert status == 400
    assert "Location" not in resp.headers


@pytest.mark.rfc("6749-4.1.2")
async def test_two_concurrent_redemptions_exactly_one_wins_and_reuse_revokes(live: Live) -> None:
    seeded = await seed(live)
    web = live.clients["web"][0]
    verifier, challenge = pkce_pair()
    params = await login_for_code(
        live, Browser(live), web, seeded.redirect_uri, challenge, username=seeded.username
    )
    results = await asyncio.gather(
        *[_redeem(live, "web", params["code"], seeded.redirect_uri, verifier) for _ in range(2)]
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 400], results
    winner = next(body for status, body in results if status == 200)
    # the loser's attempt counts as reuse: the winner's tokens are revoked too
    status, body = await live.token(
        "web", grant_type="refresh_token", refresh_token=winner["refresh_token"]
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    status, info, _ = await live.post(
        "/introspect",
        {"token": winner["access_token"]},
        basic(web.client_id, live.clients["web"][1] or ""),
    )
    assert info == {"active": False}
    assert live.events.revoked, "the gateway was told about the revoked access token"


@pytest.mark.rfc("6749-4.1.2")
async def test_codes_expire_after_sixty_seconds(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    web = live.clients["web"][0]
    verifier, challenge = pkce_pair()
    params = await login_for_code(
        live, Browser(live), web, seeded.redirect_uri, challenge, username=seeded.username
    )
    live.clock.advance(61)
    status, body = await _redeem(live, "web", params["code"], seeded.redirect_uri, verifier)
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_code_bound_to_client(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    web = live.clients["web"][0]
    verifier, challenge = pkce_pair()
    params = await login_for_code(
        live, Browser(live), web, seeded.redirect_uri, challenge, username=seeded.username
    )
    status, body = await _redeem(live, "spa", params["code"], seeded.redirect_uri, verifier)
    assert (status, body["error"]) == (400, "invalid_grant")


@pytest.mark.rfc("9700-2.1.1")
async def test_public_client_with_pkce(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    spa = live.clients["spa"][0]
    verifier, challenge = pkce_pair()
    params = await login_for_code(
        live, Browser(live), spa, seeded.redirect_uri, challenge, username=seeded.username
    )
    status, body = await _redeem(live, "spa", params["code"], seeded.redirect_uri, verifier)
    assert status == 200
    assert body["refresh_token"]


async def test_response_type_token_is_refused(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    web = live.clients["web"][0]
    _, challenge = pkce_pair()
    query = urlencode(
        {
            "response_type": "token",
            "client_id": web.client_id,
            "redirect_uri": seeded.redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    status, _, resp = await Browser(live).get("/authorize?" + query)
    assert status == 303
    assert "error=unsupported_response_type" in resp.headers["Location"]
    assert "access_token" not in resp.headers["Location"]
