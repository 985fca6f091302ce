"""Redirect URI registration and matching (RFC 9700 §2.1, §4.1.3; RFC 8252 §7.3).

Matching is exact string comparison against a registered URI. The one exception is the
loopback interface for native apps: for ``http://127.0.0.1`` or ``http://[::1]`` any port
is accepted (RFC 8252 §7.3), by substituting the port into the registered string and
comparing exactly again. Fragments, userinfo, wildcards, backslashes, whitespace and
control characters are refused at registration and at request time.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["RedirectError", "check_registrable", "match_redirect_uri"]

_LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")
_FORBIDDEN = re.compile(r"[\s\\\x00-\x1f\x7f#*]")
_PRIVATE_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+$")


class RedirectError(ValueError):
    """The redirect URI is not acceptable (the message is safe to show)."""


def _host_of(netloc: str) -> str:
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1]
    return netloc.rsplit(":", 1)[0] if ":" in netloc else netloc


def check_registrable(uri: str) -> None:
    """Raise :class:`RedirectError` unless ``uri`` may be registered."""
    if len(uri) > 2000 or _FORBIDDEN.search(uri):
        raise RedirectError("redirect URI has forbidden characters or a fragment")
    parts = urlsplit(uri)
    if "@" in parts.netloc:
        raise RedirectError("redirect URI must not contain userinfo")
    if parts.scheme == "https" and parts.netloc:
        return
    if parts.scheme == "http" and _host_of(parts.netloc) in _LOOPBACK_HOSTS:
        return
    if _PRIVATE_SCHEME.match(parts.scheme) and not parts.netloc:
        return
    raise RedirectError("redirect URI must be https, http on a loopback IP, or a private scheme")


def _is_loopback(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and _host_of(parts.netloc) in _LOOPBACK_HOSTS


def match_redirect_uri(requested: str, registered: tuple[str, ...]) -> str:
    """Return the registered URI ``requested`` matches exactly; raise otherwise."""
    if not requested or len(requested) > 2000 or _FORBIDDEN.search(requested):
        raise RedirectError("redirect_uri is not registered for this client")
    if requested in registered:
        return requested
    try:
        parts = urlsplit(requested)
        port = parts.port
    except ValueError:
        raise RedirectError("redirect_uri is not registered for this client") from None
    if port is not None and _is_loopback(requested) and "@" not in parts.netloc:
        host = _host_of(parts.netloc)
        for candidate in registered:
            if not _is_loopback(candidate):
                continue
            cand = urlsplit(candidate)
            if _host_of(cand.netloc) != host:
                continue
            prefix = f"http://{cand.netloc}"
            rebuilt = f"http://{host}:{port}" + candidate[len(prefix) :]
            if rebuilt == requested:
                return candidate
    raise RedirectError("redirect_uri is not registered for this client")
