"""The token service's logic, independent of HTTP: grants, tokens, revocation, users.

:class:`IdentityService` wires storage, keys, clients, users, sessions and grants, and
implements the flows the endpoints (and the admin CLI, and the demo) call. Every flow
reads the injected clock; every security event goes to the audit log; every revocation
is also announced through :class:`~bastion.identity.events.IdentityEvents`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from bastion.identity.clients import Client, ClientRegistry
from bastion.identity.events import Audit, IdentityEvents, NoEvents
from bastion.identity.grants import CodeGrant, Grants, RefreshGrant, ReuseDetected
from bastion.identity.keys import KeyStore
from bastion.identity.oautherrors import (
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    OAuthError,
    UnauthorizedClient,
)
from bastion.identity.passwords import PasswordHasher, PasswordPolicy
from bastion.identity.revocation import Revocations, Revoked
from bastion.identity.rfc7636 import verify as verify_pkce
from bastion.identity.rfc9068 import AccessTokens, IssuedToken
from bastion.identity.sealing import Sealer
from bastion.identity.sessions import Sessions
from bastion.identity.settings import IdentitySettings
from bastion.identity.storage import Database
from bastion.identity.totp import Totp
from bastion.identity.users import User, Users

__all__ = ["IdentityService"]


class IdentityService:
    def __init__(
        self,
        settings: IdentitySettings,
        *,
        events: IdentityEvents | None = None,
        clock: Callable[[], float] = time.time,
        audit_sink: TextIO | None = None,
        keep_audit: bool = False,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.events: IdentityEvents = events or NoEvents()
        self.db = Database(settings.database.url)
        self.sealer = Sealer(settings.secret_bytes())
        sink = (
            audit_sink
            if audit_sink is not None
            else (sys.stdout if settings.audit == "stdout" else None)
        )
        self.audit = Audit(self.sealer, sink, clock, keep=keep_audit)
        self.keys = KeyStore(self.db, self.sealer, settings, clock)
        self.tokens = AccessTokens(self.keys, settings.issuer, settings.tokens.access_token_ttl)
        self.clients = ClientRegistry(
            self.db,
            self.sealer,
            token_endpoint=f"{settings.issuer}/token",
            issuer=settings.issuer,
            cache_ttl=settings.tokens.client_cache_ttl,
            clock=clock,
        )
        self.hasher = PasswordHasher(
            settings.passwords.argon2, max_length=settings.passwords.max_length
        )
        self.policy = PasswordPolicy(settings.passwords, mfa_enforced=settings.mfa.enforce)
        self.users = Users(self.db, self.hasher, self.policy, settings.lockout)
        self.sessions = Sessions(self.db, self.sealer, settings.sessions)
        self.grants = Grants(self.db, self.sealer, settings.tokens)
        self.revocations = Revocations(self.db)
        self.totp = Totp(
            self.db, self.sealer, settings.mfa.issuer_name, settings.mfa.recovery_codes
        )

    async def start(self) -> None:
        if self.settings.database.migrate_on_start:
            await self.db.migrate()
        await self.keys.ensure()

    async def close(self) -> None:
        await self.db.close()

    # -- scope and audience ---------------------------------------------------------
    @staticmethod
    def resolve_scope(client: Client, requested: str | None) -> list[str]:
        """RFC 6749 §3.3: the requested scope must be allowed; none means all allowed."""
        if requested is None:
            return sorted(client.scopes)
        wanted = requested.split(" ")
        if any(not s or len(s) > 128 for s in wanted) or len(wanted) > 64:
            raise InvalidScope("scope is malformed", reason="scope.malformed")
        if not set(wanted) <= client.scopes:
            raise InvalidScope("scope is not allowed for this client", reason="scope.not_allowed")
        return sorted(set(wanted))

    def resolve_audience(self, client: Client, resources: Sequence[str]) -> str:
        """RFC 8707 §2: one absolute ``resource`` from the client's allow-list, or the default."""
        if len(resources) > 1:
            raise InvalidTarget("one resource per token", reason="resource.multiple")
        default = self.settings.tokens.default_audience or self.settings.issuer
        if not resources:
            if len(client.audiences) == 1 and not self.settings.tokens.default_audience:
                return next(iter(client.audiences))
            return default
        resource = resources[0]
        if "#" in resource or ":" not in resource or len(resource) > 512:
            raise InvalidTarget("resource must be an absolute URI", reason="resource.malformed")
        if resource not in client.audiences and resource != default:
            raise InvalidTarget("resource is not allowed for this client", reason="resource.denied")
        return resource

    # -- grants ---------------------------------------------------------------------
    async def client_credentials(
        self, client: Client, scope: str | None, resources: Sequence[str]
    ) -> dict[str, Any]:
        if "client_credentials" not in client.grant_types or client.public:
            raise UnauthorizedClient(reason="grant.not_allowed")
        scopes = self.resolve_scope(client, scope)
        audience = self.resolve_audience(client, resources)
        await self.keys.refresh_if_stale()
        issued = self.tokens.issue(
            subject=client.client_id,
            client_id=client.client_id,
            audience=audience,
            scope=scopes,
            roles=client.roles,
            now=self.clock(),
        )
        self.audit.emit(
            "token.issued", grant="client_credentials", client_id=client.client_id, jti=issued.jti
        )
        return self._token_response(issued.token, scopes, None)

    def _token_response(self, token: str, scopes: list[str], refresh: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.settings.tokens.access_token_ttl,
            "scope": " ".join(scopes),
        }
        if refresh is not None:
            body["refresh_token"] = refresh
        return body

    async def authorization_code(
        self,
        client: Client,
        code: str | None,
        redirect_uri: str | None,
        verifier: str | None,
        resources: Sequence[str],
    ) -> dict[str, Any]:
        """RFC 6749 §4.1.3: the code is consumed and the tokens minted in one transaction.

        A failed check still burns the code; a second redemption revokes the family, the
        refresh token and the access token the first one produced.
        """
        if "authorization_code" not in client.grant_types:
            raise UnauthorizedClient(reason="grant.not_allowed")
        if not code:
            raise InvalidRequest("code is required")
        now = self.clock()
        await self.keys.refresh_if_stale()
        scopes: list[str] = []

        async def prepare(grant: CodeGrant) -> IssuedToken | OAuthError:
            try:
                if grant.client_id != client.client_id:
                    raise InvalidGrant("the code is invalid or expired", reason="code.wrong_client")
                if redirect_uri != grant.redirect_uri:
                    raise InvalidGrant("redirect_uri does not match", reason="code.redirect")
                verify_pkce(verifier, grant.code_challenge)
                if resources and (grant.resource is None or list(resources) != [grant.resource]):
                    raise InvalidTarget("resource differs from the authorization request")
                user = await self.users.get(grant.user_id)
                if user is None or user.disabled:
                    raise InvalidGrant("the code is invalid or expired", reason="code.user_gone")
                scopes.extend(grant.scope.split())
                audience = self.resolve_audience(client, [grant.resource] if grant.resource else [])
            except OAuthError as exc:
                return exc
            return self.tokens.issue(
                subject=user.id,
                client_id=client.client_id,
                audience=audience,
                scope=scopes,
                roles=user.roles,
                now=now,
            )

        try:
            result = await self.grants.redeem_code(
                code, now, prepare, with_refresh="refresh_token" in client.grant_types
            )
        except ReuseDetected as reuse:
            await self._announce(reuse.revoked)
            self.audit.emit(
                "code.reuse_detected", client_id=client.client_id, family=reuse.family_id
            )
            raise InvalidGrant("the code was already used", reason="code.reused") from None
        if result is None:
            raise InvalidGrant("the code is invalid or expired", reason="code.invalid")
        if isinstance(result, OAuthError):
            raise result
        grant, issued, refresh = result
        self.audit.emit(
            "token.issued",
            grant="authorization_code",
            client_id=client.client_id,
            user=grant.user_id,
            jti=issued.jti,
        )
        return self._token_response(issued.token, scopes, refresh)

    async def issue_user_token(
        self,
        user: User,
        client: Client,
        scopes: Sequence[str],
        audience: str,
        *,
        family_id: str | None = None,
        grant: str = "authorization_code",
    ) -> str:
        """Mint an RFC 9068 token for a user (the one issuing path for user tokens)."""
        await self.keys.refresh_if_stale()
        now = self.clock()
        issued = self.tokens.issue(
            subject=user.id,
            client_id=client.client_id,
            audience=audience,
            scope=scopes,
            roles=user.roles,
            now=now,
        )
        if family_id is not None and not await self.grants.record_access(
            issued.jti, family_id, issued.expires_at, now
        ):
            raise InvalidGrant("the grant was revoked", reason="grant.revoked_during_issue")
        self.audit.emit(
            "token.issued", grant=grant, client_id=client.client_id, user=user.id, jti=issued.jti
        )
        return issued.token

    async def refresh(
        self, client: Client, token: str | None, scope: str | None, resources: Sequence[str]
    ) -> dict[str, Any]:
        """RFC 6749 §6 with rotation: checks first, then spend, mint and rotate atomically."""
        if "refresh_token" not in client.grant_types:
            raise UnauthorizedClient(reason="grant.not_allowed")
        if not token:
            raise InvalidRequest("refresh_token is required")
        now = self.clock()
        await self.keys.refresh_if_stale()
        scopes: list[str] = []

        async def prepare(grant: RefreshGrant) -> IssuedToken | OAuthError:
            try:
                user = await self.users.get(grant.user_id)
                if user is None or user.disabled:
                    raise InvalidGrant("the refresh token is invalid", reason="refresh.user_gone")
                granted = grant.scope.split() if grant.scope else []
                scopes.extend(granted)
                if scope is not None:
                    scopes[:] = sorted(set(scope.split(" ")))
                    if not set(scopes) <= set(granted):
                        raise InvalidScope("scope exceeds the original grant")
                if resources and (grant.resource is None or list(resources) != [grant.resource]):
                    raise InvalidTarget("resource differs from the original grant")
                audience = self.resolve_audience(client, [grant.resource] if grant.resource else [])
            except OAuthError as exc:
                return exc
            return self.tokens.issue(
                subject=user.id,
                client_id=client.client_id,
                audience=audience,
                scope=scopes,
                roles=user.roles,
                now=now,
            )

        try:
            rotated = await self.grants.rotate(token, client.client_id, now, prepare)
        except ReuseDetected as reuse:
            await self._announce(reuse.revoked)
            self.audit.emit(
                "refresh.reuse_detected", client_id=client.client_id, family=reuse.family_id
            )
            raise InvalidGrant("the refresh token is invalid", reason="refresh.reused") from None
        if rotated is None:
            raise InvalidGrant("the refresh token is invalid", reason="refresh.invalid")
        if isinstance(rotated, OAuthError):
            raise rotated
        grant, issued, next_token = rotated
        self.audit.emit("refresh.rotated", client_id=client.client_id, family=grant.family_id)
        self.audit.emit(
            "token.issued",
            grant="refresh_token",
            client_id=client.client_id,
            user=grant.user_id,
            jti=issued.jti,
        )
        return self._token_response(issued.token, scopes, next_token)

    # -- revocation -----------------------------------------------------------------
    async def _announce(self, revoked: Revoked) -> None:
        for jti, exp in revoked.access_tokens:
            await self.events.token_revoked(jti, exp)
        for family in revoked.families:
            self.audit.emit("token.revoked", kind="refresh_token", family=family)

    async def revoke_user_tokens(self, user_id: str, reason: str) -> None:
        """Password change / disable: every family ends and a not-before is announced."""
        now = self.clock()
        await self._announce(
            await self.revocations.revoke_for(user_id=user_id, reason=reason, now=now)
        )
        await self.sessions.end_all(user_id, now)
        await self.events.subject_revoked(user_id, now)

    async def logout(self, raw_session: str) -> bool:
        now = self.clock()
        # The tokens first, then the session: a sign-out that fails half-way leaves the
        # session alive, so trying again revokes what it issued (the other order left a
        # retry "signed out" with the session's refresh tokens still working).
        digest = self.sessions.digest(raw_session)
        await self._announce(
            await self.revocations.revoke_for(session_hash=digest, reason="logout", now=now)
        )
        if await self.sessions.end(raw_session, now) is None:
            return False
        self.audit.emit("session.logout", session=digest)
        return True

    async def change_password(self, user: User, new_password: str) -> None:
        now = self.clock()
        await self.users.set_password(user, new_password, now)
        self.audit.emit("password.changed", user=user.id)
        await self.revoke_user_tokens(user.id, "password_change")

    async def disable_user(self, user_id: str) -> None:
        await self.users.set_disabled(user_id, True, self.clock())
        await self.revoke_user_tokens(user_id, "disabled")

    async def housekeeping(self) -> int:
        """Delete expired codes, tokens, families, sessions and replay-cache entries."""
        now = self.clock()
        return await self.revocations.purge_expired(now) + await self.sessions.purge_expired(now)
