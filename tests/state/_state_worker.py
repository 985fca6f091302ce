"""A separate gateway process for the multi-process state tests.

``python -m tests.state._state_worker limit URL PREFIX N TIME_SOURCE NOW RATE`` waits for a line
on stdin (the start signal), fires N concurrent ``rate_limit`` calls and prints how many
were admitted. ``... write URL PREFIX`` blocks an IP and revokes a token, then exits.
"""

from __future__ import annotations

import asyncio
import sys
import time

from bastion.ratelimit import LimitCheck, parse_rate
from bastion.state import RedisStateStore


async def limit(url: str, prefix: str, n: int, time_source: str, now: float, rate: str) -> None:
    store = RedisStateStore(url, prefix=prefix, time_source=time_source)  # type: ignore[arg-type]
    await store.start()
    checks = [
        LimitCheck("route:/orders", parse_rate(rate), "gcra"),
        LimitCheck("ip:192.0.2.1", parse_rate(rate), "sliding_window"),
    ]
    print("ready", flush=True)
    sys.stdin.readline()
    results = await asyncio.gather(*(store.rate_limit(checks, now) for _ in range(n)))
    print(sum(r.allowed for r in results), flush=True)
    await store.close()


async def write(url: str, prefix: str) -> None:
    store = RedisStateStore(url, prefix=prefix)
    await store.start()
    await store.block("ip", "198.51.100.0/24", None, "propagation test")
    await store.revoke_token("jti-propagated", time.time() + 600)
    await store.close()


def main() -> None:
    mode, url, prefix, *rest = sys.argv[1:]
    if mode == "limit":
        asyncio.run(limit(url, prefix, int(rest[0]), rest[1], float(rest[2]), rest[3]))
    else:
        asyncio.run(write(url, prefix))


if __name__ == "__main__":
    main()
