"""Registered clients and client authentication (RFC 6749 §2.3, RFC 7523 §2.2/§3).

Methods: ``client_secret_basic`` (secret hashed at rest, compared in constant time),
``private_key_jwt`` (RFC 7523: the client's public JWKS is registered, the algorithm is
pinned per client, ``jti`` values are remembered until the assertion expires, so a replayed
assertion fails) and ``none`` (public clients; PKCE is then the only proof, RFC 9700 §2.1.1).
A request that uses more than one method is refused (RFC 6749 §2.3).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_plus

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bastion.identity.oautherrors import InvalidClient, InvalidRequest
from bastion.identity.redirects import check_registrable
from bastion.identity.schema import clients, seen_assertions
from bastion.identity.sealing import Sealer, new_token
from bastion.identity.storage import Database
from bastion.jsonutil import JSONError, dumps, loads_strict

__all__ = [
    "ASSERTION_TYPE",
    "AUTH_METHODS",
    "GRANT_TYPES",
    "MAX_CLIENT_ID",
    "Client",
    "ClientRegistry",
]

AuthMethod = Literal["client_secret_basic", "private_key_jwt", "none"]
AUTH_METHODS: tuple[AuthMethod, ...] = ("client_secret_basic", "private_key_jwt", "none")
GRANT_TYPES = ("authorization_code", "client_credentials", "refresh_token")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_ALGS = ("ES256", "ES384", "PS256", "RS256", "EdDSA")
_MAX_ASSERTION_AGE = 300
# Basic credentials longer than this are refused before decoding: a 128-character client id
# and a long secret, both percent-encoded, stay well under it.
_MAX_BASIC = 4096
#: The longest client id (the column's width): a longer one is unknown without a lookup.
MAX_CLIENT_ID = 128
# Cached client records; only registered clients are cached (never misses, whose keys are
# whatever a caller sent), so this bounds memory to what the administrator registered.
_MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    auth_method: AuthMethod
    secret_hash: str | None
    jwks: Mapping[str, Any] | None
    jwt_alg: str | None
    redirect_uris: tuple[str, ...]
    grant_types: frozenset[str]
    scopes: frozenset[str]
    audiences: frozenset[str]
    roles: tuple[str, ...]
    require_mfa: bool
    disabled: bool

    @property
    def public(self) -> bool:
        return self.auth_method == "none"


def _row_to_client(row: Any) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        auth_method=row.auth_method,
        secret_hash=row.secret_hash,
        jwks=loads_strict(row.jwks) if row.jwks else None,
        jwt_alg=row.jwt_alg,
        redirect_uris=tuple(loads_strict(row.redirect_uris)),
        grant_types=frozenset(loads_strict(row.grant_types)),
        scopes=frozenset(loads_strict(row.scopes)),
        audiences=frozenset(loads_strict(row.audiences)),
        roles=tuple(loads_strict(row.roles)),
        require_mfa=bool(row.require_mfa),
        disabled=bool(row.disabled),
    )


class ClientRegistry:
    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        *,
        token_endpoint: str,
        issuer: str,
        cache_ttl: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._sealer = sealer
        self._token_endpoint = token_endpoint
        self._issuer = issuer
        self._cache_ttl = cache_ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Client]] = {}

    # -- administration -------------------------------------------------------------
    async def create(
        self,
        *,
        name: str,
        auth_method: AuthMethod = "client_secret_basic",
        redirect_uris: Iterable[str] = (),
        grant_types: Iterable[str] = ("client_credentials",),
        scopes: Iterable[str] = (),
        audiences: Iterable[str] = (),
        roles: Iterable[str] = (),
        jwks: Mapping[str, Any] | None = None,
        jwt_alg: str | None = None,
        require_mfa: bool = False,
        client_id: str | None = None,
    ) -> tuple[Client, str | None]:
        """Register a client; returns it and its secret (shown once; only a hash is kept)."""
        grants = sorted(set(grant_types))
        if unknown := set(grants) - set(GRANT_TYPES):
            raise ValueError(f"unsupported grant types: {sorted(unknown)}")
        if auth_method not in AUTH_METHODS:
            raise ValueError(f"unsupported auth method {auth_method}")
        if auth_method == "none" and "client_credentials" in grants:
            raise ValueError("a public client cannot use client_credentials")
        if auth_method == "private_key_jwt":
            if jwks is None or jwt_alg not in _ASSERTION_ALGS:
                raise ValueError(f"private_key_jwt needs jwks and jwt_alg in {_ASSERTION_ALGS}")
            KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
        uris = list(dict.fromkeys(redirect_uris))
        if "authorization_code" in grants and not uris:
            raise ValueError("authorization_code needs at least one redirect URI")
        for uri in uris:
            check_registrable(uri)
        secret = new_token(32) if auth_method == "client_secret_basic" else None
        cid = client_id or new_token(12)
        if len(cid) > MAX_CLIENT_ID:
            raise ValueError(f"a client id has at most {MAX_CLIENT_ID} characters")
        values = {
            "client_id": cid,
            "name": name,
            "auth_method": auth_method,
            "secret_hash": self._sealer.digest(secret) if secret else None,
            "jwks": dumps(dict(jwks)).decode() if jwks else None,
            "jwt_alg": jwt_alg,
            "redirect_uris": dumps(uris).decode(),
            "grant_types": dumps(grants).decode(),
            "scopes": dumps(sorted(set(scopes))).decode(),
            "audiences": dumps(sorted(set(audiences))).decode(),
            "roles": dumps(sorted(set(roles))).decode(),
            "require_mfa": require_mfa,
            "disabled": False,
            "created_at": self._clock(),
        }
        async with self._db.write() as conn:
            await conn.execute(insert(clients).values(values))
        client = await self.get(cid, fresh=True)
        assert client is not None
        return client, secret

    async def rotate_secret(self, client_id: str) -> str:
        secret = new_token(32)
        async with self._db.write() as conn:
            result = await conn.execute(
                update(clients)
                .where(clients.c.client_id == client_id)
                .where(clients.c.auth_method == "client_secret_basic")
                .values(secret_hash=self._sealer.digest(secret))
            )
            if result.rowcount != 1:
                raise KeyError(client_id)
        self._cache.pop(client_id, None)
        return secret

    async def all(self) -> list[Client]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(clients).order_by(clients.c.client_id))
            return [_row_to_client(r) for r in rows]

    async def get(self, client_id: str, *, fresh: bool = False) -> Client | None:
        """The registered client, or ``None``; an id over :data:`MAX_CLIENT_ID` is not looked up.

        Only clients found are cached: an unknown id costs a lookup each time, but never
        memory (the ids of a flood of unknown clients are the sender's to choose).
        """
        if not 0 < len(client_id) <= MAX_CLIENT_ID:
            return None
        now = self._clock()
        cached = self._cache.get(client_id)
        if not fresh and cached is not None and now - cached[0] < self._cache_ttl:
            return cached[1]
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(clients).where(clients.c.client_id == client_id))
            ).first()
        if row is None:
            self._cache.pop(client_id, None)
            return None
        client = _row_to_client(row)
        if self._cache_ttl > 0:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[client_id] = (now, client)
        return client

    # -- authentication -------------------------------------------------------------
    async def authenticate(
        self, authorization: str | None, form: Mapping[str, str], *, allow_public: bool = True
    ) -> Client:
        """The authenticated client of a token/revocation/introspection request, or raise."""
        assertion = form.get("client_assertion")
        methods = sum([authorization is not None, assertion is not None, "client_secret" in form])
        if "client_secret" in form:
            raise InvalidClient(reason="client.secret_post_not_supported")
        if methods > 1:
            raise InvalidRequest("use exactly one client authentication method")
        if authorization is not None:
            return await self._basic(authorization, form.get("client_id"))
        if assertion is not None:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise InvalidClient(reason="client.assertion_type")
            return await self._private_key_jwt(assertion, form.get("client_id"))
        client_id = form.get("client_id")
        if not client_id:
            raise InvalidClient(reason="client.missing")
        client = await self.get(client_id) if len(client_id) <= MAX_CLIENT_ID else None
        if client is None or client.disabled or not client.public or not allow_public:
            raise InvalidClient(reason="client.not_public")
        return client

    async def _basic(self, authorization: str, form_client_id: str | None) -> Client:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic" or not value:
            raise InvalidClient(reason="client.bad_scheme")
        if len(value) > _MAX_BASIC:
            raise InvalidClient(reason="client.bad_basic")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text
            raise InvalidClient(reason="client.bad_basic") from None
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            raise InvalidClient(reason="client.bad_basic")
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if form_client_id is not None and form_client_id != client_id:
            raise InvalidRequest("client_id does not match the authenticated client")
        client = await self.get(client_id) if 0 < len(client_id) <= MAX_CLIENT_ID else None
        stored = client.secret_hash if client is not None else None
        ok = self._sealer.matches(secret, stored)  # runs for unknown clients too
        if client is None or not ok or client.disabled:
            raise InvalidClient(reason="client.bad_secret")
        if client.auth_method != "client_secret_basic":
            raise InvalidClient(reason="client.method_mismatch")
        return client

    async def _private_key_jwt(self, assertion: str, form_client_id: str | None) -> Client:
        if len(assertion) > 8192 or assertion.count(".") != 2:
            raise InvalidClient(reason="client.assertion_malformed")
        try:
            unverified = loads_strict(base64.urlsafe_b64decode(_pad(assertion.split(".")[1])))
        except (JSONError, ValueError, binascii.Error):
            raise InvalidClient(reason="client.assertion_malformed") from None
        client_id = unverified.get("iss") if isinstance(unverified, dict) else None
        if (
            not isinstance(client_id, str)
            or not client_id.isprintable()
            or not client_id.isascii()
            or (form_client_id not in (None, client_id))
        ):
            # "\ud800" reached the database driver, which cannot encode it: a 500.
            raise InvalidClient(reason="client.assertion_issuer")
        client = await self.get(client_id) if len(client_id) <= MAX_CLIENT_ID else None
        if client is None or client.disabled or client.auth_method != "private_key_jwt":
            raise InvalidClient(reason="client.method_mismatch")
        if client.jwks is None or client.jwt_alg is None:
            raise InvalidClient(reason="client.no_keys")
        try:
            keyset = KeySet.import_key_set(dict(client.jwks))  # type: ignore[arg-type]
            sig = jws.deserialize_compact(assertion, keyset, algorithms=[client.jwt_alg])
            claims = loads_strict(sig.payload)
        except (JoseError, JSONError, ValueError, KeyError, TypeError):
            raise InvalidClient(reason="client.assertion_signature") from None
        await self._check_assertion_claims(client.client_id, claims)
        return client

    async def _check_assertion_claims(self, client_id: str, claims: Any) -> None:
        now = self._clock()
        if not isinstance(claims, dict):
            raise InvalidClient(reason="client.assertion_claims")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        exp, jti = claims.get("exp"), claims.get("jti")
        if (
            claims.get("iss") != client_id
            or claims.get("sub") != client_id
            or not ({self._token_endpoint, self._issuer} & {a for a in auds if isinstance(a, str)})
            or not isinstance(exp, int | float)
            or exp <= now
            or exp > now + _MAX_ASSERTION_AGE
            or not isinstance(jti, str)
            or not 8 <= len(jti) <= 128
        ):
            raise InvalidClient(reason="client.assertion_claims")
        key = self._sealer.digest(f"{client_id}\x00{jti}")
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    delete(seen_assertions).where(seen_assertions.c.expires_at < now)
                )
                await conn.execute(insert(seen_assertions).values(key=key, expires_at=float(exp)))
        except IntegrityError:
            raise InvalidClient(reason="client.assertion_replayed") from None


def _pad(text: str) -> str:
    return text + "=" * (-len(text) % 4)
