"""The JWT verifier the gateway's authentication policy calls (RFC 7519, RFC 8725, RFC 9068).

``verify`` runs the checks cheapest first and raises :class:`bastion.errors.InvalidToken`
with a precise ``reason`` (``jwt.<cause>``) for the audit log; the client only ever
sees the generic ``invalid_token`` answer. Nothing else escapes ``verify``.

Order: cache hit -> size cap -> compact structure -> header (strict JSON, alg allow-list,
typ, crit, jku/x5u/jwk) -> payload (strict JSON) -> issuer by ``iss`` -> per-issuer
alg/typ/size -> key by (kid, alg) -> signature -> claims. See docs/tokens.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from joserfc.jwk import Key

from bastion.errors import ConfigError, InvalidToken

from .cache import VerifiedTokenCache
from .claims import check_claims, extract_roles, extract_scopes
from .config import IssuerSettings
from .fetch import Fetcher, HTTPFetcher
from .jwks import RemoteKeys
from .jws import ParsedToken, parse_compact, verify_signature
from .keys import KeyLoadError, KeyStore, load_key_file

__all__ = ["Fetcher", "JWTVerifier", "VerifiedToken"]

_log = logging.getLogger("bastion.tokens")


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose signature and claims passed; immutable and shared by the cache."""

    claims: Mapping[str, Any]
    header: Mapping[str, Any]
    issuer: IssuerSettings
    subject: str
    roles: frozenset[str]
    scopes: frozenset[str]
    jti: str | None
    issued_at: float | None
    expires_at: float


def _fail(reason: str) -> InvalidToken:
    return InvalidToken(reason=f"jwt.{reason}")


class _Issuer:
    """Runtime state of one trusted issuer: settings, static keys, remote keys."""

    __slots__ = ("algorithms", "remote", "settings", "static", "types")

    def __init__(self, settings: IssuerSettings) -> None:
        self.settings = settings
        self.algorithms = frozenset(settings.algorithms)
        self.types = settings.normalized_token_types
        self.static: KeyStore | None = None
        self.remote: RemoteKeys | None = None


class JWTVerifier:
    """Verifies JWT access tokens of a fixed set of issuers."""

    def __init__(
        self,
        issuers: Sequence[IssuerSettings],
        *,
        fetcher: Fetcher | None = None,
        clock: Callable[[], float] = time.time,
        cache_size: int = 10_000,
        cache_ttl: float = 60.0,
    ) -> None:
        if not issuers:
            raise ConfigError("at least one JWT issuer is required")
        self._issuers: dict[str, _Issuer] = {}
        for settings in issuers:
            if settings.issuer in self._issuers:
                raise ConfigError(f"issuer {settings.issuer!r} is configured twice")
            self._issuers[settings.issuer] = _Issuer(settings)
        self._all_algs = frozenset(a for s in issuers for a in s.algorithms)
        self._all_types = frozenset(t for s in issuers for t in s.normalized_token_types)
        self._max_bytes = max(s.max_token_bytes for s in issuers)
        self._own_fetcher: HTTPFetcher | None = None
        if fetcher is None and any(s.remote for s in issuers):
            self._own_fetcher = HTTPFetcher()
            fetcher = self._own_fetcher
        self._fetcher = fetcher
        self._clock = clock
        self._cache = VerifiedTokenCache(cache_size, cache_ttl)
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Load static keys (``ConfigError`` on a bad file), fetch every JWKS once and
        start the background refresh. A failed first fetch does not raise: tokens are
        refused (fail closed) and ``ready()`` stays False until a fetch succeeds."""
        if self._started:
            return
        for issuer in self._issuers.values():
            settings = issuer.settings
            if settings.static_keys:
                keys: list[Key] = []
                for path in settings.static_keys:
                    try:
                        keys.extend(load_key_file(path))
                    except KeyLoadError as exc:
                        raise ConfigError(
                            str(exc), location=f"issuer {settings.issuer!r}: static key {path}"
                        ) from None
                issuer.static = KeyStore(keys, settings.algorithms)
            if settings.remote:
                assert self._fetcher is not None
                issuer.remote = RemoteKeys(
                    settings,
                    self._fetcher,
                    self._clock,
                    on_keys_removed=_dropper(self._cache, settings.issuer),
                )
        remotes = [i.remote for i in self._issuers.values() if i.remote is not None]
        await asyncio.gather(*(r.refresh() for r in remotes))
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(r.run()) for r in remotes]
        self._started = True

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for issuer in self._issuers.values():
            if issuer.remote is not None:
                await issuer.remote.close()
        if self._own_fetcher is not None:
            await self._own_fetcher.close()
        self._cache.clear()
        self._started = False

    def ready(self) -> bool:
        """True when started and every remote-key issuer has fetched keys at least once."""
        return self._started and all(
            i.remote.ever_fetched for i in self._issuers.values() if i.remote is not None
        )

    def invalidate(self, *, jti: str | None = None, subject: str | None = None) -> None:
        """Drop cached verifications by ``jti`` and/or ``sub`` (revocation, logout)."""
        self._cache.invalidate(jti=jti, subject=subject)

    # -- verification ----------------------------------------------------------------

    async def verify(self, token: str) -> VerifiedToken:
        """Verify a compact JWS access token. Raises only ``InvalidToken``."""
        try:
            if not isinstance(token, str):
                raise _fail("malformed")
            if len(token) > self._max_bytes:
                raise _fail("too_large")
            try:
                raw = token.encode("ascii")
            except UnicodeEncodeError:
                raise _fail("malformed") from None
            digest = hashlib.sha256(raw).digest()
            now = self._clock()
            hit = self._cache.get(digest, now)
            if hit is not None:
                return hit
            verified, usable = await self._verify_cold(token, now)
            self._cache.put(digest, verified, self._clock(), usable)
            return verified
        except InvalidToken:
            raise
        except Exception as exc:  # fail closed: anything unexpected is a refusal
            _log.error("jwt verification error", extra={"error": type(exc).__name__})
            raise _fail("internal") from None

    async def _verify_cold(
        self, token: str, now: float
    ) -> tuple[VerifiedToken, Callable[[float], bool] | None]:
        if not self._started:
            raise _fail("keys_unavailable")
        parsed = parse_compact(token, self._all_algs, self._all_types)
        iss = parsed.payload.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise _fail("iss")
        settings = issuer.settings
        if len(token) > settings.max_token_bytes:
            raise _fail("too_large")
        if parsed.alg not in issuer.algorithms:
            raise _fail("alg_not_allowed")
        if parsed.typ not in issuer.types:
            raise _fail("typ")

        usable = _check_signature(parsed, await self._keys_for(issuer, parsed))

        now = self._clock()
        claims = parsed.payload
        exp, iat = check_claims(claims, settings, now)
        verified = VerifiedToken(
            claims=MappingProxyType(claims),
            header=MappingProxyType(parsed.header),
            issuer=settings,
            subject=claims["sub"],
            roles=extract_roles(claims, settings.roles_claim),
            scopes=extract_scopes(claims, settings.scopes_claim),
            jti=claims.get("jti"),
            issued_at=iat,
            expires_at=exp,
        )
        return verified, usable

    async def _keys_for(self, issuer: _Issuer, parsed: ParsedToken) -> list[_KeyGroup]:
        """Candidate keys for (kid, alg): static keys first, then the JWKS (refetched
        when stale or when the kid is unknown, rate-limited). Raises when there are none.

        A token with a ``kid`` the static keys know is checked against them only; a token
        without ``kid`` is tried against the static keys and the JWKS keys.
        """
        kid, alg = parsed.kid, parsed.alg
        groups: list[_KeyGroup] = []
        if issuer.static is not None:
            keys = issuer.static.candidates(kid, alg)
            if keys:
                groups.append((keys, None))
                if kid is not None:
                    return groups
        remote = issuer.remote
        if remote is None:
            if groups:
                return groups
            raise _fail(_missing_reason(issuer.static, kid))
        now = self._clock()
        if remote.stale(now):
            await remote.refresh_if_allowed(now)
            now = self._clock()
        store = remote.current(now)
        if store is None:
            if groups:
                return groups
            raise _fail("keys_unavailable")
        keys = store.candidates(kid, alg)
        unknown = not keys and kid is not None and not store.knows_kid(kid)
        if unknown and await remote.refresh_if_allowed(now):
            store = remote.current(self._clock())
            if store is None:
                raise _fail("keys_unavailable")
            keys = store.candidates(kid, alg)
        if keys:
            groups.append((keys, remote.usable))
        if not groups:
            raise _fail(_missing_reason(store, kid))
        return groups


#: Keys of one source and the source's still-trusted check (None: static keys).
_KeyGroup = tuple[tuple[Key, ...], Callable[[float], bool] | None]


def _check_signature(
    parsed: ParsedToken, groups: list[_KeyGroup]
) -> Callable[[float], bool] | None:
    """Verify against each key group in turn; returns the verifying group's check."""
    failure: InvalidToken | None = None
    for keys, usable in groups:
        try:
            verify_signature(parsed, keys)
        except InvalidToken as exc:
            failure = exc
            continue
        return usable
    assert failure is not None
    raise failure


def _missing_reason(store: KeyStore | None, kid: str | None) -> str:
    if kid is not None and store is not None and store.knows_kid(kid):
        return "key_mismatch"  # the kid exists but its key may not verify this alg
    return "unknown_kid"


def _dropper(cache: VerifiedTokenCache, issuer: str) -> Callable[[], None]:
    def drop() -> None:
        cache.drop_issuer(issuer)

    return drop
