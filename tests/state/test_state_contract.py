"""One contract, two stores: the memory store and the Redis store behave the same.

Redis runs against the machine's real server (``redis_url``) with a unique key prefix per
test and ``time_source="client"`` so the injected clock drives both stores.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from bastion.errors import TooManyRequests
from bastion.ratelimit import (
    BackoffPolicy,
    ConcurrencyLimiter,
    LimitCheck,
    LoginBackoff,
    evaluate_checks,
    parse_quota,
    parse_rate,
)
from bastion.ratelimit.step import State
from bastion.state import ChangeEvent, MemoryStateStore, RedisStateStore, StateStore
from tests.state._redis_helpers import delete_prefix, unique_prefix

NOW = 1_800_000_000.0


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        memory = MemoryStateStore()
        await memory.start()
        yield memory
        await memory.close()
        return
    url = request.getfixturevalue("redis_url")
    prefix = unique_prefix()
    redis_store = RedisStateStore(url, prefix=prefix, time_source="client")
    await redis_store.start()
    try:
        yield redis_store
    finally:
        await redis_store.close()
        delete_prefix(url, prefix)


async def eventually(predicate: Callable[[], bool], deadline: float = 2.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


def test_both_stores_satisfy_the_protocol() -> None:
    assert isinstance(MemoryStateStore(), StateStore)
    assert isinstance(RedisStateStore("redis://127.0.0.1:1/0"), StateStore)


async def test_rate_limit_matches_the_pure_reference(store: StateStore) -> None:
    checks = [
        LimitCheck("ip:198.51.100.7", parse_rate("5/minute", burst=3), name="ip"),
        LimitCheck("user:bob", parse_rate("4/minute"), "sliding_window", name="user"),
        LimitCheck("key:k1", parse_quota("6/month"), "quota", name="monthly"),
    ]
    reference: dict[str, State] = {}
    for i in range(12):
        now = NOW + i * 7.3
        expected, writes = evaluate_checks(checks, reference, now)
        for key, (state, _ttl) in writes.items():
            reference[key] = state
        got = await store.rate_limit(checks, now)
        assert got.allowed == expected.allowed, i
        assert got.denied_by == expected.denied_by, i
        assert got.retry_after == pytest.approx(expected.retry_after, abs=1e-3)
        for g, e in zip(got.checks, expected.checks, strict=True):
            assert (g.allowed, g.remaining, g.limit) == (e.allowed, e.remaining, e.limit)
            assert g.reset_after == pytest.approx(e.reset_after, abs=1e-3)


async def test_refused_requests_consume_nothing(store: StateStore) -> None:
    wide = LimitCheck("ip:1", parse_rate("3/minute"))
    narrow = LimitCheck("user:1", parse_rate("1/minute"))
    assert (await store.rate_limit([wide, narrow], NOW)).allowed
    for _ in range(5):
        refused = await store.rate_limit([wide, narrow], NOW)
        assert not refused.allowed
        assert refused.denied_by == 1
    admitted = [(await store.rate_limit([wide], NOW)).allowed for _ in range(3)]
    assert admitted == [True, True, False]


async def test_keys_are_independent(store: StateStore) -> None:
    rate = parse_rate("1/hour")
    assert (await store.rate_limit([LimitCheck("a", rate)], NOW)).allowed
    assert not (await store.rate_limit([LimitCheck("a", rate)], NOW)).allowed
    assert (await store.rate_limit([LimitCheck("b", rate)], NOW)).allowed


async def test_concurrency_leases(store: StateStore) -> None:
    assert await store.concurrency_acquire("c", 2, "l1", NOW, 30)
    assert await store.concurrency_acquire("c", 2, "l2", NOW, 30)
    assert not await store.concurrency_acquire("c", 2, "l3", NOW, 30)
    assert await store.concurrency_acquire("c", 2, "l1", NOW, 30)  # renewing is allowed
    await store.concurrency_release("c", "l1")
    assert await store.concurrency_acquire("c", 2, "l3", NOW, 30)
    # A crashed holder's lease expires: l2 and l3 lapse after their ttl.
    assert await store.concurrency_acquire("c", 2, "l4", NOW + 31, 30)
    assert await store.concurrency_acquire("c", 2, "l5", NOW + 31, 30)


async def test_concurrency_limiter_releases_on_errors(store: StateStore) -> None:
    limiter = ConcurrencyLimiter(store, 1, ttl=30, clock=lambda: NOW)

    async def handler() -> None:
        async with limiter.slot("svc"):
            with pytest.raises(TooManyRequests):
                async with limiter.slot("svc"):
                    pass
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        await handler()
    async with limiter.slot("svc"):
        pass


async def test_concurrency_limiter_releases_on_cancellation(store: StateStore) -> None:
    limiter = ConcurrencyLimiter(store, 1, ttl=30, clock=lambda: NOW)
    entered = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot("svc"):
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(hold())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with limiter.slot("svc"):
        pass


async def test_login_backoff(store: StateStore) -> None:
    policy = BackoffPolicy(free_failures=2, base_delay=1, factor=2, max_delay=8, lockout_after=5)
    backoff = LoginBackoff(store, policy)
    assert await backoff.check("alice", NOW) is None
    states = [await backoff.record_failure("alice", NOW + i) for i in range(4)]
    assert [s.failures for s in states] == [1, 2, 3, 4]
    assert [s.locked_until for s in states] == [None, None, NOW + 2 + 1, NOW + 3 + 2]
    assert await backoff.check("alice", NOW + 4) == NOW + 5
    assert await backoff.check("alice", NOW + 5) is None
    locked = await backoff.record_failure("alice", NOW + 10)
    assert locked.locked_until == NOW + 10 + policy.lockout_duration
    assert await backoff.check("bob", NOW) is None
    await backoff.record_success("alice")
    assert await backoff.check("alice", NOW + 11) is None
    assert (await store.login_state("alice", NOW + 11, policy)).failures == 0


async def test_old_failures_are_forgotten(store: StateStore) -> None:
    policy = BackoffPolicy(free_failures=0, reset_after=60, lockout_after=100)
    for i in range(3):
        await store.login_failure("carol", NOW + i, policy)
    later = await store.login_failure("carol", NOW + 200, policy)
    assert later.failures == 1


async def test_revocations_and_blocks_reach_the_mirror(store: StateStore) -> None:
    now = time.time()
    events: list[ChangeEvent] = []
    store.on_change(events.append)
    await store.revoke_token("jti-1", now + 300)
    await store.revoke_subject("alice", now - 5)
    await store.block("ip", "203.0.113.0/24", None, "abuse")
    await store.block("api_key", "key-9", now + 60, "leaked")
    mirror = store.mirror
    assert mirror.is_token_revoked("jti-1", now)
    assert not mirror.is_token_revoked("jti-2", now)
    assert mirror.subject_not_before("alice") == pytest.approx(now - 5)
    hit = mirror.is_blocked("ip", "203.0.113.77", now)
    assert hit is not None
    assert hit.reason == "abuse"
    assert mirror.is_blocked("api_key", "key-9", now) is not None
    assert mirror.is_blocked("api_key", "key-9", now + 61) is None
    assert mirror.fresh(now)
    listed = {(b.kind, b.value) for b in await store.list_blocks()}
    assert listed == {("ip", "203.0.113.0/24"), ("api_key", "key-9")}
    await store.unblock("ip", "203.0.113.0/24")
    assert mirror.is_blocked("ip", "203.0.113.77", now) is None
    assert [e.kind for e in events if e.kind != "resync"] == [
        "revoke_token",
        "revoke_subject",
        "block",
        "block",
        "unblock",
    ]


async def test_block_rejects_bad_values(store: StateStore) -> None:
    with pytest.raises(ValueError, match="invalid IP"):
        await store.block("ip", "not-an-ip", None, "x")
    with pytest.raises(ValueError, match="unknown block kind"):
        await store.block("host", "x", None, "x")  # type: ignore[arg-type]


async def test_published_events_reach_subscribers(store: StateStore) -> None:
    events: list[ChangeEvent] = []
    store.on_change(events.append)
    await store.publish_event({"type": "alert", "severity": "high", "count": 3})
    assert await eventually(lambda: any(e.kind == "event" for e in events))
    event = next(e for e in events if e.kind == "event")
    assert dict(event.data) == {"type": "alert", "severity": "high", "count": 3}


async def test_healthy(store: StateStore) -> None:
    assert await store.healthy()


async def test_random_sequences_match_the_pure_reference(store: StateStore) -> None:
    import random

    rng = random.Random(20261128)
    pool = [
        LimitCheck("r1", parse_rate("7/10s", burst=4), "gcra"),
        LimitCheck("r2", parse_rate("5/10s"), "sliding_window"),
        LimitCheck("r3", parse_quota("25/day"), "quota"),
        LimitCheck("r1", parse_rate("3/s"), "gcra"),
    ]
    reference: dict[str, State] = {}
    now = NOW - 3.0
    for i in range(150):
        now += rng.choice([0.0, 0.0, 0.05, 0.3, 1.1, 2.7])
        chosen = rng.sample(pool, rng.randint(1, 3))
        cost = rng.choice([0, 1, 1, 1, 2])
        checks = [LimitCheck(c.key, c.rate, c.algorithm, cost) for c in chosen]
        expected, writes = evaluate_checks(checks, reference, now)
        for key, (state, _ttl) in writes.items():
            reference[key] = state
        got = await store.rate_limit(checks, now)
        assert (got.allowed, got.denied_by) == (expected.allowed, expected.denied_by), i
        assert [o.remaining for o in got.checks] == [o.remaining for o in expected.checks], i
        assert got.retry_after == pytest.approx(expected.retry_after, abs=1e-3), i


async def test_remaining_never_exceeds_a_full_bucket_at_very_high_rates(store: StateStore) -> None:
    """The 1 µs tolerance is worth EPSILON / T units when T is tiny: capped, on both stores."""
    check = LimitCheck("ip:203.0.113.1", parse_rate("100000000/second"), name="ip")
    first = await store.rate_limit([check], NOW)
    assert first.allowed
    assert first.checks[0].remaining == 100_000_000 - 1
    again = await store.rate_limit([check], NOW + 5)
    assert again.checks[0].remaining <= 100_000_000 - 1


async def test_a_block_never_shortens_an_active_one(store: StateStore) -> None:
    """A playbook's 10-minute block of a client the operator had blocked for good used to
    replace the operator's block, everywhere: ten minutes later the client was back."""
    now = time.time()
    await store.block("principal", "u-eve", None, "operator")
    await store.block("principal", "u-eve", now + 600, "playbook")
    [entry] = [b for b in await store.list_blocks() if b.value == "u-eve"]
    assert (entry.until, entry.reason) == (None, "operator")
    assert store.mirror.is_blocked("principal", "u-eve", now + 3600) is not None

    await store.block("ip", "198.51.100.9", now + 3600, "long")
    await store.block("ip", "198.51.100.9", now + 60, "short")
    assert store.mirror.is_blocked("ip", "198.51.100.9", now + 1800) is not None
    await store.block("ip", "198.51.100.9", now + 7200, "longer")  # extending is fine
    [ip] = [b for b in await store.list_blocks() if b.value == "198.51.100.9"]
    assert ip.until == pytest.approx(now + 7200)
    await store.block("ip", "198.51.100.9", None, "for good")
    [ip] = [b for b in await store.list_blocks() if b.value == "198.51.100.9"]
    assert ip.until is None

    await store.unblock("principal", "u-eve")  # lifting it stays the operator's way
    await store.block("principal", "u-eve", now + 60, "again")
    [entry] = [b for b in await store.list_blocks() if b.value == "u-eve"]
    assert entry.reason == "again"
