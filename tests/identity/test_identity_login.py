"""The login page: CSRF, generic errors, throttling and lockout, TOTP (replay refused),
recovery codes, sessions (idle and absolute timeouts, cookie attributes)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import pyotp
import pytest

from tests.identity.harness import (
    USER_PASSWORD,
    Browser,
    Live,
    Seeded,
    form_fields,
    login_for_code,
    pkce_pair,
    seed,
)

pytestmark = pytest.mark.rfc("NIST-800-63B-4")


async def _login_page(live: Live, browser: Browser, seeded: Seeded) -> list[tuple[str, str]]:
    web = live.clients["web"][0]
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
    status, html, resp = await browser.get("/authorize?" + query)
    assert status == 200
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert '<label for="password">' in html
    assert "<script" not in html
    return form_fields(html)


async def _try(
    live: Live, browser: Browser, fields: list[tuple[str, str]], user: str, password: str
) -> tuple[int, str]:
    status, html, _ = await browser.post(
        "/authorize", [*fields, ("username", user), ("password", password)]
    )
    return status, html


async def test_session_cookie_attributes(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    browser = Browser(live)
    fields = await _login_page(live, browser, seeded)
    status, _, resp = await browser.post(
        "/authorize", [*fields, ("username", seeded.username), ("password", USER_PASSWORD)]
    )
    assert status == 303
    cookies = resp.headers.getall("set-cookie")
    session = next(c for c in cookies if c.startswith("__Host-bastion-session="))
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute in session
    assert "Domain" not in session


async def test_missing_or_forged_csrf_token_is_refused(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    browser = Browser(live)
    fields = await _login_page(live, browser, seeded)
    forged = [(k, "forged" if k == "csrf_token" else v) for k, v in fields]
    status, html = await _try(live, browser, forged, seeded.username, USER_PASSWORD)
    assert status == 400
    assert "expired" in html
    # a cross-site POST carries no CSRF cookie at all
    stranger = Browser(live)
    status, _ = await _try(live, stranger, fields, seeded.username, USER_PASSWORD)
    assert status == 400


async def test_one_generic_message_for_unknown_user_and_wrong_password(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    browser = Browser(live)
    fields = await _login_page(live, browser, seeded)
    _, unknown = await _try(live, browser, fields, "nobody-here", USER_PASSWORD)
    _, wrong = await _try(live, browser, fields, seeded.username, "wrong password for alice!")
    message = "The username or password is incorrect, or the account is locked."
    assert message in unknown
    assert message in wrong
    causes = [r.get("cause") for r in live.service.audit.records if r["event"] == "login.failure"]
    assert causes == ["login.unknown_user", "login.bad_password"]
    assert all(
        seeded.username not in str(r) and USER_PASSWORD not in str(r)
        for r in live.service.audit.records
    )


async def test_brute_force_reaches_lockout_then_recovers(live: Live) -> None:
    seeded = await seed(live)
    browser = Browser(live)
    fields = await _login_page(live, browser, seeded)
    threshold = live.service.settings.lockout.lockout_threshold
    for attempt in range(threshold):
        status, _ = await _try(
            live, browser, fields, seeded.username, f"wrong guess {attempt:04d}!"
        )
        assert status == 401
        live.clock.advance(400)  # wait out the growing delay, so each guess is really checked
    user = await live.service.users.get(seeded.user_id)
    assert user is not None
    assert user.failed_logins == threshold
    assert "login.locked" in [r["event"] for r in live.service.audit.records]
    # locked: even the right password fails, with the same message
    status, html = await _try(live, browser, fields, seeded.username, USER_PASSWORD)
    assert status == 401
    assert "incorrect, or the account is locked" in html
    live.clock.advance(live.service.settings.lockout.lockout_duration + 1)
    status, _ = await _try(live, browser, fields, seeded.username, USER_PASSWORD)
    assert status == 303


async def test_throttling_refuses_guesses_during_the_delay(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    browser = Browser(live)
    fields = await _login_page(live, browser, seeded)
    for attempt in range(live.service.settings.lockout.throttle_after):
        await _try(live, browser, fields, seeded.username, f"wrong guess {attempt:04d}!")
    # inside the delay even the right password is refused, without being checked
    status, _ = await _try(live, browser, fields, seeded.username, USER_PASSWORD)
    assert status == 401
    causes = [r.get("cause") for r in live.service.audit.records if r["event"] == "login.failure"]
    assert causes[-1] == "login.throttled"
    live.clock.advance(2)
    status, _ = await _try(live, browser, fields, seeded.username, USER_PASSWORD)
    assert status == 303


def _count_password_checks(live: Live, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record every Argon2id verification: True against a user's hash, False the dummy's."""
    hasher = live.service.hasher
    checks: list[bool] = []
    verify = hasher.verify

    def counting(stored_hash: str | None, password: str) -> bool:
        checks.append(stored_hash is not None)
        return verify(stored_hash, password)

    monkeypatch.setattr(hasher, "verify", counting)
    return checks


async def test_a_burst_of_guesses_checks_no_more_passwords_than_a_sequence(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each guess was read as "not throttled" before any failure was counted, so a burst
    # queued for Argon2id slots was checked in full (60 of 60), not 5.
    seeded = await seed(live)
    browser = Browser(live)
    fields = await _login_page(live, browser, seeded)
    checks = _count_password_checks(live, monkeypatch)
    budget = live.service.settings.lockout.throttle_after  # the clock stands still
    burst = [f"wrong guess {attempt:04d}!" for attempt in range(8 * budget)]
    results = await asyncio.gather(
        *(_try(live, browser, fields, seeded.username, guess) for guess in burst)
    )
    assert [status for status, _ in results] == [401] * len(burst)
    assert checks.count(True) == budget  # the rest cost the dummy hash, unchecked
    assert len(checks) == len(burst)
    causes = [r.get("cause") for r in live.service.audit.records if r["event"] == "login.failure"]
    assert causes.count("login.bad_password") == budget
    assert causes.count("login.throttled") == len(burst) - budget
    user = await live.service.users.get(seeded.user_id)
    assert user is not None
    assert user.failed_logins == budget
    # the delay holds against the right password too, and then the account opens
    status, _ = await _try(live, browser, fields, seeded.username, USER_PASSWORD)
    assert status == 401
    assert checks.count(True) == budget
    live.clock.advance(2)
    status, _ = await _try(live, browser, fields, seeded.username, USER_PASSWORD)
    assert status == 303


async def test_a_burst_of_codes_on_one_mfa_ticket_checks_no_more_than_a_sequence(
    live: Live,
) -> None:
    # The ticket is reusable and each code was checked before its failure was counted:
    # 100 codes posted at once had 52 checked, and the right one among them logged in.
    seeded = await seed(live)
    totp = pyotp.TOTP((await live.service.totp.enroll(seeded.user_id, seeded.username)).seed)
    browser = Browser(live)
    fields = await _login_page(live, browser, seeded)
    status, html = await _try(live, browser, fields, seeded.username, USER_PASSWORD)
    assert status == 200
    mfa_fields = form_fields(html)  # carries the sealed ticket
    valid = {totp.at(live.clock.now + drift) for drift in (-30, 0, 30)}
    budget = live.service.settings.lockout.throttle_after
    wrong = [code for code in (f"{n:06d}" for n in range(100, 200)) if code not in valid]
    burst = wrong[: 6 * budget]

    async def submit(code: str) -> int:
        status, _, _ = await browser.post("/authorize/mfa", [*mfa_fields, ("otp", code)])
        return status

    def checked() -> int:
        return [r["event"] for r in live.service.audit.records].count("mfa.failure")

    assert await asyncio.gather(*(submit(code) for code in burst)) == [401] * len(burst)
    assert checked() == budget
    user = await live.service.users.get(seeded.user_id)
    assert user is not None
    assert user.failed_logins == budget  # the right password cost nothing
    # inside the delay even the right code is refused; after it, it logs in
    assert await submit(totp.at(live.clock.now)) == 401
    assert checked() == budget
    live.clock.advance(2)
    assert await submit(totp.at(live.clock.now)) == 303


@pytest.mark.rfc("6238-5.2")
async def test_totp_login_replay_refused_and_recovery_code_single_use(live: Live) -> None:
    seeded = await seed(live)
    enrolment = await live.service.totp.enroll(seeded.user_id, seeded.username)
    totp = pyotp.TOTP(enrolment.seed)
    web = live.clients["web"][0]

    async def attempt(code: str) -> int:
        browser = Browser(live)
        fields = await _login_page(live, browser, seeded)
        status, html = await _try(live, browser, fields, seeded.username, USER_PASSWORD)
        assert status == 200
        assert 'autocomplete="one-time-code"' in html
        status, _, _ = await browser.post("/authorize/mfa", [*form_fields(html), ("otp", code)])
        return status

    code = totp.at(live.clock.now)
    assert await attempt(code) == 303
    assert await attempt(code) == 401  # the same code again: replay
    live.clock.advance(30)
    assert await attempt(totp.at(live.clock.now - 30)) == 401  # older step than the last used
    assert await attempt(totp.at(live.clock.now + 30)) == 303  # one step of drift allowed
    live.clock.advance(120)
    assert await attempt("000000" if totp.at(live.clock.now) != "000000" else "111111") == 401
    recovery = enrolment.recovery_codes[0]
    assert await attempt(recovery) == 303
    assert await attempt(recovery) == 401
    events = [r["event"] for r in live.service.audit.records]
    assert "mfa.success" in events
    assert "mfa.failure" in events
    assert web.client_id


async def test_mfa_enforced_per_client_without_enrolment_is_refused(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live, mfa_client=True)
    browser = Browser(live)
    fields = await _login_page(live, browser, seeded)
    status, html = await _try(live, browser, fields, seeded.username, USER_PASSWORD)
    assert status == 403
    assert "Two-step verification is required" in html


async def test_session_idle_and_absolute_timeouts(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    web = live.clients["web"][0]
    browser = Browser(live)
    _, challenge = pkce_pair()
    await login_for_code(
        live, browser, web, seeded.redirect_uri, challenge, username=seeded.username
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": web.client_id,
            "redirect_uri": seeded.redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    for _ in range(24):  # used every 59 minutes: idle never expires ...
        live.clock.advance(59 * 60)
        status, _, _ = await browser.get("/authorize?" + query)
        assert status == 303
    live.clock.advance(59 * 60)  # ... but 24 h after login the session ends
    status, _, _ = await browser.get("/authorize?" + query)
    assert status == 200
    browser2 = Browser(live)
    await login_for_code(
        live, browser2, web, seeded.redirect_uri, challenge, username=seeded.username
    )
    live.clock.advance(3601)
    status, _, _ = await browser2.get("/authorize?" + query)
    assert status == 200


async def test_known_password_does_not_reset_the_totp_guess_budget(live_sqlite: Live) -> None:
    live = live_sqlite
    seeded = await seed(live)
    enrolment = await live.service.totp.enroll(seeded.user_id, seeded.username)
    threshold = live.service.settings.lockout.lockout_threshold
    for guess in range(threshold):
        browser = Browser(live)
        fields = await _login_page(live, browser, seeded)
        status, html = await _try(live, browser, fields, seeded.username, USER_PASSWORD)
        if status != 200:  # the account is locked: even the right password stops here
            break
        wrong = f"{guess:06d}"
        if wrong == pyotp.TOTP(enrolment.seed).at(live.clock.now):
            wrong = "999999"
        status, _, _ = await browser.post("/authorize/mfa", [*form_fields(html), ("otp", wrong)])
        assert status == 401
        live.clock.advance(400)  # wait out each growing delay
    user = await live.service.users.get(seeded.user_id)
    assert user is not None
    assert user.failed_logins >= threshold
    assert user.locked_until > live.clock.now


# Combining marks in descending class order: NFKC sorts them with an insertion sort, so a
# 64 KB field of them took 2 s of CPU with the GIL held before the length was looked at.
# (Percent-encoded, 10,000 marks fill the form's 64 KiB.)
_HOSTILE_PASSWORD = "a" + "\u0301" * 5_000 + "\u0316" * 5_000


async def test_a_hostile_password_fails_like_a_wrong_one_without_being_normalised(
    live_sqlite: Live,
) -> None:
    live = live_sqlite
    seeded = await seed(live)
    browser = Browser(live)
    fields = await _login_page(live, browser, seeded)
    status, html = await _try(live, browser, fields, seeded.username, _HOSTILE_PASSWORD)
    assert status == 401
    assert "The username or password is incorrect, or the account is locked." in html
    causes = [r.get("cause") for r in live.service.audit.records if r["event"] == "login.failure"]
    assert causes == ["login.bad_password"]
    # the account still opens with its password
    status, _ = await _try(live, browser, form_fields(html), seeded.username, USER_PASSWORD)
    assert status == 303


async def test_the_sign_in_form_shown_again_after_the_mfa_step_can_be_submitted(
    live_sqlite: Live,
) -> None:
    """Re-shown at /authorize/mfa (an expired ticket, a failed CSRF check, a lock), the
    form's relative action "authorize" resolved to /authorize/authorize: a 404."""
    import re
    from urllib.parse import urljoin

    live = live_sqlite
    seeded = await seed(live)
    await live.service.totp.enroll(seeded.user_id, seeded.username)
    browser = Browser(live)
    fields = await _login_page(live, browser, seeded)
    status, html = await _try(live, browser, fields, seeded.username, USER_PASSWORD)
    assert status == 200
    tampered = [(k, "forged" if k == "mfa_ticket" else v) for k, v in form_fields(html)]
    status, html, _ = await browser.post("/authorize/mfa", [*tampered, ("otp", "000000")])
    assert status == 400
    action = re.search(r'<form[^>]*action="([^"]+)"', html)
    assert action is not None
    target = urljoin(live.base + "/authorize/mfa", action.group(1))
    assert target == live.base + "/authorize"
