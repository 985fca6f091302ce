"""Login protection: per-username backoff and lockout.

The username comes from the request (``body.username`` by default), compared as the most
lenient account stores read it (NFKC, case-folded, trimmed: ``ＡＬＩＣＥ`` is ``alice``);
one that is not a string is a 400 (an upstream may well read ``5551234`` or
``["alice"]`` as the account). Every attempt is counted as a failure *before* it is
forwarded and given back by a 2xx answer, so parallel guesses cannot all pass the check
before the first answer comes back: an attempt that finds, once counted, that others were
counted meanwhile within the backoff is refused too. Each failure grows the delay before
the next try and, past ``max_failures``, locks the username for ``lockout`` seconds. During
a lock even the right password is refused (429, the same answer for every username, so the
response does not reveal whether an account exists). An answer that is neither 2xx nor a
failure status (a 500) stays counted.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable

from bastion.contract.messages import pointer
from bastion.decisions import MISSING, FieldRef
from bastion.errors import BastionError, TooManyRequests, ValidationFailed
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
        if value is MISSING or value == "":
            return None
        if not isinstance(value, str):
            where = pointer(f"/{self.username.source}", self.username.path)
            raise ValidationFailed(
                "The login username must be a string.",
                errors=[{"pointer": where, "detail": "must be of type string"}],
                reason="login.username",
            )
        folded = unicodedata.normalize("NFKC", value).casefold()
        normalized = unicodedata.normalize("NFKC", folded).strip()
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
        counted = await self.store.login_failure(key, now, self.backoff)
        ctx.state["login_failures"] = counted.failures
        if counted.failures > state.failures + 1 and self.backoff.delay(counted.failures - 1):
            # Attempts of the same moment were counted between the look and the count:
            # past the free ones, each must wait for the delay the one before it set.
            ctx.audit["login"] = "locked"
            ctx.audit["login_failures"] = counted.failures
            wait = (counted.locked_until or now) - now
            raise TooManyRequests(max(wait, 1.0), reason="login.locked")
        return None

    async def on_response(self, ctx: RequestContext, response: UpstreamResponse) -> None:
        key = ctx.state.get("login_key")
        if key is None:
            return
        failures = int(ctx.state.get("login_failures", 0))
        try:
            if response.status in self.failures:  # counted before it was forwarded
                ctx.audit["login"] = (
                    "lockout" if failures >= self.backoff.lockout_after else "failure"
                )
                ctx.audit["login_failures"] = failures
            elif 200 <= response.status < 300:
                await self.store.login_success(key)
                ctx.audit["login"] = "success"
            else:
                ctx.audit["login"] = "counted"
                ctx.audit["login_failures"] = failures
        except BastionError as exc:  # the answer is already decided; record, don't fail it
            ctx.audit["login_state_error"] = exc.reason
