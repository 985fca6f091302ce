"""The ASGI ``tls`` extension for uvicorn: the verified client certificate reaches the app.

uvicorn verifies client certificates (``ssl_ca_certs``, ``ssl_cert_reqs``) but does not
tell the application about them. :func:`tls_protocol_class` returns uvicorn's own HTTP
protocol (httptools when installed, else h11: what ``http="auto"`` picks) with one change:
on a TLS connection it puts the ASGI TLS extension into each request's scope::

    scope["extensions"]["tls"] = {
        "client_cert_chain": [PEM of the peer certificate] or [],
        "client_cert_name": RFC 4514 subject or None,
        "client_cert_error": None,
        "tls_version": 0x0303 | 0x0304,
        "cipher_suite": IANA cipher id,
        "server_cert": None,
    }

The certificate is read once per connection (``ssl_object.getpeercert(binary_form=True)``);
the server only hands it over after the handshake verified it. Python's ``ssl`` exposes the
peer's leaf certificate only, so the chain holds one entry. The extension is set by the
server, never from anything the client sends. :func:`peer_certificate` reads it back for
the gateway's request context.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from cryptography import x509

from bastion.types import Receive, Scope, Send

__all__ = ["peer_certificate", "tls_extension", "tls_protocol_class"]

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def peer_certificate(scope: Scope) -> str | None:
    """PEM of the client certificate in the scope's ASGI ``tls`` extension, if any."""
    extensions = scope.get("extensions")
    if not extensions:
        return None
    tls = extensions.get("tls")
    chain = tls.get("client_cert_chain") if tls else None
    return str(chain[0]) if chain else None


def tls_extension(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> dict[str, Any]:
    """The ASGI TLS extension for one established connection."""
    der = ssl_object.getpeercert(binary_form=True)
    name = None
    if der:
        try:
            name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        except ValueError:
            name = None
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": _cipher_id(ssl_object.context, cipher[0]) if cipher else None,
    }


_cipher_ids: dict[str, int] = {}


def _cipher_id(context: ssl.SSLContext, name: str) -> int | None:
    if name not in _cipher_ids:
        for cipher in context.get_ciphers():
            _cipher_ids[cipher["name"]] = cipher["id"] & 0xFFFF
    return _cipher_ids.get(name)


def tls_protocol_class() -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class, adding the ASGI ``tls`` extension on TLS connections."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    base: Any = H11Protocol  # as without TLS: the header size cap applies to h11 only

    class TLSScopeProtocol(base):  # type: ignore[misc]
        """Wraps the app once per TLS connection so every scope carries the extension."""

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is None:
                return
            tls = tls_extension(ssl_object)
            app: Any = getattr(self, "app")  # noqa: B009 (set by uvicorn's __init__)

            async def with_tls(scope: Scope, receive: Receive, send: Send) -> None:
                scope["extensions"] = {**(scope.get("extensions") or {}), "tls": tls}
                await app(scope, receive, send)

            self.app = with_tls

    return TLSScopeProtocol
