"""Automatic pipelining of rate-limit checks (bastion.state.redis_batch) against real Redis.

Batching must be invisible to callers: limits stay exact under concurrency, each caller
gets its own reply or error, a caller that goes away does not disturb the others, and a
stalled Redis fails the waiting requests closed without handing late replies to later ones.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from bastion.errors import ServiceUnavailable
from bastion.ratelimit import LimitCheck, parse_rate
from bastion.state import RedisStateStore
from bastion.state.redis_batch import CommandBatcher, _Resp, pack
from tests.state._redis_helpers import REDIS_SERVER, delete_prefix, private_redis, unique_prefix


async def test_concurrent_checks_are_exact_and_share_round_trips(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    send = _Resp.send

    def counting(self: _Resp, data: bytes, futures: list[asyncio.Future[object]]) -> None:
        batches.append(len(futures))
        send(self, data, futures)

    monkeypatch.setattr(_Resp, "send", counting)
    prefix = unique_prefix()
    store = RedisStateStore(redis_url, prefix=prefix)
    await store.start()
    try:
        check = [LimitCheck("login:alice", parse_rate("100/minute"))]
        results = await asyncio.gather(*(store.rate_limit(check, time.time()) for _ in range(300)))
    finally:
        await store.close()
        delete_prefix(redis_url, prefix)
    assert sum(r.allowed for r in results) == 100
    refused = [r for r in results if not r.allowed]
    assert all(r.retry_after > 0 for r in refused)
    assert sum(batches) == 300
    assert len(batches) < 300 / 10  # many checks per round trip, not one each


async def test_each_caller_gets_its_own_reply_or_error(redis_url: str) -> None:
    prefix = unique_prefix()
    client = Redis.from_url(redis_url)
    batcher = CommandBatcher(client, timeout=2.0)
    try:
        await client.lpush(f"{prefix}:list", "x")
        good = batcher.execute(pack("INCRBY", f"{prefix}:n", 5))
        bad = batcher.execute(pack("INCR", f"{prefix}:list"))  # WRONGTYPE
        again = batcher.execute(pack("INCRBY", f"{prefix}:n", 2))
        assert await good == 5
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await bad
        assert await again == 7
    finally:
        await batcher.close()
        await client.delete(f"{prefix}:list", f"{prefix}:n")
        await client.aclose()


async def test_a_cancelled_caller_leaves_the_batch_intact(redis_url: str) -> None:
    prefix = unique_prefix()
    client = Redis.from_url(redis_url)
    batcher = CommandBatcher(client, timeout=2.0)
    try:
        first = batcher.execute(pack("INCR", f"{prefix}:n"))
        gone = batcher.execute(pack("INCR", f"{prefix}:n"))
        last = batcher.execute(pack("INCR", f"{prefix}:n"))
        gone.cancel()
        assert (await first, await last) == (1, 3)  # the cancelled one still ran, in order
        assert await batcher.execute(pack("GET", f"{prefix}:n")) == b"3"
    finally:
        await batcher.close()
        await client.delete(f"{prefix}:n")
        await client.aclose()


@pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server binary not installed")
async def test_a_stalled_redis_fails_closed_and_late_replies_go_nowhere() -> None:
    check = [LimitCheck("a", parse_rate("100/minute"))]
    other = [LimitCheck("b", parse_rate("100/minute"))]
    with private_redis() as server:
        store = RedisStateStore(server.url, prefix="stall", timeout=0.5)
        await store.start()
        try:
            assert (await store.rate_limit(check, time.time())).checks[0].remaining == 99
            assert server._proc is not None
            os.kill(server._proc.pid, signal.SIGSTOP)
            try:
                stalled = await asyncio.gather(
                    *(store.rate_limit(check, time.time()) for _ in range(3)),
                    return_exceptions=True,
                )
            finally:
                os.kill(server._proc.pid, signal.SIGCONT)
            assert all(isinstance(r, ServiceUnavailable) for r in stalled), stalled
            # Redis runs the stalled commands once it wakes up (remaining 98, 97, 96 on
            # "a"); those late replies must not be read as the answers to new checks.
            after = [await store.rate_limit(other, time.time()) for _ in range(3)]
            assert [r.checks[0].remaining for r in after] == [99, 98, 97]
        finally:
            await store.close()


@pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server binary not installed")
async def test_password_database_and_unix_socket_from_the_url(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    extra = ["--requirepass", "s3cret-pw", "--unixsocket", str(socket_path)]
    check = [LimitCheck("k", parse_rate("10/minute"))]
    with private_redis(extra) as server:
        tcp = f"redis://:s3cret-pw@127.0.0.1:{server.port}/3"
        unix = f"unix://:s3cret-pw@{socket_path}?db=3"
        for url in (tcp, unix):
            store = RedisStateStore(url, prefix="auth")
            await store.start()
            try:
                result = await store.rate_limit(check, time.time())
                assert result.allowed
            finally:
                await store.close()
        db3 = Redis.from_url(tcp)
        db0 = Redis.from_url(f"redis://:s3cret-pw@127.0.0.1:{server.port}/0")
        try:
            assert await db3.keys("{auth:rl}:*")  # in database 3, where the URL said
            assert not await db0.keys("{auth:rl}:*")
        finally:
            await db3.aclose()
            await db0.aclose()
        wrong = RedisStateStore(f"redis://:wrong@127.0.0.1:{server.port}/3", prefix="auth")
        try:
            with pytest.raises(ServiceUnavailable):
                await wrong.start()
        finally:
            await wrong.close()
        # the batcher's own connection authenticates too, and fails closed when it cannot
        client = Redis.from_url(f"redis://:wrong@127.0.0.1:{server.port}/3")
        batcher = CommandBatcher(client, timeout=1)
        try:
            with pytest.raises(RedisError):
                await batcher.execute(pack("PING"))
        finally:
            await batcher.close()
            await client.aclose()


@pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server binary not installed")
async def test_a_lost_connection_fails_its_callers_and_the_next_command_reconnects() -> None:
    with private_redis() as server:
        client = Redis.from_url(server.url)
        batcher = CommandBatcher(client, timeout=1.0)
        try:
            waiting = batcher.execute(pack("BLPOP", "nothing-here", 5))
            await asyncio.sleep(0.2)  # BLPOP is blocked in Redis
            await client.client_kill_filter(skipme=True)  # drop every other connection
            with pytest.raises(RedisError):
                await waiting
            assert await batcher.execute(pack("PING")) == b"PONG"  # a new connection
        finally:
            await batcher.close()
            await client.aclose()
