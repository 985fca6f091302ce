"""A :class:`~bastion.types.RequestContext` for calling a policy or the audit directly."""

from __future__ import annotations

from collections.abc import Iterable

from bastion.types import Headers, RequestContext


def request_context(
    *,
    method: str = "GET",
    path: str = "/",
    query: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    client_ip: str = "198.51.100.7",
    peer_ip: str | None = None,
    scheme: str = "http",
    client_cert: str | None = None,
    body: bytes | None = None,
) -> RequestContext:
    """A request as the gateway builds it before routing (``peer_ip`` defaults to the
    client's: no proxy in between)."""
    ctx = RequestContext(
        request_id="r" * 16,
        method=method,
        path=path,
        query_string=query,
        headers=Headers((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers),
        client_ip=client_ip,
        peer_ip=client_ip if peer_ip is None else peer_ip,
        scheme=scheme,
        started=0.0,
        started_wall=0.0,
        client_cert=client_cert,
    )
    ctx.body = body
    return ctx
