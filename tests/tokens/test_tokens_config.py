"""IssuerSettings and JWTVerifier refuse insecure or inconsistent configuration."""

from __future__ import annotations

from typing import Any

import pytest

import bastion.tokens
from bastion.errors import ConfigError, InvalidToken
from bastion.tokens import IssuerSettings, JWTVerifier

BASE: dict[str, Any] = {
    "issuer": "https://id.example.test",
    "audiences": ("api://a",),
    "algorithms": ("ES256",),
    "jwks_uri": "https://id.example.test/jwks",
}


@pytest.mark.parametrize(
    "override",
    [
        {"algorithms": ("none",)},
        {"algorithms": ("NoNe",)},
        {"algorithms": ("ES256", "None")},
        {"algorithms": ()},
        {"algorithms": ("es256",)},
        {"algorithms": ("HS256", "RS256")},
        {"algorithms": ("XS999",)},
        {"audiences": ()},
        {"audiences": ("",)},
        {"issuer": ""},
        {"leeway": -1},
        {"leeway": 61},
        {"leeway": float("nan")},
        {"token_types": ()},
        {"roles_claim": "a..b"},
        {"jwks_uri": "file:///etc/passwd"},
        {"jwks_uri": None},
        {"discovery_url": "https://id.example.test/.well-known/openid-configuration"},
        {"max_token_bytes": 0},
        {"jwks_ttl": 0},
        {"jwks_min_refetch_interval": 1000},
        {"audiences": "api://a"},
    ],
)
def test_insecure_settings_refused(override: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        IssuerSettings(**{**BASE, **override})


def test_defaults_are_secure() -> None:
    settings = IssuerSettings(**BASE)
    assert settings.required_claims == ("exp",)
    assert settings.normalized_token_types == {"at+jwt", "jwt"}
    assert settings.max_token_bytes == 8192


def test_duplicate_issuer_and_empty_list_refused() -> None:
    with pytest.raises(ConfigError):
        JWTVerifier([IssuerSettings(**BASE), IssuerSettings(**BASE)])
    with pytest.raises(ConfigError):
        JWTVerifier([])


async def test_verify_before_start_fails_closed() -> None:
    verifier = JWTVerifier([IssuerSettings(**BASE)])
    assert not verifier.ready()
    with pytest.raises(InvalidToken) as info:
        await verifier.verify("a.b.c")
    assert info.value.reason == "jwt.keys_unavailable"
    await verifier.close()


def test_public_api() -> None:
    assert sorted(bastion.tokens.__all__) == [
        "FetchError",
        "Fetcher",
        "HTTPFetcher",
        "IssuerSettings",
        "JWTVerifier",
        "SUPPORTED_ALGORITHMS",
        "VerifiedToken",
    ]
    assert "none" not in bastion.tokens.SUPPORTED_ALGORITHMS


def test_lists_from_config_become_tuples() -> None:
    settings = IssuerSettings(**{**BASE, "audiences": ["api://a"], "algorithms": ["ES256"]})
    assert settings.audiences == ("api://a",)
    assert settings.algorithms == ("ES256",)
    assert hash(settings)
