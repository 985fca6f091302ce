"""Refresh rotation and reuse detection, revocation (RFC 7009), introspection (RFC 7662),
logout and password change."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.identity.harness import (
    USER_PASSWORD,
    Browser,
    Live,
    Seeded,
    basic,
    form_fields,
    login_for_code,
    pkce_pair,
    seed,
)

pytestmark = pytest.mark.rfc("6749-6")


async def _redeem(
    live: Live, client: str, seeded: Seeded, code: str, verifier: str
) -> tuple[int, dict[str, Any]]:
    """Exchange an authorization code at the token endpoint."""
    return await live.token(
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=seeded.redirect_uri,
        code_verifier=verifier,
    )


async def _tokens(live: Live, client: str = "web") -> tuple[Seeded, dict[str, Any], Browser]:
    seeded = await seed(live)
    entry = live.clients[client][0]
    verifier, challenge = pkce_pair()
    browser = Browser(live)
    params = await login_for_code(
        live, browser, entry, seeded.redirect_uri, challenge, username=seeded.username
    )
    status, body = await _redeem(live, client, seeded, params["code"], verifier)
    assert status == 200, body
    return seeded, body, browser


async def _introspect(live: Live, token: str, **extra: str) -> dict[str, Any]:
    entry, secret = live.clients["web"]
    status, body, _ = await live.post(
        "/introspect", {"token": token, **extra}, basic(entry.client_id, secret or "")
    )
    assert status == 200
    return dict(body)


@pytest.mark.rfc("9700-4.14.2")
async def test_refresh_rotates_and_reuse_revokes_the_family(live: Live) -> None:
    _, first, _ = await _tokens(live)
    status, second = await live.token(
        "web", grant_type="refresh_token", refresh_token=first["refresh_token"]
    )
    assert status == 200
    assert second["refresh_token"] != first["refresh_token"]
    # presenting the spent token again: refused, and the whole family dies
    status, body = await live.token(
        "web", grant_type="refresh_token", refresh_token=first["refresh_token"]
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await live.token(
        "web", grant_type="refresh_token", refresh_token=second["refresh_token"]
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    assert (await _introspect(live, second["access_token"]))["active"] is False
    events = [r["event"] for r in live.service.audit.records]
    assert "refresh.reuse_detected" in events
    assert {jti for jti, _ in live.events.revoked}


@pytest.mark.rfc("9700-4.14.2")
async def test_concurrent_refresh_one_wins_and_reuse_revokes(live: Live) -> None:
    _, first, _ = await _tokens(live)
    results = await asyncio.gather(
        *[
            live.token("web", grant_type="refresh_token", refresh_token=first["refresh_token"])
            for _ in range(3)
        ]
    )
    assert sorted(status for status, _ in results) == [200, 400, 400]
    winner = next(body for status, body in results if status == 200)
    status, _ = await live.token(
        "web", grant_type="refresh_token", refresh_token=winner["refresh_token"]
    )
    assert status == 400
    assert (await _introspect(live, winner["access_token"]))["active"] is False


async def test_refresh_is_bound_to_client_and_scope_cannot_grow(live_sqlite: Live) -> None:
    live = live_sqlite
    _, first, _ = await _tokens(live)
    status, body = await live.token(
        "spa", grant_type="refresh_token", refresh_token=first["refresh_token"]
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await live.token(
        "web", grant_type="refresh_token", refresh_token=first["refresh_token"], scope="admin"
    )
    assert (status, body["error"]) == (400, "invalid_scope")


async def test_refresh_idle_and_absolute_expiry(live_sqlite: Live) -> None:
    live = live_sqlite
    _, first, _ = await _tokens(live)
    live.clock.advance(14 * 86400 + 1)
    status, _ = await live.token(
        "web", grant_type="refresh_token", refresh_token=first["refresh_token"]
    )
    assert status == 400
    _, tokens, _ = await _tokens(live)
    token = tokens["refresh_token"]
    for _ in range(4):  # keep using it: idle expiry never hits, the absolute one does
        live.clock.advance(8 * 86400)
        status, body = await live.token("web", grant_type="refresh_token", refresh_token=token)
        if status != 200:
            break
        token = body["refresh_token"]
    assert status == 400


@pytest.mark.rfc("7009-2.1")
async def test_revoking_a_refresh_token_ends_its_family_and_access_tokens(live: Live) -> None:
    _, tokens, _ = await _tokens(live)
    entry, secret = live.clients["web"]
    status, _body, _ = await live.post(
        "/revoke",
        {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        basic(entry.client_id, secret or ""),
    )
    assert status == 200
    assert (await _introspect(live, tokens["access_token"]))["active"] is False
    assert (await _introspect(live, tokens["refresh_token"]))["active"] is False
    assert live.events.revoked


@pytest.mark.rfc("7009-2.1")
async def test_revoking_an_access_token_and_unknown_tokens(live: Live) -> None:
    _, tokens, _ = await _tokens(live)
    entry, secret = live.clients["web"]
    headers = basic(entry.client_id, secret or "")
    assert (await _introspect(live, tokens["access_token"]))["active"] is True
    status, _, _ = await live.post("/revoke", {"token": tokens["access_token"]}, headers)
    assert status == 200
    assert (await _introspect(live, tokens["access_token"]))["active"] is False
    assert live.events.revoked[-1][0]
    # §2.2: invalid tokens still get 200
    status, _, _ = await live.post("/revoke", {"token": "garbage"}, headers)
    assert status == 200
    # another client cannot revoke this client's tokens
    svc, svc_secret = live.clients["svc"]
    status, _, _ = await live.post(
        "/revoke", {"token": tokens["refresh_token"]}, basic(svc.client_id, svc_secret or "")
    )
    assert status == 200
    assert (await _introspect(live, tokens["refresh_token"]))["active"] is True


@pytest.mark.rfc("7662-2.1")
async def test_introspection_requires_confidential_client_authentication(live: Live) -> None:
    _, tokens, _ = await _tokens(live)
    status, body, _ = await live.post("/introspect", {"token": tokens["access_token"]})
    assert (status, body["error"]) == (401, "invalid_client")
    spa = live.clients["spa"][0]
    status, body, _ = await live.post(
        "/introspect", {"token": tokens["access_token"], "client_id": spa.client_id}
    )
    assert status == 401
    info = await _introspect(live, tokens["refresh_token"], token_type_hint="refresh_token")
    assert info["active"] is True
    assert info["token_type"] == "refresh_token"


async def test_logout_ends_session_and_revokes_its_families(live: Live) -> None:
    seeded, tokens, browser = await _tokens(live)
    status, html, _ = await browser.get("/logout")
    assert status == 200
    csrf = next(v for k, v in form_fields(html) if k == "csrf_token")
    status, html, resp = await browser.post("/logout", {"csrf_token": csrf})
    assert status == 200
    assert "signed out" in html
    assert any("Max-Age=0" in c for c in resp.headers.getall("set-cookie"))
    assert (await _introspect(live, tokens["access_token"]))["active"] is False
    status, _ = await live.token(
        "web", grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 400
    assert live.events.revoked
    # the old session cookie no longer skips the login page
    browser.cookies[live.service.settings.sessions.cookie_name] = "stale"
    _, challenge = pkce_pair()
    from urllib.parse import urlencode

    web = live.clients["web"][0]
    status, html, _ = await browser.get(
        "/authorize?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": web.client_id,
                "redirect_uri": seeded.redirect_uri,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
    )
    assert status == 200
    assert "Sign in" in html


async def test_logout_without_csrf_token_is_refused(live_sqlite: Live) -> None:
    live = live_sqlite
    _, tokens, browser = await _tokens(live)
    status, _, _ = await browser.post("/logout", {"csrf_token": "forged"})
    assert status == 400
    assert (await _introspect(live, tokens["access_token"]))["active"] is True


async def test_password_change_revokes_everything_and_sets_not_before(live: Live) -> None:
    seeded, tokens, _ = await _tokens(live)
    user = await live.service.users.get(seeded.user_id)
    assert user is not None
    live.clock.advance(5)
    await live.service.change_password(user, "a completely new passphrase 2026")
    assert (await _introspect(live, tokens["access_token"]))["active"] is False
    status, _ = await live.token(
        "web", grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 400
    assert live.events.subjects == [(seeded.user_id, live.clock.now)]


async def test_a_code_issued_before_logout_or_password_change_is_refused(live: Live) -> None:
    # Revocation reached only existing refresh families: a code still unredeemed when the
    # session ended was redeemed afterwards, for a fresh 30-day family.
    seeded = await seed(live)
    web = live.clients["web"][0]
    password = USER_PASSWORD
    for ending in ("logout", "password change"):
        browser = Browser(live)
        verifier, challenge = pkce_pair()
        params = await login_for_code(
            live, browser, web, seeded.redirect_uri, challenge, seeded.username, password
        )
        live.clock.advance(5)
        if ending == "logout":
            _, html, _ = await browser.get("/logout")
            status, _, _ = await browser.post("/logout", form_fields(html))
            assert status == 200
        else:
            user = await live.service.users.get(seeded.user_id)
            assert user is not None
            password = "a completely new passphrase 2026"
            await live.service.change_password(user, password)
        live.clock.advance(5)  # well inside the code's 60 s
        status, body = await _redeem(live, "web", seeded, params["code"], verifier)
        assert (status, body["error"]) == (400, "invalid_grant"), ending
    # a login after the change (at the same instant) gets a code that works
    browser = Browser(live)
    verifier, challenge = pkce_pair()
    params = await login_for_code(
        live, browser, web, seeded.redirect_uri, challenge, seeded.username, password
    )
    status, body = await _redeem(live, "web", seeded, params["code"], verifier)
    assert status == 200, body


async def test_disabled_user_tokens_become_inactive(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded, tokens, _ = await _tokens(live)
    live.clock.advance(1)
    await live.service.disable_user(seeded.user_id)
    assert (await _introspect(live, tokens["access_token"]))["active"] is False
    assert live.events.subjects[-1][0] == seeded.user_id


async def test_housekeeping_removes_only_what_expired(live_sqlite: Live) -> None:
    live = live_sqlite
    _, tokens, _ = await _tokens(live)
    assert await live.service.housekeeping() == 0  # nothing expired yet
    assert (await _introspect(live, tokens["refresh_token"]))["active"] is True
    live.clock.advance(31 * 86400)
    assert await live.service.housekeeping() >= 4  # code, access token, family, refresh, session
    status, _ = await live.token(
        "web", grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 400


async def test_a_sign_out_that_fails_half_way_can_be_retried(live: Live) -> None:
    """The session used to end before its tokens were revoked: when the revocation then
    failed (a duplicate revoked jti from a concurrent RFC 7009 call, on PostgreSQL), the
    retried sign-out found the session ended, said it revoked the tokens, and the refresh
    token kept working."""
    _, tokens, browser = await _tokens(live)
    revocations = live.service.revocations
    real = revocations.revoke_for
    calls = 0

    async def flaky(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database went away")
        return await real(**kwargs)

    revocations.revoke_for = flaky  # type: ignore[method-assign]
    raw = browser.cookies[live.service.settings.sessions.cookie_name]
    with pytest.raises(RuntimeError):
        await live.service.logout(raw)
    assert await live.service.logout(raw)  # the session was still there to end
    status, _ = await live.token(
        "web", grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 400


async def test_an_access_token_revoked_twice_at_once_is_one_revocation(live: Live) -> None:
    """RFC 7009 revocation of an access token while /logout revokes its family inserted
    the same jti twice; on PostgreSQL the second failed with a duplicate key."""
    _, tokens, _ = await _tokens(live)
    access = tokens["access_token"]
    entry, secret = live.clients["web"]
    results = await asyncio.gather(
        *(
            live.post(
                "/revoke",
                {"token": access, "token_type_hint": "access_token"},
                basic(entry.client_id, secret or ""),
            )
            for _ in range(6)
        )
    )
    assert [status for status, _, _ in results] == [200] * 6
    assert (await _introspect(live, access))["active"] is False


async def test_a_refresh_after_a_sign_out_is_refused_not_reported_as_theft(live: Live) -> None:
    _, tokens, browser = await _tokens(live)
    raw = browser.cookies[live.service.settings.sessions.cookie_name]
    assert await live.service.logout(raw)
    status, _ = await live.token(
        "web", grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 400
    events = [r["event"] for r in live.service.audit.records]
    assert "token.revoked" in events
    assert "refresh.reuse_detected" not in events
