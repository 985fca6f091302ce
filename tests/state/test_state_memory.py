"""Memory-store specifics: bounded memory under attacker-chosen keys."""

from __future__ import annotations

from bastion.ratelimit import LimitCheck, parse_rate
from bastion.ratelimit.checks import outcome_of
from bastion.state import MemoryStateStore

NOW = 1_800_000_000.0


async def test_expired_counters_are_swept() -> None:
    store = MemoryStateStore(sweep_every=100)
    rate = parse_rate("5/second")
    for i in range(1000):  # 1000 distinct keys, e.g. random usernames
        await store.rate_limit([LimitCheck(f"user:{i}", rate)], NOW)
    later = NOW + 10  # every GCRA state has expired (TAT passed)
    # Swept within as many operations as there were counters (amortised: docs in memory.py)
    for i in range(1000 + 100):
        await store.rate_limit([LimitCheck(f"fresh:{i % 3}", rate)], later)
    assert len(store._limits) <= 3


async def test_concurrency_leases_of_crashed_holders_are_swept() -> None:
    store = MemoryStateStore(sweep_every=10)
    for i in range(50):
        assert await store.concurrency_acquire(f"k{i}", 1, "lease", NOW, 1.0)
    for i in range(50 + 10):
        await store.concurrency_acquire("other", 100, f"l{i}", NOW + 5, 1.0)
    assert set(store._leases) == {"other"}


async def test_admit_step_agrees_with_rate_limit_and_refuses_without_consuming() -> None:
    fast, full = MemoryStateStore(), MemoryStateStore()
    check = LimitCheck("k", parse_rate("3/minute"))
    now = 1_800_000_000.0
    for i in range(3):
        admitted = fast.admit_step(check, now + i)
        reference = await full.rate_limit([check], now + i)
        assert admitted is not None
        assert reference.allowed
        assert outcome_of(check, admitted) == reference.checks[0]
    assert fast.admit_step(check, now + 3) is None  # refused: the caller takes the full path
    refused = await fast.rate_limit([check], now + 3)
    assert not refused.allowed
    assert refused == await full.rate_limit([check], now + 3)  # nothing was consumed
