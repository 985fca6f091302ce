"""The rate-limit policy's short path (one limit, memory store) answers like the general one."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.errors import TooManyRequests
from bastion.policies.ratelimit import LimitSpec, RateLimitPolicy
from bastion.ratelimit import LimitCheck, LimitResult, parse_rate
from bastion.state import MemoryStateStore
from bastion.types import LATER

NOW = 1_800_000_000.0


class _Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class _Ctx:
    """The few request attributes the policy reads for an ``ip`` key."""

    def __init__(self, ip: str) -> None:
        self.client_ip = ip
        self.response_headers: list[tuple[str, str]] = []
        self.audit: dict[str, Any] = {}


class _Delegating:
    """A store that is not a MemoryStateStore, so the policy takes its general path."""

    def __init__(self) -> None:
        self.inner = MemoryStateStore()

    async def rate_limit(self, checks: list[LimitCheck], now: float) -> LimitResult:
        return await self.inner.rate_limit(checks, now)


async def _answer(policy: RateLimitPolicy, ip: str) -> tuple[str, Any]:
    """As the gateway asks: the synchronous shortcut first, on_request when it defers."""
    ctx: Any = _Ctx(ip)
    try:
        if policy.on_request_now(ctx) is LATER:
            await policy.on_request(ctx)
    except TooManyRequests as refused:
        return "429", (refused.retry_after, sorted(refused.headers.items()))
    return "ok", ctx.response_headers


@pytest.mark.parametrize("rate", ["3/minute", "10/second", "5/hour"])
async def test_short_path_headers_and_refusals_equal_the_general_path(rate: str) -> None:
    clock = _Clock()
    spec = LimitSpec("api:a:0", ("ip",), parse_rate(rate), "gcra", False)
    short = RateLimitPolicy([spec], MemoryStateStore(), clock)
    general = RateLimitPolicy([spec], _Delegating(), clock)  # type: ignore[arg-type]
    assert short._memory is not None
    assert general._memory is None
    answers = []
    for step in range(40):
        clock.now = NOW + step * 0.037
        ip = "198.51.100.1" if step % 5 else "198.51.100.2"
        got = await _answer(short, ip)
        assert got == await _answer(general, ip), step
        answers.append(got[0])
    assert "429" in answers
    assert "ok" in answers


async def test_on_request_alone_answers_like_the_shortcut() -> None:
    """Tracing wraps on_request only: it must give the same answers without the shortcut."""
    clock = _Clock()
    spec = LimitSpec("api:a:0", ("ip",), parse_rate("3/minute"), "gcra", False)
    shortcut = RateLimitPolicy([spec], MemoryStateStore(), clock)
    alone = RateLimitPolicy([spec], MemoryStateStore(), clock)
    for step in range(6):
        clock.now = NOW + step
        expected = await _answer(shortcut, "203.0.113.5")
        ctx: Any = _Ctx("203.0.113.5")
        try:
            await alone.on_request(ctx)
            got: tuple[str, Any] = ("ok", ctx.response_headers)
        except TooManyRequests as refused:
            got = ("429", (refused.retry_after, sorted(refused.headers.items())))
        assert got == expected, step


def test_long_identities_are_hashed_each_time_not_remembered() -> None:
    """A body or header field is the client's choice: 10,000 remembered 1 MB values held
    10 GB. Identities beyond 256 characters are not memoised (same checks either way)."""
    from bastion.policies import ratelimit

    spec = LimitSpec("api:a:0", ("ip",), parse_rate("5/second"), "gcra", False)
    policy = RateLimitPolicy([spec], MemoryStateStore(), _Clock())
    long_identity = "x" * 100_000
    first = policy._only_check(long_identity)
    assert long_identity not in policy._only
    assert policy._only_check(long_identity)[0] == first[0]
    short = policy._only_check("short")
    assert policy._only["short"] == short
    assert ratelimit._MEMO_MAX_CHARS == 256
