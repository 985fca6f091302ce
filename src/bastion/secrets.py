"""Weak-secret detection, shared by every config that holds a secret.

A secret is refused when it is a well-known default, too short for 256-bit strength, or
made of too few distinct characters. The list is deliberately of values seen in tutorials,
docker-compose files and leaked configs.
"""

from __future__ import annotations

import hmac

__all__ = ["WELL_KNOWN_SECRETS", "constant_time_equals", "weak_secret_reason"]

WELL_KNOWN_SECRETS = frozenset(
    {
        "secret",
        "changeme",
        "change-me",
        "changeit",
        "password",
        "passw0rd",
        "admin",
        "your-super-secret-key",
        "your-secret-key",
        "your_secret_key",
        "supersecret",
        "super-secret",
        "mysecret",
        "my-secret",
        "secretkey",
        "secret-key",
        "secret_key",
        "jwt-secret",
        "jwt_secret",
        "jwtsecret",
        "default",
        "test",
        "testing",
        "development",
        "dev",
        "key",
        "apikey",
        "api-key",
        "token",
        "12345678",
        "123456789",
        "1234567890",
        "qwerty",
        "letmein",
        "s3cr3t",
        "shhhhh",
        "keyboard cat",
        "notasecret",
        "your-256-bit-secret",
        "your-jwt-secret",
        "please-change-me",
        "insecure",
        "django-insecure",
        "example",
        "sample",
        "demo",
    }
)


def weak_secret_reason(value: str, *, min_bytes: int = 32) -> str | None:
    """Why ``value`` is unacceptable as a secret, or None when it is acceptable."""
    if value.strip().lower() in WELL_KNOWN_SECRETS:
        return "is a well-known default secret"
    size = len(value.encode("utf-8"))
    if size < min_bytes:
        return f"is {size} bytes; at least {min_bytes} bytes ({min_bytes * 8} bits) are required"
    if len(set(value)) < 8:
        return "has too few distinct characters to be random"
    return None


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets in time independent of where they differ (any text: a value a
    client sent may hold non-ASCII characters, which ``hmac.compare_digest`` refuses for
    ``str`` with a TypeError)."""
    left = a.encode("utf-8", "surrogatepass") if isinstance(a, str) else a
    right = b.encode("utf-8", "surrogatepass") if isinstance(b, str) else b
    return hmac.compare_digest(left, right)
