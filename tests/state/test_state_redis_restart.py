"""A private redis-server is killed and restarted under a live store.

While it is down every call raises ServiceUnavailable (fail closed) and the mirror turns
stale; after the restart the same store object works again — the Lua scripts are reloaded
on NOSCRIPT — and the mirror is fresh again.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bastion.errors import ServiceUnavailable
from bastion.ratelimit import BackoffPolicy, LimitCheck, parse_rate
from bastion.state import RedisStateStore
from tests.state._redis_helpers import REDIS_SERVER, private_redis

pytestmark = pytest.mark.skipif(
    not __import__("os").path.exists(REDIS_SERVER), reason="redis-server binary not installed"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_store_fails_closed_while_down_and_recovers_without_recreation() -> None:
    check = [LimitCheck("k", parse_rate("1000/minute"))]
    clock = Clock()
    with private_redis() as server:
        store = RedisStateStore(server.url, prefix="restart", max_staleness=5.0, clock=clock)
        await store.start()
        try:
            assert (await store.rate_limit(check, time.time())).allowed
            assert store.mirror.fresh(clock.now)
            await store.block("ip", "192.0.2.99", None, "before restart")
            await store.revoke_token("jti-before", time.time() + 600)

            server.stop()
            with pytest.raises(ServiceUnavailable) as info:
                await store.rate_limit(check, time.time())
            assert info.value.reason == "state.unavailable"
            assert info.value.status == 503
            with pytest.raises(ServiceUnavailable):
                await store.concurrency_acquire("c", 1, "lease", time.time(), 10)
            with pytest.raises(ServiceUnavailable):
                await store.login_failure("u", time.time(), BackoffPolicy())
            with pytest.raises(ServiceUnavailable):
                await store.block("ip", "192.0.2.1", None, "x")
            assert not await store.healthy()
            # No successful contact while down: once max_staleness has passed on the
            # store's clock, the mirror is no longer trusted.
            clock.now += 6
            assert not store.mirror.fresh(clock.now)

            server.start()  # empty: no keys, no scripts (NOSCRIPT on the next EVALSHA)
            result = await store.rate_limit(check, time.time())
            assert result.allowed
            assert result.checks[0].remaining == 999  # fresh server, fresh counter
            assert await store.concurrency_acquire("c", 1, "lease", time.time(), 10)
            await store.block("ip", "192.0.2.1", None, "after restart")
            # The restarted server (no persistence) lost the old entries: the resync makes
            # the mirror match it again, including the block written after the restart.
            mirror = store.mirror

            def converged() -> bool:
                now = time.time()
                return (
                    mirror.is_blocked("ip", "192.0.2.1", now) is not None
                    and mirror.is_blocked("ip", "192.0.2.99", now) is None
                    and not mirror.is_token_revoked("jti-before", now)
                )

            for _ in range(100):
                if converged():
                    break
                await asyncio.sleep(0.05)
            assert converged()
            assert mirror.fresh(clock.now)
        finally:
            await store.close()


async def test_start_raises_when_redis_is_unreachable() -> None:
    from tests.conftest import free_port

    store = RedisStateStore(f"redis://127.0.0.1:{free_port()}/0", prefix="down")
    with pytest.raises(ServiceUnavailable):
        await store.start()
    assert not store.mirror.fresh(time.time())
    await store.close()
