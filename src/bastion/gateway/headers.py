"""Header rewriting between client and upstream (RFC 9110 §7.6.1, RFC 7239).

Hop-by-hop headers never cross the gateway in either direction: ``Connection`` and every
header it names, ``Keep-Alive``, ``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``,
``Proxy-*``. Forwarding headers from an untrusted peer are dropped and rewritten, so a
client cannot spoof its address. ``X-Bastion-*`` headers are the gateway's own channel to
the upstream (the authenticated subject and roles): any the client sends are dropped, and
so are RFC 9440 ``Client-Cert`` / ``Client-Cert-Chain`` (the gateway consumes them).
"""

from __future__ import annotations

import re

from bastion.types import Headers

__all__ = [
    "ADMIN_SESSION_COOKIE",
    "HOP_BY_HOP",
    "RESPONSE_HEADERS_REMOVED",
    "request_headers_for_upstream",
    "response_headers_for_client",
]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
_FORWARDING = frozenset(
    {
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "forwarded",
        "x-real-ip",
    }
)
#: RFC 9440 client-certificate fields: only a trusted proxy may send them, and only the
#: gateway consumes them (the verified identity goes upstream as X-Bastion-*).
_CLIENT_CERT = frozenset({"client-cert", "client-cert-chain"})
#: Method overrides: frameworks that honour them (Express method-override, Symfony, ASP.NET
#: Core's UseHttpMethodOverride) would run another method's handler than the one the
#: gateway authorized (a POST allowed for customers becoming an admin-only DELETE).
_METHOD_OVERRIDES = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})
#: Client headers never copied upstream: hop-by-hop, ours to write, or re-framed by us.
_SKIP_TO_UPSTREAM = (
    HOP_BY_HOP
    | _FORWARDING
    | _CLIENT_CERT
    | _METHOD_OVERRIDES
    | {"host", "x-request-id", "content-length"}
)
_TOKEN_HOST = re.compile(r"[A-Za-z0-9.\-:\[\]]+\Z")
RESPONSE_HEADERS_REMOVED = frozenset(
    {"server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version", "x-runtime", "via"}
)


def _connection_listed(headers: Headers) -> set[str]:
    listed: set[str] = set()
    for value in headers.get_all("connection"):
        listed.update(token.strip().lower() for token in value.split(",") if token.strip())
    return listed


#: The admin dashboard's session cookie (``observability.dashboard.SESSION_COOKIE``): a
#: browser signed in to the dashboard sends it to every port of the host, the gateway's
#: included, and an upstream that received it could use the dashboard.
ADMIN_SESSION_COOKIE = "bastion_session"


def _without_admin_session(value: str) -> str:
    """A ``Cookie`` header value without the admin session cookie."""
    kept = [
        part
        for part in (p.strip() for p in value.split(";"))
        if part and part.partition("=")[0].strip() != ADMIN_SESSION_COOKIE
    ]
    return "; ".join(kept)


def request_headers_for_upstream(
    headers: Headers,
    *,
    client_ip: str,
    peer_trusted: bool,
    scheme: str,
    host: str | None,
    request_id: str,
    drop: set[str] | frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """The headers sent upstream, with forwarding headers written by us.

    ``drop`` names client headers a policy withholds (e.g. the API key it consumed). The
    admin dashboard's session cookie is never forwarded (:data:`ADMIN_SESSION_COOKIE`).
    """
    skip = _SKIP_TO_UPSTREAM
    if drop or "connection" in headers:
        skip = skip | _connection_listed(headers) | drop
    out: list[tuple[str, str]] = []
    prior_xff: list[str] = []
    for name, value in headers.pairs:
        if name in skip:
            if peer_trusted and name == "x-forwarded-for":
                prior_xff.append(value)
            continue
        if name.startswith(("proxy-", "x-bastion-")) or "_" in name:
            # An underscore is a hyphen to every upstream that reads headers CGI-style
            # (HTTP_X_BASTION_ROLES: Django, WSGI bridges, PHP-FPM): X_Bastion_Roles would
            # pass for X-Bastion-Roles, X_Forwarded_For for X-Forwarded-For, X_Account
            # beside a checked X-Account. Dropped, as nginx does by default.
            continue
        if name == "cookie" and ADMIN_SESSION_COOKIE in value:
            value = _without_admin_session(value)
            if not value:
                continue
        out.append((name, value))
    xff = ", ".join([*prior_xff, client_ip]) if prior_xff else client_ip
    node = f'"[{client_ip}]"' if ":" in client_ip else client_ip
    forwarded = f"for={node};proto={scheme}"
    out.append(("x-forwarded-for", xff))
    out.append(("x-forwarded-proto", scheme))
    if host:
        out.append(("x-forwarded-host", host))
        forwarded += f";host={host}" if _TOKEN_HOST.match(host) else f';host="{host}"'
    out.append(("forwarded", forwarded))
    out.append(("x-request-id", request_id))
    return out


def response_headers_for_client(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Upstream response headers minus hop-by-hop, fingerprinting and CORS headers."""
    listed: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            listed.update(t.strip().lower() for t in value.split(","))
    out = []
    for name, value in headers:
        lname = name.lower()
        if (
            lname in HOP_BY_HOP
            or lname in listed
            or lname in RESPONSE_HEADERS_REMOVED
            or lname.startswith(("proxy-", "access-control-"))
            or lname == "content-length"
            or lname == "x-request-id"
        ):
            continue
        out.append((lname, value))
    return out
