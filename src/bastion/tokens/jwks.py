"""Remote JWK Set cache for one issuer (RFC 7517 §5, RFC 8414 §2 ``jwks_uri``).

Behaviour (RFC 8725 §3.10 asks not to follow keys named by the token; we only ever
fetch the configured URL):

- **TTL.** Keys older than ``jwks_ttl`` are refetched: by the background task a little
  before expiry, or on demand by ``verify``. A key removed from the set therefore stops
  working once the TTL passed and a refetch happened.
- **Unknown kid.** Triggers at most one refetch per ``jwks_min_refetch_interval``;
  concurrent lookups join the one in-flight fetch (single-flight), so a flood of forged
  ``kid`` values costs the issuer at most one request per interval.
- **Fail closed.** Until the first successful fetch every token is refused
  (``jwt.keys_unavailable``). A failed refresh keeps the last good keys for
  ``jwks_ttl * STALE_GRACE_FACTOR`` after they were fetched, then refuses.
- **Caps.** The document is limited to 64 KiB and 64 keys, parsed with strict JSON.
- **Discovery.** With ``discovery_url`` the metadata is fetched first; its ``issuer``
  must equal the configured issuer (RFC 8414 §3.3, OIDC Discovery §4.3) and its
  ``jwks_uri`` must be an http(s) URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from bastion.jsonutil import JSONError, loads_strict

from .config import IssuerSettings
from .fetch import Fetcher
from .keys import MAX_JWKS_BYTES, KeyLoadError, KeyStore, parse_jwks

__all__ = ["STALE_GRACE_FACTOR", "RemoteKeys"]

#: After a failed refresh, the last good keys are served until ``ttl * this`` old.
STALE_GRACE_FACTOR = 2.0
#: The background task refreshes when keys reach this fraction of the TTL.
_REFRESH_AHEAD = 0.8
_MIN_SLEEP = 1.0

_log = logging.getLogger("bastion.tokens.jwks")


class RemoteKeys:
    """Keys of one issuer fetched from its JWKS endpoint."""

    def __init__(
        self,
        settings: IssuerSettings,
        fetcher: Fetcher,
        clock: Callable[[], float],
        on_keys_removed: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._fetcher = fetcher
        self._clock = clock
        self._on_keys_removed = on_keys_removed
        self._jwks_uri = settings.jwks_uri
        self._store: KeyStore | None = None
        self._fetched_at = -math.inf
        self._last_attempt = -math.inf
        self._inflight: asyncio.Task[bool] | None = None
        self._ttl = settings.jwks_ttl
        self._max_age = settings.jwks_ttl * STALE_GRACE_FACTOR
        #: Number of fetch attempts (diagnostics and tests).
        self.fetch_attempts = 0
        #: The background loop's sleep; replaceable so tests drive it without waiting.
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @property
    def ever_fetched(self) -> bool:
        return self._store is not None

    def current(self, now: float) -> KeyStore | None:
        """The keys, or None when never fetched or too old to trust (fail closed)."""
        if now - self._fetched_at > self._max_age:
            return None
        return self._store

    def usable(self, now: float) -> bool:
        return self._store is not None and now - self._fetched_at <= self._max_age

    def stale(self, now: float) -> bool:
        """True when the keys are past their TTL (or were never fetched)."""
        return now - self._fetched_at >= self._ttl

    async def refresh(self) -> bool:
        """Fetch now, or join the fetch already in flight. True when keys were updated."""
        task = self._inflight
        if task is None:
            self._last_attempt = self._clock()
            task = asyncio.get_running_loop().create_task(self._fetch())
            self._inflight = task
        return await asyncio.shield(task)

    async def refresh_if_allowed(self, now: float) -> bool:
        """On-demand refetch (unknown kid, expired TTL), rate-limited and single-flight."""
        if self._inflight is None and now - self._last_attempt < (
            self.settings.jwks_min_refetch_interval
        ):
            return False
        return await self.refresh()

    async def _fetch(self) -> bool:
        self.fetch_attempts += 1
        try:
            try:
                uri = self._jwks_uri or await self._discover()
                body = await self._fetcher(uri)
                if len(body) > MAX_JWKS_BYTES:
                    raise KeyLoadError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
                keys, skipped = parse_jwks(body)
                store = KeyStore(keys, self.settings.algorithms)
            except Exception as exc:  # any fetcher or parse failure: keep the last good keys
                if self.settings.discovery_url:
                    self._jwks_uri = None  # resolve the metadata again next time
                _log.warning(
                    "jwks refresh failed",
                    extra={"issuer": self.settings.issuer, "error": _describe(exc)},
                )
                return False
            if skipped:
                _log.info(
                    "jwks keys skipped",
                    extra={"issuer": self.settings.issuer, "skipped": skipped},
                )
            previous = self._store
            self._store = store
            self._fetched_at = self._clock()
            removed = previous is not None and not previous.thumbprints <= store.thumbprints
            if removed and self._on_keys_removed is not None:
                self._on_keys_removed()
            return True
        finally:
            self._inflight = None

    async def _discover(self) -> str:
        url = self.settings.discovery_url
        assert url is not None
        body = await self._fetcher(url)
        if len(body) > MAX_JWKS_BYTES:
            raise KeyLoadError("metadata document too large")
        try:
            metadata = loads_strict(body)
        except JSONError as exc:
            raise KeyLoadError(f"metadata is not strict JSON: {exc}") from None
        if not isinstance(metadata, dict):
            raise KeyLoadError("metadata is not a JSON object")
        if metadata.get("issuer") != self.settings.issuer:
            raise KeyLoadError("metadata issuer does not match the configured issuer")
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in ("http", "https"):
            raise KeyLoadError("metadata has no http(s) jwks_uri")
        if urlsplit(url).scheme == "https" and urlsplit(jwks_uri).scheme != "https":
            # Metadata fetched over TLS must not send the keys over plain HTTP.
            raise KeyLoadError("metadata fetched over https names a plain-http jwks_uri")
        self._jwks_uri = jwks_uri
        return jwks_uri

    async def close(self) -> None:
        """Cancel a fetch still in flight."""
        task = self._inflight
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _next_delay(self) -> float:
        now = self._clock()
        if self._store is not None and self._fetched_at >= self._last_attempt:
            due = self._fetched_at + self._ttl * _REFRESH_AHEAD
        else:
            due = self._last_attempt + max(_MIN_SLEEP, self.settings.jwks_min_refetch_interval)
        return min(max(due - now, _MIN_SLEEP), max(self._ttl, _MIN_SLEEP))

    async def run(self) -> None:
        """Background refresh loop; cancelled by the verifier's ``close``."""
        while True:
            await self.sleep(self._next_delay())
            with contextlib.suppress(Exception):
                await self.refresh()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
