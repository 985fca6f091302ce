"""Security headers on every response, including Bastion's own errors.

Defaults follow the OWASP Secure Headers Project's guidance for APIs: no sniffing, no
framing, no referrer, a CSP that forbids everything (an API response is never a page), HSTS
when serving TLS, and ``Cache-Control: no-store`` on authenticated responses so that no
shared cache keeps one caller's data for another.
"""

from __future__ import annotations

from bastion.config.models import SecurityHeadersConfig

__all__ = ["SecurityHeaders"]


class SecurityHeaders:
    """Precomputed header set; applying it is a list concatenation per response."""

    def __init__(self, config: SecurityHeadersConfig, *, hsts_max_age: int | None) -> None:
        base = [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", config.frame_options),
            ("referrer-policy", config.referrer_policy),
            ("content-security-policy", config.content_security_policy),
            ("cross-origin-resource-policy", "same-origin"),
            # Replaces the ASGI server's own banner (granian always sends one otherwise).
            ("server", "gateway"),
        ]
        if hsts_max_age:
            base.append(("strict-transport-security", f"max-age={hsts_max_age}; includeSubDomains"))
        base.extend((k.lower(), v) for k, v in config.extra.items())
        self._names = frozenset(name for name, _ in base)
        self._encoded = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in base]
        self._encoded_auth = [*self._encoded, (b"cache-control", b"no-store")]
        self._names_auth = self._names | {"cache-control", "pragma"}

    def encode(
        self, headers: list[tuple[str, str]], *, authenticated: bool, replace_length: bool
    ) -> list[tuple[bytes, bytes]]:
        """``headers`` encoded for ASGI minus the ones we set, then ours (pre-encoded).

        An upstream's weaker values (framing, caching of authenticated answers) are replaced.
        """
        names = self._names_auth if authenticated else self._names
        out = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in headers
            if k not in names and not (replace_length and k == "content-length")
        ]
        out.extend(self._encoded_auth if authenticated else self._encoded)
        return out
