"""How the mirror stays in step: pub/sub for speed, the version resync for repair."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from bastion.jsonutil import dumps
from bastion.ratelimit import LimitCheck, parse_rate
from bastion.state import ChangeEvent, RedisStateStore
from tests.state._redis_helpers import delete_prefix, unique_prefix

pytestmark = pytest.mark.services


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    value = unique_prefix()
    yield value
    delete_prefix(redis_url, value)


async def poll(predicate: Callable[[], bool], deadline: float) -> bool:
    end = time.monotonic() + deadline
    for _ in range(10_000):
        if predicate() or time.monotonic() > end:
            break
        await asyncio.sleep(0.01)
    return predicate()


async def test_pubsub_delivers_changes_without_waiting_for_a_resync(
    redis_url: str, prefix: str
) -> None:
    reader = RedisStateStore(redis_url, prefix=prefix, max_staleness=120, resync_interval=60)
    writer = RedisStateStore(redis_url, prefix=prefix, max_staleness=120, resync_interval=60)
    await reader.start()
    await writer.start()
    events: list[ChangeEvent] = []
    reader.on_change(events.append)
    try:
        await asyncio.sleep(0.2)  # let the reader's subscription settle
        await writer.block("principal", "mallory", None, "fraud")
        await writer.revoke_subject("alice", 1_800_000_000.0)
        await writer.publish_event({"type": "incident", "id": 7})
        mirror = reader.mirror
        assert await poll(
            lambda: (
                mirror.is_blocked("principal", "mallory", time.time()) is not None
                and mirror.subject_not_before("alice") == 1_800_000_000.0
                and any(e.kind == "event" for e in events)
            ),
            deadline=1.0,
        )
        kinds = [e.kind for e in events]
        assert "block" in kinds
        assert "revoke_subject" in kinds
        event = next(e for e in events if e.kind == "event")
        assert dict(event.data) == {"type": "incident", "id": 7}
    finally:
        await writer.close()
        await reader.close()


async def test_a_missed_message_is_repaired_by_the_periodic_resync(
    redis_url: str, prefix: str
) -> None:
    reader = RedisStateStore(redis_url, prefix=prefix, resync_interval=0.2)
    await reader.start()
    events: list[ChangeEvent] = []
    reader.on_change(events.append)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        # A change that was never published (as if the message had been lost).
        tag = f"{{{prefix}:shared}}"
        entry = {
            "kind": "ip",
            "value": "192.0.2.0/24",
            "until": None,
            "reason": "lost message",
            "created_at": 0.0,
        }
        await raw.hset(f"{tag}:blocks", "ip|192.0.2.0/24", dumps(entry))
        await raw.incr(f"{tag}:version")
        mirror = reader.mirror
        assert await poll(lambda: mirror.is_blocked("ip", "192.0.2.9", time.time()) is not None, 5)
        assert any(e.kind == "resync" for e in events)
    finally:
        await raw.aclose()
        await reader.close()


async def test_malformed_channel_messages_are_ignored_and_trigger_a_resync(
    redis_url: str, prefix: str
) -> None:
    reader = RedisStateStore(redis_url, prefix=prefix, max_staleness=120, resync_interval=60)
    writer = RedisStateStore(redis_url, prefix=prefix, max_staleness=120, resync_interval=60)
    await reader.start()
    await writer.start()
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await asyncio.sleep(0.2)
        await raw.publish(f"{prefix}:changes", b"not a change")
        await raw.publish(f"{prefix}:changes", b'999 {"op": "block", "kind": "ip"}')
        await writer.block("ip", "198.51.100.1", None, "after garbage")
        mirror = reader.mirror
        assert await poll(
            lambda: mirror.is_blocked("ip", "198.51.100.1", time.time()) is not None, 3
        )
        assert mirror.fresh(time.time())
    finally:
        await raw.aclose()
        await writer.close()
        await reader.close()


async def test_a_gateway_whose_clock_runs_ahead_prunes_nothing_others_still_enforce(
    redis_url: str, prefix: str
) -> None:
    """Clean-up of expired revocations and lapsed blocks goes by Redis' clock (with a grace),
    never the writer's: a gateway an hour ahead used to delete both from Redis, and every
    gateway that resynced or started afterwards let the token and the address through."""
    honest = RedisStateStore(redis_url, prefix=prefix, max_staleness=120, resync_interval=60)
    ahead = RedisStateStore(
        redis_url,
        prefix=prefix,
        max_staleness=120,
        resync_interval=60,
        clock=lambda: time.time() + 3600,
    )
    await honest.start()
    await ahead.start()
    try:
        now = time.time()
        await honest.revoke_token("stolen-jti", now + 600)
        await honest.block("ip", "203.0.113.7", now + 600, "incident")
        await ahead.revoke_token("other-jti", now + 7200)  # prunes by its clock, it used to
        await ahead._sync.load()  # and a resync pruned lapsed blocks by its clock too
        fresh = RedisStateStore(redis_url, prefix=prefix, max_staleness=120, resync_interval=60)
        await fresh.start()
        try:
            t = time.time()
            assert fresh.mirror.is_token_revoked("stolen-jti", t)
            assert fresh.mirror.is_blocked("ip", "203.0.113.7", t) is not None
        finally:
            await fresh.close()
        # Long expired by Redis' clock as well: cleaned up.
        await honest.revoke_token("ancient-jti", now - 2 * 3600)
        await honest.revoke_token("trigger-jti", now + 600)
        client = aioredis.Redis.from_url(redis_url)
        try:
            members = {
                m.decode() for m in await client.zrange(f"{{{prefix}:shared}}:revoked", 0, -1)
            }
        finally:
            await client.aclose()
        assert "ancient-jti" not in members
        assert {"stolen-jti", "other-jti", "trigger-jti"} <= members
    finally:
        await honest.close()
        await ahead.close()


async def test_the_mirror_is_trusted_only_while_its_sync_works(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Freshness certifies the mirror, not the connection: while loading the shared sets
    keeps failing (here an entry the loader cannot read), successful rate-limit calls do
    not keep a mirror that misses a revocation trusted, and the resync loop survives the
    error and catches up once it is gone. (The loop used to die on any error other than a
    connection error, and every rate-limit reply moved the horizon: a stale mirror was
    trusted for good.)"""
    check = [LimitCheck("k", parse_rate("100000/minute"))]
    reader = RedisStateStore(redis_url, prefix=prefix, max_staleness=0.6, resync_interval=0.1)
    writer = RedisStateStore(redis_url, prefix=prefix, max_staleness=120, resync_interval=60)
    await reader.start()
    await writer.start()
    sync = reader._sync
    real_load = sync.load
    broken = True

    async def load() -> None:
        if broken:
            raise ValueError("could not convert string to float: 'garbage'")
        await real_load()

    monkeypatch.setattr(sync, "load", load)
    try:
        sync._dirty = True  # a gap was seen: until a load succeeds, nothing is shown current
        await writer.revoke_token("missed-jti", time.time() + 600)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            assert (await reader.rate_limit(check, time.time())).allowed
            await asyncio.sleep(0.05)
        assert not reader.mirror.fresh(time.time())
        broken = False
        assert await poll(lambda: reader.mirror.fresh(time.time()), deadline=2.0)
        assert reader.mirror.is_token_revoked("missed-jti", time.time())
    finally:
        await reader.close()
        await writer.close()


def test_a_resync_interval_not_shorter_than_the_staleness_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="resync_interval must be shorter than max_staleness"):
        RedisStateStore("redis://127.0.0.1:1/0", max_staleness=1.0, resync_interval=1.0)


async def test_a_store_started_later_loads_revocations_within_the_verifiers_leeway(
    redis_url: str, prefix: str
) -> None:
    """A token revoked and expired 10 s ago is still accepted by a verifier with a clock
    leeway: a gateway starting now must still refuse it."""
    writer = RedisStateStore(redis_url, prefix=prefix, max_staleness=120, resync_interval=60)
    await writer.start()
    try:
        await writer.revoke_token("just-expired", time.time() - 10)
    finally:
        await writer.close()
    late = RedisStateStore(redis_url, prefix=prefix, max_staleness=120, resync_interval=60)
    await late.start()
    try:
        assert late.mirror.is_token_revoked("just-expired", time.time())
    finally:
        await late.close()
