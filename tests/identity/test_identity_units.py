"""Pure pieces: redirect URI matching (property-based), PKCE, sealing, form parsing."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.identity.http import parse_params
from bastion.identity.oautherrors import InvalidGrant, InvalidRequest
from bastion.identity.redirects import RedirectError, check_registrable, match_redirect_uri
from bastion.identity.rfc7636 import challenge_for, check_challenge, verify
from bastion.identity.sealing import Sealer

REGISTERED = ("https://app.example.com/cb", "http://127.0.0.1/native", "com.example.app:/oauth")


@pytest.mark.rfc("9700-4.1.3")
@settings(max_examples=150, deadline=None)
@given(st.text(min_size=0, max_size=60))
def test_only_exact_or_loopback_port_variants_match(candidate: str) -> None:
    try:
        matched = match_redirect_uri(candidate, REGISTERED)
    except RedirectError:
        return
    if matched != candidate:
        parts = urlsplit(candidate)
        assert matched == "http://127.0.0.1/native"
        assert candidate == f"http://127.0.0.1:{parts.port}/native"


@pytest.mark.rfc("8252-7.3")
@given(st.integers(min_value=1, max_value=65535))
def test_any_loopback_port(port: int) -> None:
    uri = f"http://127.0.0.1:{port}/native"
    assert match_redirect_uri(uri, REGISTERED) == "http://127.0.0.1/native"
    with pytest.raises(RedirectError):
        match_redirect_uri(f"http://127.0.0.1:{port}/native/", REGISTERED)
    with pytest.raises(RedirectError):
        match_redirect_uri(f"https://app.example.com:{port}/cb", REGISTERED)


@pytest.mark.parametrize(
    "uri",
    ["http://app.example.com/cb", "https://app.example.com/cb#x", "https://*.example.com/cb",
     "https://u:p@app.example.com/cb", "javascript:alert(1)", "data:text/html,x",
     "https://app.example.com/c b", "http://localhost/cb", "file:///etc/passwd"],
)  # fmt: skip
def test_unregistrable_redirect_uris(uri: str) -> None:
    with pytest.raises(RedirectError):
        check_registrable(uri)


@pytest.mark.rfc("7636-4.6")
def test_pkce_s256() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 Appendix B
    assert challenge_for(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    verify(verifier, challenge_for(verifier))
    with pytest.raises(InvalidGrant):
        verify(verifier[:-1] + "A", challenge_for(verifier))
    with pytest.raises(InvalidRequest):
        check_challenge(challenge_for(verifier), "plain")
    # RFC 7636 §4.1: a trailing line feed is not part of the alphabet ("$" matched before it)
    with pytest.raises(InvalidGrant):
        verify(verifier + "\n", challenge_for(verifier))
    with pytest.raises(InvalidRequest):
        check_challenge(challenge_for(verifier) + "\n", "S256")


def test_sealing_detects_tampering_and_wrong_key() -> None:
    sealer = Sealer(os.urandom(32))
    sealed = sealer.seal(b"totp-seed", "totp-seed")
    assert sealer.open(sealed, "totp-seed") == b"totp-seed"
    with pytest.raises(ValueError, match="cannot be opened"):
        sealer.open(sealed, "signing-key")  # purpose is bound
    with pytest.raises(ValueError, match="cannot be opened"):
        Sealer(os.urandom(32)).open(sealed, "totp-seed")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(ValueError, match="cannot be opened"):
        sealer.open(tampered, "totp-seed")
    assert sealer.matches("secret", sealer.digest("secret"))
    assert not sealer.matches("secret", None)
    assert sealer.audit_id("u-alice") != "u-alice"


@pytest.mark.rfc("6749-3.1")
def test_form_rules() -> None:
    form = parse_params("a=1&b=&resource=x&resource=y")
    assert form == {"a": "1"}
    assert form.many("resource") == ["x", "y"]
    with pytest.raises(InvalidRequest):
        parse_params("a=1&a=2")
    with pytest.raises(InvalidRequest):
        parse_params("a=%00")
