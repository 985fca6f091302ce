"""The upstream transport: a one-method interface and its pooled aiohttp implementation.

Foreign exceptions are translated at this boundary, in one context manager::

    aiohttp / asyncio / OSError
    ├── connect timeout, read timeout, total timeout  -> GatewayTimeout (504)
    ├── refused, reset, DNS failure, bad response       -> BadGateway (502)
    └── request body over the cap while streaming       -> PayloadTooLarge (413), re-raised

Nothing else escapes ``send``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from yarl import URL

from bastion.errors import BadGateway, BastionError, GatewayTimeout

__all__ = [
    "CONTENT_UNDEFINED",
    "SMALL_BODY",
    "AiohttpTransport",
    "Transport",
    "UpstreamReply",
    "UpstreamRequest",
    "UpstreamRuntime",
    "UpstreamTimeouts",
    "map_upstream_errors",
]


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    connect: float = 5.0
    read: float = 30.0
    total: float = 60.0


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes | AsyncIterable[bytes] | None
    timeouts: UpstreamTimeouts


@dataclass(slots=True)
class UpstreamReply:
    """Status and headers received; ``chunks`` yields the body and then releases."""

    status: int
    headers: list[tuple[str, str]]
    #: The body, chunk by chunk (None when ``body`` holds all of it).
    chunks: AsyncIterator[bytes] | None
    #: The whole body, when it was small and declared (read in one go, connection released).
    body: bytes | None = None

    async def read(self, limit: int) -> bytes:
        """The whole body, refusing (502) more than ``limit`` bytes."""
        if self.body is not None:
            if len(self.body) > limit:
                raise BadGateway(reason="upstream.response_too_large")
            return self.body
        assert self.chunks is not None
        parts: list[bytes] = []
        size = 0
        with map_upstream_errors():
            async for chunk in self.chunks:
                size += len(chunk)
                if size > limit:
                    raise BadGateway(reason="upstream.response_too_large")
                parts.append(chunk)
        return b"".join(parts)


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamReply: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class UpstreamRuntime:
    name: str
    base_url: str
    host_header: str
    timeouts: UpstreamTimeouts
    headers: tuple[tuple[str, str], ...]
    health_path: str | None
    transport: Transport


@contextmanager
def map_upstream_errors() -> Iterator[None]:
    """Translate transport exceptions into 502/504 problems. The one place that does."""
    try:
        yield
    except BastionError:
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError, aiohttp.ConnectionTimeoutError) as exc:
        raise GatewayTimeout(reason=f"upstream.timeout.{_timeout_kind(exc)}") from None
    except aiohttp.ClientConnectorError:
        raise BadGateway(reason="upstream.connect_failed") from None
    except aiohttp.ClientPayloadError:
        raise BadGateway(reason="upstream.bad_payload") from None
    except aiohttp.ServerDisconnectedError:
        raise BadGateway(reason="upstream.disconnected") from None
    except aiohttp.ClientResponseError:
        raise BadGateway(reason="upstream.bad_response") from None
    except (aiohttp.ClientError, OSError):
        raise BadGateway(reason="upstream.error") from None


def _timeout_kind(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return "read"
    return "total"


#: Bodies with a declared length up to this are moved whole rather than streamed: responses
#: in one read (no generator), requests as bytes (keeps upstream connections pooled).
SMALL_BODY = 65_536
#: Methods whose request content has no defined meaning (RFC 9110 §9.3): some servers
#: ignore the body and read it as the next request ("CL.0"), so a connection that carried
#: one is closed after its answer, never reused (the h1 transport; aiohttp's pool gives
#: no hold on that).
CONTENT_UNDEFINED = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})


class AiohttpTransport:
    """Pooled HTTP/1.1 client. One session per process, created lazily in the loop.

    ``timeouts`` become the session's default, so no timeout object is built per request.
    """

    def __init__(
        self, *, max_connections: int = 256, timeouts: UpstreamTimeouts | None = None
    ) -> None:
        self._max_connections = max_connections
        self._timeouts = timeouts or UpstreamTimeouts()
        self._default = aiohttp.ClientTimeout(
            total=self._timeouts.total,
            sock_connect=self._timeouts.connect,
            sock_read=self._timeouts.read,
        )
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                ttl_dns_cache=60,
                enable_cleanup_closed=True,
                force_close=False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
                timeout=self._default,
            )
        return self._session

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        timeouts = request.timeouts
        timeout = self._default
        if timeouts != self._timeouts:
            timeout = aiohttp.ClientTimeout(
                total=timeouts.total, sock_connect=timeouts.connect, sock_read=timeouts.read
            )
        session = self._get_session()
        with map_upstream_errors():
            response = await session.request(
                request.method,
                # Already percent-encoded by the gateway: sent exactly as matched.
                URL(request.url, encoded=True),
                headers=request.headers,
                data=request.body,
                allow_redirects=False,
                compress=None,
                chunked=None,
                timeout=timeout,
            )
            if not 200 <= response.status <= 599:
                # aiohttp reads any three digits (and skips no interim answer it does not
                # know); no server can send these on (granian panics on them).
                response.close()
                raise BadGateway(reason="upstream.bad_response")
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]
            length = response.content_length
            if length is not None and length <= SMALL_BODY and request.method != "HEAD":
                try:
                    body = await response.read()
                finally:
                    response.release()
                return UpstreamReply(response.status, headers, None, body)
        return UpstreamReply(response.status, headers, _iterate(response))

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


async def _iterate(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        with map_upstream_errors():
            async for chunk in response.content.iter_chunked(65_536):
                yield chunk
    finally:
        response.release()
