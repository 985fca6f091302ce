"""Rate limiting per principal, API key, client IP, route or request field.

A client IP is its address for IPv4 and its ``/client_ipv6_prefix`` network for IPv6
(:func:`~bastion.gateway.request.client_key`).

All the limits that apply to a request are checked together, atomically, in one call to
the state store (one Lua script on Redis), all-or-nothing: a refused request consumes
nothing. Answers carry the IETF ``RateLimit-Policy`` / ``RateLimit`` headers; a refusal is
429 with ``Retry-After``. When the state store is unreachable the request is refused with
503, unless every limit involved says ``fail_open`` (then it passes and the audit event
says so).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bastion.decisions import MISSING, parse_field_ref
from bastion.errors import BadRequest, ServiceUnavailable, TooManyRequests
from bastion.gateway.request import client_key, without_path_parameters
from bastion.policies.request_fields import request_value
from bastion.ratelimit import Algorithm, LimitCheck, Rate, ratelimit_headers
from bastion.ratelimit.headers import admitted_fields, single_policy
from bastion.state.base import StateStore
from bastion.state.memory import MemoryStateStore
from bastion.types import LATER, Later, Policy, RequestContext, Response

__all__ = ["LimitSpec", "RateLimitPolicy"]

_KNOWN_CHECKS = 10_000
# Identities longer than this (a body or header field: the client's choice) are hashed on
# every request instead of remembered: 10,000 remembered 1 MB values held 10 GB.
_MEMO_MAX_CHARS = 256


_K = TypeVar("_K")
_V = TypeVar("_V")


def _remember(memo: dict[_K, _V], key: _K, identity: str, value: _V) -> None:
    """Keep ``value`` for an identity's next request: at most _KNOWN_CHECKS of them
    (forgotten all at once), and none for a long identity (see _MEMO_MAX_CHARS)."""
    if len(identity) <= _MEMO_MAX_CHARS:
        if len(memo) >= _KNOWN_CHECKS:
            memo.clear()
        memo[key] = value


@dataclass(frozen=True, slots=True)
class LimitSpec:
    scope: str  # where the rule is declared: "api:orders:0" or "route:orders:/x:1"
    keys: tuple[str, ...]  # principal, api_key, ip, route, or field refs
    rate: Rate
    algorithm: Algorithm
    fail_open: bool


def _key_text(key: str, source: str, value: Any) -> str:
    """The counter a request field's value counts on, one per value the upstream reads.

    A number counts as the number (``7``, ``7.0`` and ``"7"`` are one counter: JSON
    readers and binders coerce between them); an object or array is a 400 (it used to
    skip the limit); a path value counts without its ``;parameters``, which servlet
    containers drop (``alice;a=1`` is ``alice`` to them).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**63 else repr(value)
    if isinstance(value, str):
        return without_path_parameters(value) if source == "path" else value
    if value is None:
        return "null"
    raise BadRequest(
        f"the rate-limit key {key} must be a string or a number", reason="ratelimit.key"
    )


class RateLimitPolicy(Policy):
    name = "rate_limit"

    def __init__(
        self,
        limits: Sequence[LimitSpec],
        store: StateStore,
        clock: Callable[[], float],
        *,
        ipv6_prefix: int = 64,
    ) -> None:
        self.limits = tuple(limits)
        self.ipv6_prefix = ipv6_prefix
        self.store = store
        self.clock = clock
        self._refs = {
            key: parse_field_ref(key) for spec in self.limits for key in spec.keys if "." in key
        }
        self.needs_request_body = any(ref.source == "body" for ref in self._refs.values())
        self._fail_open = all(spec.fail_open for spec in self.limits)
        #: Checks built for recently seen identities (immutable, so safely reused).
        self._known: dict[tuple[int, str], LimitCheck] = {}
        #: The common shape, one limit on one key: its checks come with their header values,
        #: built once per identity; in this process's memory an admitted request is decided
        #: without a coroutine (on_request_now).
        self._memory = store if isinstance(store, MemoryStateStore) else None
        self._only_key = (
            self.limits[0].keys[0]
            if len(self.limits) == 1 and len(self.limits[0].keys) == 1
            else None
        )
        self._only: dict[str, tuple[LimitCheck, tuple[str, str]]] = {}

    def _identity(self, ctx: RequestContext, key: str) -> str | None:
        if key == "ip":
            return client_key(ctx.client_ip, self.ipv6_prefix)
        if key == "route":
            return f"{ctx.method} {ctx.route}"
        if key == "principal":
            if ctx.principal is not None:
                return ctx.principal.subject
            return f"ip:{client_key(ctx.client_ip, self.ipv6_prefix)}"
        if key == "api_key":
            if ctx.principal is not None and ctx.principal.kind == "api_key":
                return ctx.principal.credential_id
            return None
        ref = self._refs[key]
        value = request_value(ctx, ref)
        if value is MISSING:
            return None
        return _key_text(key, ref.source, value)

    def checks(self, ctx: RequestContext) -> list[LimitCheck]:
        checks = []
        for index, spec in enumerate(self.limits):
            if len(spec.keys) == 1:
                identity = self._identity(ctx, spec.keys[0])
                if identity is None:
                    continue  # the key does not apply to this request (e.g. no username)
            else:
                parts = [self._identity(ctx, key) for key in spec.keys]
                if any(part is None for part in parts):
                    continue
                identity = "\x1f".join(p for p in parts if p is not None)
            check = self._known.get((index, identity))
            if check is None:
                check = self._check(spec, identity)
                _remember(self._known, (index, identity), identity, check)
            checks.append(check)
        return checks

    @staticmethod
    def _check(spec: LimitSpec, identity: str) -> LimitCheck:
        """The check for one identity; the identity is hashed so keys have a fixed size."""
        digest = hashlib.blake2b(
            identity.encode("utf-8", "surrogatepass"), digest_size=16
        ).hexdigest()
        return LimitCheck(
            key=f"{spec.scope}:{digest}",
            rate=spec.rate,
            algorithm=spec.algorithm,
            name="+".join(spec.keys),
        )

    def _only_check(self, identity: str) -> tuple[LimitCheck, tuple[str, str]]:
        check = self._check(self.limits[0], identity)
        entry = (check, single_policy(check))
        _remember(self._only, identity, identity, entry)
        return entry

    def on_request_now(self, ctx: RequestContext) -> Response | Later | None:
        """One limit in this process's memory: an admitted request is decided and its
        headers written here; a refusal (and every other store) takes on_request."""
        if self._only_key is None or self._memory is None:
            return LATER
        identity = self._identity(ctx, self._only_key)
        if identity is None:
            return None  # the key does not apply to this request (e.g. no username)
        check, policy = self._only.get(identity) or self._only_check(identity)
        admitted = self._memory.admit_step(check, self.clock())
        if admitted is None:
            return LATER  # refused, nothing consumed: on_request answers with Retry-After
        ctx.response_headers.extend(
            admitted_fields(policy, admitted.remaining, admitted.reset_after)
        )
        return None

    async def on_request(self, ctx: RequestContext) -> Response | None:
        if self._only_key is not None:
            identity = self._identity(ctx, self._only_key)
            if identity is None:
                return None
            checks = [(self._only.get(identity) or self._only_check(identity))[0]]
        else:
            checks = self.checks(ctx)
            if not checks:
                return None
        try:
            result = await self.store.rate_limit(checks, self.clock())
        except ServiceUnavailable:
            if self._fail_open:
                ctx.audit["rate_limit"] = "fail_open"
                return None
            ctx.audit["rate_limit"] = "fail_closed"
            raise
        headers = ratelimit_headers(result)
        if not result.allowed:
            raise TooManyRequests(
                result.retry_after, reason="ratelimit.exceeded", headers=dict(headers)
            )
        ctx.response_headers.extend(headers)
        return None
