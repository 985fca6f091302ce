"""Per-issuer settings of the JWT verifier, validated once at construction.

Every field is checked in ``__post_init__``: an insecure or inconsistent issuer raises
:class:`bastion.errors.ConfigError` at startup, never a surprise per request.

- ``alg: none`` in any casing is refused (RFC 8725 §3.1, §2.1).
- HMAC and public-key algorithms may not be mixed for one issuer (RFC 8725 §3.1,
  "each key MUST be used with exactly one algorithm"): it removes, by configuration,
  the RS256 -> HS256 key-confusion attack before the key-type check even runs.
- ``token_types`` are normalised per RFC 7515 §4.1.9 (case-insensitive, an
  ``application/`` prefix is optional) so ``application/at+jwt`` equals ``at+jwt``
  (RFC 9068 §2.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlsplit

from bastion.errors import ConfigError

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "HMAC_ALGORITHMS",
    "SUPPORTED_ALGORITHMS",
    "IssuerSettings",
    "normalize_typ",
]

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
        "Ed25519",
        "Ed448",
    }
)
#: Every ``alg`` value an issuer may allow (RFC 7518 §3.1, RFC 8037, RFC 9864).
SUPPORTED_ALGORITHMS = HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS

_MAX_LEEWAY = 60.0


def normalize_typ(value: str) -> str:
    """Canonical form of a ``typ`` media type (RFC 7515 §4.1.9, RFC 9068 §2.1)."""
    lowered = value.strip().lower()
    if lowered.startswith("application/") and lowered.count("/") == 1:
        return lowered[len("application/") :]
    return lowered


def _check_url(name: str, url: str | None, issuer: str) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL", location=f"issuer {issuer!r}")


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    """One trusted token issuer and how its tokens are checked."""

    issuer: str
    audiences: tuple[str, ...]
    #: Allow-list of ``alg`` values, compared case-sensitively (RFC 8725 §3.1).
    algorithms: tuple[str, ...]
    #: ``typ`` allow-list (RFC 8725 §3.11, RFC 9068 §2.1), compared case-insensitively.
    token_types: tuple[str, ...] = ("at+jwt", "JWT")
    #: Clock skew tolerated for exp / nbf / iat, seconds (0..60).
    leeway: float = 30.0
    #: Claims that must be present; ``exp`` is always required.
    required_claims: tuple[str, ...] = ("exp",)
    #: Dotted path to the roles list, e.g. ``realm_access.roles``.
    roles_claim: str = "roles"
    #: Claim holding scopes: a space-delimited string (``scope``) or a list (``scp``).
    scopes_claim: str = "scope"
    jwks_uri: str | None = None
    #: OpenID Connect discovery / RFC 8414 metadata URL; ``jwks_uri`` is read from it.
    discovery_url: str | None = None
    #: Files: PEM SPKI public key, a JWK or a JWKS (HMAC only as a JWK ``kty: oct``).
    static_keys: tuple[str, ...] = ()
    max_token_bytes: int = 8192
    #: Keys older than this are refetched; removed keys stop working after it.
    jwks_ttl: float = 300.0
    #: An unknown ``kid`` triggers at most one refetch per interval (single-flight).
    jwks_min_refetch_interval: float = 30.0

    def __post_init__(self) -> None:
        where = f"issuer {self.issuer!r}"
        for name in ("audiences", "algorithms", "token_types", "required_claims", "static_keys"):
            value = getattr(self, name)
            if isinstance(value, str | bytes):
                raise ConfigError(f"{name} must be a list, not a single string", location=where)
            object.__setattr__(self, name, tuple(value))  # lists from config become tuples
        if not isinstance(self.issuer, str) or not self.issuer:
            raise ConfigError("issuer must be a non-empty string")
        if not self.audiences or not all(isinstance(a, str) and a for a in self.audiences):
            raise ConfigError("audiences must be a non-empty list of strings", location=where)
        if not self.algorithms:
            raise ConfigError("algorithms must not be empty", location=where)
        for alg in self.algorithms:
            if not isinstance(alg, str) or alg.lower() == "none":
                raise ConfigError('alg "none" is never allowed (RFC 8725 §3.1)', location=where)
            if alg not in SUPPORTED_ALGORITHMS:
                raise ConfigError(
                    f"unsupported algorithm {alg!r}; use one of {sorted(SUPPORTED_ALGORITHMS)}",
                    location=where,
                )
        algs = set(self.algorithms)
        if algs & HMAC_ALGORITHMS and algs & ASYMMETRIC_ALGORITHMS:
            raise ConfigError(
                "HMAC and public-key algorithms must not be allowed for the same issuer "
                "(RFC 8725 §3.1: key confusion)",
                location=where,
            )
        if not self.token_types or not all(
            isinstance(t, str) and normalize_typ(t) for t in self.token_types
        ):
            raise ConfigError("token_types must be a non-empty list of media types", location=where)
        if isinstance(self.leeway, bool) or not (
            isinstance(self.leeway, int | float) and 0.0 <= self.leeway <= _MAX_LEEWAY
        ):
            raise ConfigError(f"leeway must be between 0 and {_MAX_LEEWAY:g} s", location=where)
        if not all(isinstance(c, str) and c for c in self.required_claims):
            raise ConfigError("required_claims must be claim names", location=where)
        for name, path in (("roles_claim", self.roles_claim), ("scopes_claim", self.scopes_claim)):
            if not path or any(not part for part in path.split(".")):
                raise ConfigError(f"{name} must be a (dotted) claim name", location=where)
        _check_url("jwks_uri", self.jwks_uri, self.issuer)
        _check_url("discovery_url", self.discovery_url, self.issuer)
        if self.jwks_uri and self.discovery_url:
            raise ConfigError("set either jwks_uri or discovery_url, not both", location=where)
        if not (self.jwks_uri or self.discovery_url or self.static_keys):
            raise ConfigError(
                "no key source: set jwks_uri, discovery_url or static_keys", location=where
            )
        if algs & HMAC_ALGORITHMS and (self.jwks_uri or self.discovery_url):
            raise ConfigError(
                "HMAC secrets are only accepted from static JWK files, not a remote JWKS",
                location=where,
            )
        if not 0 < self.max_token_bytes <= 1024 * 1024:
            raise ConfigError("max_token_bytes must be between 1 and 1 MiB", location=where)
        if not (math.isfinite(self.jwks_ttl) and self.jwks_ttl > 0):
            raise ConfigError("jwks_ttl must be a positive number of seconds", location=where)
        if not (
            math.isfinite(self.jwks_min_refetch_interval)
            and 0 <= self.jwks_min_refetch_interval <= self.jwks_ttl
        ):
            raise ConfigError(
                "jwks_min_refetch_interval must be between 0 and jwks_ttl", location=where
            )

    @property
    def normalized_token_types(self) -> frozenset[str]:
        """The ``typ`` allow-list in canonical form."""
        return frozenset(normalize_typ(t) for t in self.token_types)

    @property
    def remote(self) -> bool:
        """True when keys come from a JWKS endpoint (directly or via discovery)."""
        return bool(self.jwks_uri or self.discovery_url)
