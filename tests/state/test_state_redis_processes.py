"""Several OS processes, each with its own RedisStateStore, share exact state."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.state import RedisStateStore
from tests.state._redis_helpers import delete_prefix, unique_prefix

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    value = unique_prefix()
    yield value
    delete_prefix(redis_url, value)


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.state._state_worker", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def admitted_by_two_processes(
    url: str, prefix: str, time_source: str, now: float, rate: str = "100/minute"
) -> int:
    workers = [spawn("limit", url, prefix, "200", time_source, repr(now), rate) for _ in range(2)]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:  # release both at once: 400 concurrent attempts
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        counts = [int(w.communicate(timeout=60)[0].strip()) for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert all(w.returncode == 0 for w in workers)
    return sum(counts)


@pytest.mark.services
def test_exactly_100_of_400_admitted_across_two_processes(redis_url: str, prefix: str) -> None:
    # The caller's clock is frozen (time_source="client"), so the result cannot depend on
    # how long the run takes: both processes pass the same now.
    assert admitted_by_two_processes(redis_url, prefix, "client", 1_800_000_000.0) == 100


@pytest.mark.services
def test_server_clock_makes_skewed_gateways_agree(redis_url: str, prefix: str) -> None:
    # time_source="server": the script reads redis TIME and the absurd caller clock (the
    # epoch) is ignored. Real time passes during the run, so the rate is 100/hour: no unit
    # refills (GCRA: one per 36 s) and a window edge admits nothing extra, however slow
    # the machine is.
    assert admitted_by_two_processes(redis_url, prefix, "server", 0.0, "100/hour") == 100


@pytest.mark.services
async def test_block_and_revocation_propagate_to_another_process(
    redis_url: str, prefix: str
) -> None:
    store = RedisStateStore(redis_url, prefix=prefix)
    await store.start()
    try:
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.state._state_worker", "write", redis_url, prefix, cwd=ROOT
        )
        assert await asyncio.wait_for(writer.wait(), timeout=30) == 0
        # The other process has finished writing: the change must be here within 1 s.
        deadline = time.monotonic() + 1.0
        mirror = store.mirror
        while time.monotonic() < deadline:
            now = time.time()
            if mirror.is_blocked("ip", "198.51.100.9", now) and mirror.is_token_revoked(
                "jti-propagated", now
            ):
                break
            await asyncio.sleep(0.01)
        now = time.time()
        assert mirror.is_blocked("ip", "198.51.100.9", now) is not None
        assert mirror.is_token_revoked("jti-propagated", now)
    finally:
        await store.close()
