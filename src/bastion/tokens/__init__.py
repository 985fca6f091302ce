"""JWT access-token verification for Bastion (RFC 7519, RFC 8725, RFC 9068).

A pure library: the gateway's authentication policy builds one :class:`JWTVerifier`
from its issuers, calls ``await start()`` at startup, ``await verify(token)`` per
request and ``await close()`` at shutdown. See docs/tokens.md.
"""

from __future__ import annotations

from .config import SUPPORTED_ALGORITHMS, IssuerSettings
from .fetch import Fetcher, FetchError, HTTPFetcher
from .verify import JWTVerifier, VerifiedToken

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "FetchError",
    "Fetcher",
    "HTTPFetcher",
    "IssuerSettings",
    "JWTVerifier",
    "VerifiedToken",
]
