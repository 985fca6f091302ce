"""Fetching key material over HTTP: the injectable ``Fetcher`` and its aiohttp default.

A fetcher is ``async (url) -> body``; it raises on anything but a 200. The default
client has connect and total timeouts, never follows redirects (a redirect could
downgrade https to http or point at another host) and caps the body size, so a
hostile or broken JWKS endpoint can neither stall nor exhaust the gateway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

__all__ = ["FetchError", "Fetcher", "HTTPFetcher"]

#: ``GET url -> body``; raises on non-200, timeouts and oversized bodies.
Fetcher = Callable[[str], Awaitable[bytes]]


class FetchError(Exception):
    """Key material could not be fetched; the message is safe to log."""


class HTTPFetcher:
    """The default :data:`Fetcher`, on one pooled aiohttp session."""

    def __init__(
        self,
        *,
        max_bytes: int = 64 * 1024,
        connect_timeout: float = 2.0,
        total_timeout: float = 5.0,
    ) -> None:
        self._max_bytes = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str) -> bytes:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"Accept": "application/json"}
            )
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise FetchError(f"GET {url} answered {response.status}")
                if (response.content_length or 0) > self._max_bytes:
                    raise FetchError(f"GET {url} body exceeds {self._max_bytes} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_any():
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise FetchError(f"GET {url} body exceeds {self._max_bytes} bytes")
                    chunks.append(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FetchError(f"GET {url} failed: {type(exc).__name__}") from None
        return b"".join(chunks)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
