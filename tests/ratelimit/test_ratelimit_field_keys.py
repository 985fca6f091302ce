"""A rate-limit key read from a request field counts one counter per value the upstream reads.

``7`` and ``7.0`` were two counters (JSON readers and binders coerce them alike), an array
or object skipped the limit altogether, a path value with ``;parameters`` (dropped by
servlet containers) had a counter per parameter, and raw non-ASCII bytes in the query
string counted apart from their percent-encoded spelling.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bastion.errors import BadRequest, TooManyRequests
from bastion.policies.ratelimit import LimitSpec, RateLimitPolicy
from bastion.ratelimit import parse_rate
from bastion.state import MemoryStateStore
from bastion.types import LATER, RequestContext
from tests.support.context import request_context

NOW = 1_800_000_000.0


def _policy(key: str) -> RateLimitPolicy:
    spec = LimitSpec("api:a:0", (key,), parse_rate("2/hour"), "gcra", False)
    return RateLimitPolicy([spec], MemoryStateStore(), lambda: NOW)


async def _admitted(policy: RateLimitPolicy, ctx: RequestContext) -> bool:
    try:
        if policy.on_request_now(ctx) is LATER:
            await policy.on_request(ctx)
    except TooManyRequests:
        return False
    return True


def _body(value: Any) -> RequestContext:
    return request_context(
        method="POST",
        headers=[("content-type", "application/json")],
        body=json.dumps({"account": value}).encode(),
    )


async def test_a_number_counts_as_the_number_however_it_is_spelt() -> None:
    policy = _policy("body.account")
    spellings = [7, 7.0, "7", 7]
    assert [await _admitted(policy, _body(v)) for v in spellings] == [True, True, False, False]
    raw = request_context(
        method="POST", headers=[("content-type", "application/json")], body=b'{"account": 7e0}'
    )
    assert not await _admitted(policy, raw)


@pytest.mark.parametrize("value", [[7], {"id": 7}])
async def test_an_object_or_array_key_is_refused(value: Any) -> None:
    with pytest.raises(BadRequest):
        await _admitted(_policy("body.account"), _body(value))


async def test_path_parameters_do_not_make_new_counters() -> None:
    policy = _policy("path.user")

    def ctx(user: str) -> RequestContext:
        request = request_context(method="POST", path=f"/users/{user}/reset")
        request.path_params = {"user": user}
        return request

    outcomes = [await _admitted(policy, ctx(u)) for u in ("alice", "alice;a=1", "alice;b=2")]
    assert outcomes == [True, True, False]


async def test_raw_bytes_in_the_query_string_are_refused() -> None:
    policy = _policy("query.user")
    assert await _admitted(policy, request_context(query=b"user=%C3%A9"))
    with pytest.raises(BadRequest):
        await _admitted(policy, request_context(query="user=é".encode()))
