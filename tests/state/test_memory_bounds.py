"""The in-memory store stays bounded and cheap under floods of client-chosen keys."""

from __future__ import annotations

import asyncio

import pytest

from bastion.ratelimit import LimitCheck, parse_rate
from bastion.ratelimit.backoff import BackoffPolicy
from bastion.state import memory
from bastion.state.memory import MemoryStateStore

POLICY = BackoffPolicy(reset_after=60)


def test_login_failures_are_swept_oldest_first_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_LOGINS_MAX", 5_000)
    monkeypatch.setattr(memory, "_LOGINS_SWEEP_ABOVE", 1_000)
    store = MemoryStateStore()

    async def run() -> None:
        await store.login_failure("target", 0.0, POLICY)
        await store.login_failure("target", 1.0, POLICY)
        # a flood of fresh usernames, one second apart: older records reset as it goes
        for i in range(20_000):
            await store.login_failure(f"user-{i}", 2.0 + i, POLICY)
        assert len(store._logins) <= 64 + 1_000  # reset ones are gone, a step at a time
        assert (await store.login_state("target", 20_002.0, POLICY)).failures == 0
        # the same flood within one minute: nothing resets, the cap holds
        for i in range(20_000):
            await store.login_failure(f"burst-{i}", 30_000.0 + i / 1000, POLICY)
        assert len(store._logins) <= 5_000
        newest = await store.login_state("burst-19999", 30_020.0, POLICY)
        assert newest.failures == 1

    asyncio.run(run())


def test_lapsed_blocks_are_dropped_by_the_sweep() -> None:
    """Playbook blocks expire; with the memory backend nothing ever dropped them."""
    store = MemoryStateStore(sweep_every=10, clock=lambda: 1_000.0)

    async def run() -> None:
        for i in range(50):
            await store.block("ip", f"198.51.100.{i}", 1_100.0, "test")
        await store.block("ip", "203.0.113.1", None, "for good")
        assert len(store.mirror.blocks()) == 51
        for _ in range(10):  # one sweep, after the blocks lapsed
            store.admit_step(_check(), 2_000.0)
        assert [e.value for e in store.mirror.blocks()] == ["203.0.113.1"]

    asyncio.run(run())


def test_sweeps_are_amortised_over_the_counters_they_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sweep reads every counter: with many clients counted it must come less often."""
    store = MemoryStateStore(sweep_every=10)
    sweeps: list[int] = []
    sweep = store._sweep
    monkeypatch.setattr(
        store, "_sweep", lambda now: (sweeps.append(len(store._limits)), sweep(now))
    )
    hourly = parse_rate("5/hour")
    for i in range(20_000):  # 20,000 clients, each counted for an hour
        store.admit_step(LimitCheck(key=f"ip-{i}", rate=hourly, algorithm="gcra"), 0.0)
    assert len(store._limits) == 20_000
    read = sum(sweeps)
    assert read <= 2 * 20_000  # every 10 operations, they would have read 20 million
    # Once they lapse, they go within as many operations as there were counters.
    for _ in range(20_000 + 10):
        store.admit_step(_check(), 10_000.0)
    assert len(store._limits) == 1


def _check() -> LimitCheck:
    return LimitCheck(key="k", rate=parse_rate("1000/second"), algorithm="gcra", name="ip")
