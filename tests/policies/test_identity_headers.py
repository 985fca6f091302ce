"""X-Bastion-Roles / X-Bastion-Scopes: a role or scope value holding a list separator must
not become extra entries upstream, whatever the credential. JWT claims are refused by the
verifier (tests/tokens/test_tokens_claims.py); the authentication policy checks every
principal once more, so an API key record read from a store is covered too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from bastion.apikeys import ApiKeyRecord
from bastion.errors import InvalidToken, Unauthorized
from bastion.policies.authentication import AuthenticationPolicy
from bastion.state.base import StateStore
from bastion.state.factory import create_store
from bastion.tokens import IssuerSettings, VerifiedToken
from bastion.types import RequestContext
from tests.support.context import request_context

Build = Callable[..., AuthenticationPolicy]


def _record(roles: Sequence[str], scopes: Sequence[str]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id="key_aaaaaaaaaaaa",
        name="ci",
        prefix="bst_live_aaa",
        key_hash="f" * 64,
        roles=tuple(roles),
        scopes=tuple(scopes),
        created_at=0.0,
        expires_at=None,
        revoked_at=None,
        allowed_networks=(),
        rotated_from=None,
    )


class _Keys:
    """Hands out one record, as a store with a tampered or legacy row would."""

    def __init__(self, record: ApiKeyRecord) -> None:
        self.record = record

    async def authenticate(self, key: str, client_ip: str) -> ApiKeyRecord:
        return self.record


class _Verifier:
    def __init__(self, roles: Sequence[str], scopes: Sequence[str]) -> None:
        issuer = IssuerSettings(
            issuer="https://idp", audiences=("api",), algorithms=("ES256",), jwks_uri="https://x"
        )
        self.token = VerifiedToken(
            claims={"sub": "mallory"},
            header={},
            issuer=issuer,
            subject="mallory",
            roles=frozenset(roles),
            scopes=frozenset(scopes),
            jti=None,
            issued_at=None,
            expires_at=2e9,
        )

    async def verify(self, token: str) -> VerifiedToken:
        return self.token


def _ctx(headers: list[tuple[str, str]]) -> RequestContext:
    return request_context(headers=headers, client_ip="203.0.113.9", scheme="https")


@pytest.fixture
async def store() -> AsyncIterator[StateStore]:
    state = create_store({"backend": "memory"})
    await state.start()
    yield state
    await state.close()


def _policy(store: StateStore, *, keys: Any = None, verifier: Any = None) -> AuthenticationPolicy:
    return AuthenticationPolicy(
        methods=["jwt", "api_key"],
        verifier=verifier,
        api_keys=keys,
        api_key_header="X-API-Key",
        store=store,
        clock=lambda: 1e9,
    )


def _identity(context: RequestContext) -> dict[str, str]:
    return {k: v for k, v in context.upstream_headers if k.startswith("x-bastion-")}


async def test_api_key_with_clean_labels_keeps_the_header_format(store: StateStore) -> None:
    policy = _policy(store, keys=_Keys(_record(["reporter", "billing"], ["orders:read", "a/b"])))
    context = _ctx([("x-api-key", "bst_live_whatever")])
    assert await policy.on_request(context) is None
    identity = _identity(context)
    assert identity["x-bastion-roles"] == "billing,reporter"
    assert identity["x-bastion-scopes"] == "a/b orders:read"


@pytest.mark.parametrize(
    ("roles", "scopes", "reason"),
    [
        (["customer", "x,admin"], [], "auth.invalid_roles"),
        (["customer admin"], [], "auth.invalid_roles"),
        (["customer\nx-admin: 1"], [], "auth.invalid_roles"),
        ([""], [], "auth.invalid_roles"),
        (["customer"], ["read admin:all"], "auth.invalid_scopes"),
        (["customer"], ["read\x1fadmin"], "auth.invalid_scopes"),
    ],
)
async def test_api_key_record_with_injected_labels_is_refused(
    store: StateStore, roles: list[str], scopes: list[str], reason: str
) -> None:
    policy = _policy(store, keys=_Keys(_record(roles, scopes)))
    context = _ctx([("x-api-key", "bst_live_whatever")])
    with pytest.raises(Unauthorized) as info:
        await policy.on_request(context)
    assert info.value.status == 401
    assert info.value.reason == reason
    assert _identity(context) == {}


async def test_jwt_principal_with_injected_labels_is_invalid_token(store: StateStore) -> None:
    policy = _policy(store, verifier=_Verifier(["customer", "x,admin"], ["read"]))
    context = _ctx([("authorization", "Bearer t")])
    with pytest.raises(InvalidToken) as info:
        await policy.on_request(context)
    assert info.value.reason == "jwt.roles_claim"
    assert info.value.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert _identity(context) == {}
    policy = _policy(store, verifier=_Verifier(["customer"], ["read admin:all"]))
    with pytest.raises(InvalidToken) as info:
        await policy.on_request(_ctx([("authorization", "Bearer t")]))
    assert info.value.reason == "jwt.scopes_claim"
