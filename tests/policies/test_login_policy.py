"""Login lockout against guesses sent at once, and usernames spelt another way.

Failures used to be counted from the upstream's answers only: until the first 401 came
back nothing was locked, so 50 guesses sent together all reached the upstream. A username
that was not a string was never counted, and a full-width ``ａｌｉｃｅ`` (which NFKC-reading
account stores such as Django's read as ``alice``) got a fresh counter.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bastion.decisions import parse_field_ref
from bastion.errors import BadRequest, TooManyRequests
from bastion.policies.login import LoginPolicy
from bastion.ratelimit import BackoffPolicy
from bastion.state.memory import MemoryStateStore
from bastion.types import RequestContext, UpstreamResponse
from tests.support.context import request_context

NOW = 1_800_000_000.0


class _SlowStore(MemoryStateStore):
    """The memory store, answering only after a switch to other tasks (as Redis does)."""

    async def login_state(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return await super().login_state(*args, **kwargs)

    async def login_failure(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return await super().login_failure(*args, **kwargs)


def _policy(store: MemoryStateStore, **backoff: Any) -> LoginPolicy:
    return LoginPolicy(
        scope="test",
        username=parse_field_ref("body.username"),
        failure_statuses=frozenset({401, 403}),
        backoff=BackoffPolicy(**backoff),
        store=store,
        clock=lambda: NOW,
    )


def _attempt(username: Any) -> RequestContext:
    body = json.dumps({"username": username, "password": "guess"}).encode()
    return request_context(
        method="POST",
        path="/login",
        headers=[("content-type", "application/json")],
        body=body,
    )


async def _forwarded(policy: LoginPolicy, username: Any) -> bool:
    ctx = _attempt(username)
    try:
        await policy.on_request(ctx)
    except TooManyRequests:
        return False
    await policy.on_response(ctx, UpstreamResponse(401, []))
    return True


@pytest.mark.parametrize("store", [MemoryStateStore(), _SlowStore()], ids=["memory", "slow"])
async def test_guesses_sent_at_once_reach_the_upstream_only_as_far_as_the_policy_allows(
    store: MemoryStateStore,
) -> None:
    policy = _policy(store, free_failures=3, base_delay=1.0, lockout_after=5)
    outcomes = await asyncio.gather(*(_forwarded(policy, "bob") for _ in range(50)))
    # free failures (3), and the one after them: the next must wait a second
    assert sum(outcomes) == 4


async def test_without_backoff_the_lockout_still_bounds_guesses_sent_at_once() -> None:
    policy = _policy(_SlowStore(), free_failures=0, base_delay=0.0, lockout_after=3)
    outcomes = await asyncio.gather(*(_forwarded(policy, "bob") for _ in range(50)))
    assert sum(outcomes) == 3


async def test_a_success_gives_the_counted_attempt_back() -> None:
    store = MemoryStateStore()
    policy = _policy(store, free_failures=0, base_delay=0.0, lockout_after=3)
    for _ in range(10):
        ctx = _attempt("alice")
        await policy.on_request(ctx)
        await policy.on_response(ctx, UpstreamResponse(200, []))
    assert ctx.audit["login"] == "success"


@pytest.mark.parametrize("username", [5551234, ["alice"], {"name": "alice"}, True])
async def test_a_username_that_is_not_a_string_is_refused(username: Any) -> None:
    with pytest.raises(BadRequest):
        await _policy(MemoryStateStore()).on_request(_attempt(username))


async def test_compatibility_spellings_count_as_the_same_username() -> None:
    store = MemoryStateStore()
    policy = _policy(store, free_failures=0, base_delay=0.0, lockout_after=3)
    for _ in range(3):
        assert await _forwarded(policy, "alice")
    for spelling in ("ａｌｉｃｅ", "ａlice", "ALICE", " Alice ", "ＡＬＩＣＥ"):
        assert not await _forwarded(policy, spelling), spelling
