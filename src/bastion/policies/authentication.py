"""Authentication: who is calling (RFC 6750 bearer JWTs, API keys, mTLS) -> :class:`Principal`.

* Only the ``Authorization`` header carries a bearer token (never the query string, RFC
  6750 §2.3 is not supported on purpose); the scheme is case-insensitive; two
  ``Authorization`` headers, or two different credentials, are refused.
* Every token failure is one ``401 invalid_token`` (RFC 6750 §3); the precise reason goes
  to the audit event only.
* Revocation (a ``jti``, or everything a subject holds issued before a not-before) and the
  blocklist are checked against the local mirror of the shared state: no I/O per request.
  When the mirror is stale (Redis unreachable for longer than ``max_staleness``), requests
  fail closed with 503.
* mTLS (:mod:`bastion.policies.mtls`): the client certificate is a connection-level
  credential, so it is used only when the request carries no ``Authorization`` / API-key
  credential; an explicit credential wins on routes that accept both.
* Role and scope values are checked once more before they reach the upstream in
  ``X-Bastion-Roles`` / ``X-Bastion-Scopes`` (:mod:`bastion.tokens.labels`): a value with a
  list separator in it would read upstream as extra entries. JWT claims are refused by the
  verifier already; a stored API key or an mTLS identity holding one is refused here (401).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bastion.errors import BadRequest, Forbidden, InvalidToken, ServiceUnavailable, Unauthorized
from bastion.policies.mtls import CHALLENGE, MtlsAuthenticator
from bastion.state.base import StateStore
from bastion.tokens import JWTVerifier, VerifiedToken
from bastion.tokens.labels import invalid_label
from bastion.types import Policy, Principal, RequestContext, Response

if TYPE_CHECKING:
    from bastion.apikeys.authenticator import ApiKeyAuthenticator

__all__ = ["AuthenticationPolicy"]

_MEMO_SIZE = 10_000


class AuthenticationPolicy(Policy):
    name = "authentication"

    def __init__(
        self,
        *,
        methods: Sequence[str],
        verifier: JWTVerifier | None,
        api_keys: ApiKeyAuthenticator | None,
        api_key_header: str,
        store: StateStore,
        clock: Callable[[], float],
        mtls: MtlsAuthenticator | None = None,
    ) -> None:
        self._jwt = verifier if "jwt" in methods else None
        self._mtls = mtls if "mtls" in methods else None
        self._keys = api_keys if "api_key" in methods else None
        header = api_key_header.lower()
        self._key_in_authorization = header == "authorization"
        self._key_header = None if self._key_in_authorization else header
        self._store = store
        self._clock = clock
        #: Memos keyed by object identity (the entry keeps the object, so ids stay unique).
        self._principals: dict[int, tuple[VerifiedToken, Principal]] = {}
        self._headers: dict[int, tuple[Principal, tuple[tuple[str, str], ...]]] = {}
        schemes = []
        if self._jwt is not None:
            schemes.append("Bearer")
        if self._keys is not None and self._key_in_authorization:
            schemes.append("ApiKey")
        if self._mtls is not None:
            schemes.append(CHALLENGE)
        self._challenge = ", ".join(schemes) or "Bearer"

    async def on_request(self, ctx: RequestContext) -> Response | None:
        now = self._clock()
        mirror = self._store.mirror
        if not mirror.fresh(now):
            raise ServiceUnavailable(reason="state.stale")
        authorizations = ctx.headers.get_all("authorization")
        if len(authorizations) > 1:
            raise InvalidToken(reason="auth.multiple_authorization")
        bearer: str | None = None
        api_key: str | None = None
        if authorizations:
            scheme, _, credential = authorizations[0].strip().partition(" ")
            credential = credential.strip()
            lowered = scheme.lower()
            if lowered == "bearer" and self._jwt is not None:
                bearer = credential
            elif lowered == "apikey" and self._keys is not None and self._key_in_authorization:
                api_key = credential
            else:
                raise Unauthorized(reason="auth.unsupported_scheme", scheme=self._challenge)
            if not credential:
                raise InvalidToken(reason="auth.empty_credential")
        if self._key_header is not None and self._keys is not None:
            values = ctx.headers.get_all(self._key_header)
            if len(values) > 1:
                raise Unauthorized(reason="apikey.multiple", scheme=self._challenge)
            if values:
                if bearer is not None:
                    raise BadRequest("Send one credential, not two.", reason="auth.ambiguous")
                api_key = values[0].strip()
                ctx.upstream_drop.add(self._key_header)
        if bearer is not None:
            principal = await self._from_jwt(bearer, now)
        elif api_key is not None:
            principal = await self._from_api_key(api_key, ctx.client_ip)
            if self._key_in_authorization:
                ctx.upstream_drop.add("authorization")
        elif self._mtls is not None:
            principal = self._mtls.authenticate(ctx, now, self._challenge)
        else:
            raise Unauthorized(reason="auth.missing", scheme=self._challenge)
        identity = self._identity_headers(principal)
        blocked = mirror.is_blocked("principal", principal.subject, now)
        if blocked is None and principal.kind == "api_key" and principal.credential_id:
            blocked = mirror.is_blocked("api_key", principal.credential_id, now)
        if blocked is not None:
            ctx.principal = principal
            raise Forbidden(reason=f"blocklist.{blocked.kind}")
        ctx.principal = principal
        ctx.upstream_headers.extend(identity)
        return None

    def _identity_headers(self, principal: Principal) -> tuple[tuple[str, str], ...]:
        """What the upstream learns about the caller (X-Bastion-*), built once per
        principal object: a cached token's principal is reused (see :meth:`_from_jwt`).

        Refuses (401) a principal whose roles or scopes would not survive the header
        format, whatever its source: one check for JWTs, API keys and mTLS identities."""
        cached = self._headers.get(id(principal))
        if cached is not None and cached[0] is principal:
            return cached[1]
        invalid = invalid_label(principal.roles, principal.scopes)
        if invalid is not None:
            if principal.kind == "jwt":
                raise InvalidToken(reason=f"jwt.{invalid}_claim")
            raise Unauthorized(reason=f"auth.invalid_{invalid}", scheme=self._challenge)
        headers = (
            ("x-bastion-subject", principal.subject),
            ("x-bastion-roles", ",".join(sorted(principal.roles))),
            ("x-bastion-scopes", " ".join(sorted(principal.scopes))),
            ("x-bastion-auth", principal.kind),
        )
        if len(self._headers) >= _MEMO_SIZE:
            self._headers.clear()
        self._headers[id(principal)] = (principal, headers)
        return headers

    async def _from_jwt(self, token: str, now: float) -> Principal:
        assert self._jwt is not None
        verified = await self._jwt.verify(token)
        mirror = self._store.mirror
        if verified.jti is not None and mirror.is_token_revoked(verified.jti, now):
            raise InvalidToken(reason="jwt.revoked")
        not_before = mirror.subject_not_before(verified.subject)
        if not_before is not None and (verified.issued_at or 0.0) < not_before:
            raise InvalidToken(reason="jwt.revoked_subject")
        # The verifier's cache hands out the same VerifiedToken for a token until it
        # expires or is revoked; so does this memo for its (immutable) Principal. The
        # revocation checks above still run on every request.
        cached = self._principals.get(id(verified))
        if cached is not None and cached[0] is verified:
            return cached[1]
        principal = Principal(
            subject=verified.subject,
            kind="jwt",
            issuer=verified.issuer.issuer,
            roles=verified.roles,
            scopes=verified.scopes,
            claims=verified.claims,
            credential_id=verified.jti,
            issued_at=verified.issued_at,
        )
        if len(self._principals) >= _MEMO_SIZE:
            self._principals.clear()
        self._principals[id(verified)] = (verified, principal)
        return principal

    async def _from_api_key(self, key: str, client_ip: str) -> Principal:
        assert self._keys is not None
        from bastion.apikeys.authenticator import principal_for  # only where keys are on

        return principal_for(await self._keys.authenticate(key, client_ip))
