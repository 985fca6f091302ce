"""Claim checks of RFC 7519 §4.1 / RFC 9068 §2.2 and role/scope extraction.

All time claims must be JSON numbers (RFC 7519 §2 "NumericDate"): a string, null or
boolean ``exp`` is refused rather than coerced. ``exp`` is always required
(RFC 8725 §3.10 asks for lifetime limits; RFC 9068 §2.2 makes it REQUIRED).
``aud`` must intersect the issuer's audiences (RFC 8725 §3.9, RFC 7519 §4.1.3);
a token without ``aud`` is refused. ``sub`` must be a non-empty string.
Role and scope values follow :mod:`bastion.tokens.labels` (no list separators, so they
cannot smuggle extra entries into the ``X-Bastion-Roles`` / ``X-Bastion-Scopes`` headers);
a token carrying any other value is refused, not filtered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from bastion.errors import InvalidToken

from .config import IssuerSettings
from .labels import is_valid_role, is_valid_scope, split_scope

__all__ = ["TimeClaims", "check_claims", "extract_roles", "extract_scopes"]

TimeClaims = tuple[float, float | None]


def _fail(reason: str) -> InvalidToken:
    return InvalidToken(reason=f"jwt.{reason}")


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"{name}_type")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        raise _fail(f"{name}_type") from None
    if not math.isfinite(number):
        raise _fail(f"{name}_type")
    return number


def check_claims(claims: Mapping[str, Any], settings: IssuerSettings, now: float) -> TimeClaims:
    """Validate exp/nbf/iat, aud, required claims, sub and jti. Returns (exp, iat)."""
    leeway = settings.leeway
    if "exp" not in claims:
        raise _fail("exp_missing")
    exp = _number(claims, "exp")
    assert exp is not None
    nbf = _number(claims, "nbf")
    iat = _number(claims, "iat")
    if not exp > now - leeway:
        raise _fail("expired")
    if nbf is not None and nbf > now + leeway:
        raise _fail("not_yet_valid")
    if iat is not None and iat > now + leeway:
        raise _fail("iat_future")

    if "aud" not in claims:
        raise _fail("aud_missing")
    aud = claims["aud"]
    if isinstance(aud, str):
        audiences: list[Any] = [aud]
    elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        audiences = aud
    else:
        raise _fail("aud_type")
    if not any(a in settings.audiences for a in audiences):
        raise _fail("aud")

    for name in settings.required_claims:
        if name not in claims:
            raise _fail("missing_claim")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise _fail("sub")
    jti = claims.get("jti")
    if jti is not None and (not isinstance(jti, str) or not jti):
        raise _fail("jti")
    return exp, iat


def _lookup(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def extract_roles(claims: Mapping[str, Any], path: str) -> frozenset[str]:
    """Roles at a dotted path: a list of strings, or one string naming one role.

    A missing claim means no roles; any other shape is refused (fail closed) rather
    than guessed, and so is a role holding ``,``, whitespace or a control character.
    """
    return _labels(claims, path, _one_role, is_valid_role, "roles_claim")


def _one_role(value: str) -> list[str]:
    return [value] if value else []


def extract_scopes(claims: Mapping[str, Any], path: str) -> frozenset[str]:
    """Scopes: a space-delimited string (RFC 8693 §4.2 ``scope``) or a list (``scp``).

    The string is split on the space character only (RFC 6749 §3.3); every scope must be
    an RFC 6749 ``scope-token`` (printable ASCII except space, ``"`` and ``\\``), else the
    token is refused.
    """
    return _labels(claims, path, split_scope, is_valid_scope, "scopes_claim")


def _labels(
    claims: Mapping[str, Any],
    path: str,
    split: Callable[[str], list[str]],
    valid: Callable[[str], bool],
    reason: str,
) -> frozenset[str]:
    """A claim of labels: a string (``split``) or a list of strings, empty ones dropped;
    absent means none, any other shape or an invalid label refuses the token."""
    value = _lookup(claims, path)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        values = split(value)
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        values = [v for v in value if v]
    else:
        raise _fail(reason)
    if not all(map(valid, values)):
        raise _fail(reason)
    return frozenset(values)
