"""Login protection: per-username backoff and lockout, counted from the upstream's answers.

The username comes from the request (``body.username`` by default). Failures are the
upstream's 401/403 answers for that username; each one grows the delay before the next try
and, past ``max_failures``, locks the username for ``lockout`` seconds. During a lock even
the right password is refused (429, the same answer for every username, so the response
does not reveal whether an account exists).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from bastion.decisions import MISSING, FieldRef
from bastion.errors import BastionError, TooManyRequests
from bastion.policies.request_fields import request_value
from bastion.ratelimit import BackoffPolicy
from bastion.state.base import StateStore
from bastion.types import Policy, RequestContext, Response, UpstreamResponse

__all__ = ["LoginPolicy"]


class LoginPolicy(Policy):
    name = "login"

    def __init__(
        self,
        *,
        scope: str,
        username: FieldRef,
        failure_statuses: frozenset[int],
        backoff: BackoffPolicy,
        store: StateStore,
        clock: Callable[[], float],
    ) -> None:
        self.scope, self.username, self.failures = scope, username, failure_statuses
        self.backoff, self.store, self.clock = backoff, store, clock
        self.needs_request_body = username.source == "body"

    def _key(self, ctx: RequestContext) -> str | None:
        value = request_value(ctx, self.username)
        if value is MISSING or not isinstance(value, str) or not value:
            return None
        normalized = value.strip().casefold()
        digest = hashlib.blake2b(
            normalized.encode("utf-8", "surrogatepass"), digest_size=16
        ).hexdigest()
        return f"login:{self.scope}:{digest}"

    async def on_request(self, ctx: RequestContext) -> Response | None:
        key = self._key(ctx)
        if key is None:
            return None
        ctx.state["login_key"] = key
        ctx.audit["login_key"] = key.rsplit(":", 1)[1]  # a hash: stuffing detection, no name
        now = self.clock()
        state = await self.store.login_state(key, now, self.backoff)
        if state.locked_until is not None and state.locked_until > now:
            ctx.audit["login"] = "locked"
            ctx.audit["login_failures"] = state.failures
            raise TooManyRequests(state.locked_until - now, reason="login.locked")
        return None

    async def on_response(self, ctx: RequestContext, response: UpstreamResponse) -> None:
        key = ctx.state.get("login_key")
        if key is None:
            return
        try:
            if response.status in self.failures:
                state = await self.store.login_failure(key, self.clock(), self.backoff)
                ctx.audit["login"] = (
                    "lockout" if (state.failures >= self.backoff.lockout_after) else "failure"
                )
                ctx.audit["login_failures"] = state.failures
            elif 200 <= response.status < 300:
                await self.store.login_success(key)
                ctx.audit["login"] = "success"
        except BastionError as exc:  # the answer is already decided; record, don't fail it
            ctx.audit["login_state_error"] = exc.reason
