"""Throughput of ``StateStore.rate_limit()`` with two checks (GCRA + sliding window).

Run from the repository root::

    .venv/bin/python -m tests.state.bench_state_rate_limit [--redis redis://127.0.0.1:6379/0]

Prints calls per second for the memory store and for Redis (sequential: one call at a
time, i.e. latency-bound; concurrent: 32 calls in flight, as under gateway load), next to
a bare PING loop on the same connection pool as the reference.
Keys are spread over 1000 partitions so the numbers include real key churn.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from bastion.ratelimit import LimitCheck, parse_rate
from bastion.state import MemoryStateStore, RedisStateStore, StateStore
from tests.state._redis_helpers import delete_prefix

RATE_IP = parse_rate("1000000/minute")
RATE_ROUTE = parse_rate("1000000/minute")


def checks(i: int) -> list[LimitCheck]:
    return [
        LimitCheck(f"ip:10.0.{i % 1000 // 250}.{i % 250}", RATE_IP, "gcra"),
        LimitCheck(f"route:/orders|sub:{i % 1000}", RATE_ROUTE, "sliding_window"),
    ]


async def sequential(store: StateStore, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await store.rate_limit(checks(i), time.time())
    return n / (time.perf_counter() - start)


async def concurrent(store: StateStore, n: int, in_flight: int = 32) -> float:
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await store.rate_limit(checks(i), time.time())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return n / (time.perf_counter() - start)


async def ping_baseline(store: RedisStateStore, n: int) -> float:
    client = store._client
    start = time.perf_counter()
    for _ in range(n):
        await client.ping()
    return n / (time.perf_counter() - start)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("-n", type=int, default=20000)
    args = parser.parse_args()
    memory = MemoryStateStore()
    print(f"memory  sequential : {await sequential(memory, args.n * 5):>9.0f} calls/s")
    prefix = "bench" + uuid.uuid4().hex[:8]
    redis_store = RedisStateStore(args.redis, prefix=prefix)
    await redis_store.start()
    try:
        ping = await ping_baseline(redis_store, args.n // 2)
        print(f"redis   PING seq   : {ping:>9.0f} calls/s (bare round trip, reference)")
        print(f"redis   sequential : {await sequential(redis_store, args.n // 2):>9.0f} calls/s")
        print(f"redis   32 parallel: {await concurrent(redis_store, args.n, 32):>9.0f} calls/s")
    finally:
        await redis_store.close()
        delete_prefix(args.redis, prefix)


if __name__ == "__main__":
    asyncio.run(main())
