"""The whole key lifecycle on every real backend: SQLite, Redis and PostgreSQL.

create -> authenticate -> list -> rotate (both keys work during the overlap, the old one is
refused after it) -> revoke (refused after the cache TTL, or at once after invalidate()).
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bastion.apikeys import (
    ApiKeyAuthenticator,
    ApiKeyNotRotatable,
    UnknownApiKey,
    hash_key,
)
from bastion.apikeys.sql_store import SqlApiKeyStore
from bastion.apikeys.store import InvalidationSource
from bastion.errors import Unauthorized
from tests.apikeys.conftest import FakeClock, StoreFactory

pytestmark = pytest.mark.services
TTL = 5.0
IP = "203.0.113.7"


async def refused(auth: ApiKeyAuthenticator, key: str, ip: str = IP) -> str:
    with pytest.raises(Unauthorized) as info:
        await auth.authenticate(key, ip)
    assert info.value.status == 401
    assert info.value.headers["WWW-Authenticate"] == "ApiKey"
    return info.value.reason


async def test_lifecycle(backend: StoreFactory, clock: FakeClock) -> None:
    admin = await backend()  # the CLI's store
    gateway = await backend()  # another process: hears of nothing, relies on the TTL
    auth = ApiKeyAuthenticator(gateway, cache_ttl=TTL, clock=clock)

    key, record = await admin.create(
        name="billing job",
        roles=["reader", "billing"],
        scopes=["orders:read"],
        expires_at=None,
        allowed_networks=[],
        now=clock(),
    )
    assert key.startswith("bst_live_")
    assert record.prefix == key[:12]
    assert record.key_hash == hash_key(key)
    got = await auth.authenticate(key, IP)
    assert got == record
    assert got.roles == ("reader", "billing")
    assert got.scopes == ("orders:read",)
    assert await gateway.get_by_hash(hash_key(key)) == record
    assert [r.key_id for r in await gateway.list()] == [record.key_id]

    clock.advance(10)
    new_key, successor = await admin.rotate(record.key_id, overlap_seconds=3600, now=clock())
    assert new_key != key
    assert successor.rotated_from == record.key_id
    assert (successor.roles, successor.scopes, successor.name) == (
        record.roles,
        record.scopes,
        record.name,
    )
    assert (await auth.authenticate(new_key, IP)).key_id == successor.key_id
    assert (await auth.authenticate(key, IP)).key_id == record.key_id
    clock.advance(3599)
    assert (await auth.authenticate(key, IP)).key_id == record.key_id
    assert (await auth.authenticate(new_key, IP)).key_id == successor.key_id
    clock.advance(1)
    assert await refused(auth, key) == "apikey.expired"
    assert (await auth.authenticate(new_key, IP)).key_id == successor.key_id
    listed = {r.key_id: r for r in await admin.list()}
    assert set(listed) == {record.key_id, successor.key_id}
    assert listed[record.key_id].status(clock()) == "expired"
    assert listed[successor.key_id].status(clock()) == "active"

    assert await admin.revoke(successor.key_id, clock()) is True
    assert await admin.revoke(successor.key_id, clock()) is False
    # Cached in the other process: still accepted until the TTL runs out...
    assert (await auth.authenticate(new_key, IP)).key_id == successor.key_id
    clock.advance(TTL)
    assert await refused(auth, new_key) == "apikey.revoked"
    assert (await gateway.list())[-1].status(clock()) == "revoked"


async def test_revoke_is_immediate_after_invalidate(
    backend: StoreFactory, clock: FakeClock
) -> None:
    admin, gateway = await backend(), await backend()
    auth = ApiKeyAuthenticator(gateway, cache_ttl=60.0, clock=clock)
    key, record = await admin.create(
        name="n", roles=[], scopes=[], expires_at=None, allowed_networks=[], now=clock()
    )
    await auth.authenticate(key, IP)
    assert await admin.revoke(record.key_id, clock())
    await auth.authenticate(key, IP)  # cached
    auth.invalidate(record.key_id)
    assert await refused(auth, key) == "apikey.revoked"


async def test_revoke_through_the_same_store_is_immediate(
    backend: StoreFactory, clock: FakeClock
) -> None:
    store = await backend()
    auth = ApiKeyAuthenticator(store, cache_ttl=60.0, clock=clock)
    key, record = await store.create(
        name="n", roles=[], scopes=[], expires_at=None, allowed_networks=[], now=clock()
    )
    await auth.authenticate(key, IP)
    assert await store.revoke(record.key_id, clock())
    assert await refused(auth, key) == "apikey.revoked"


async def test_expiry_and_networks(backend: StoreFactory, clock: FakeClock) -> None:
    store = await backend()
    auth = ApiKeyAuthenticator(store, cache_ttl=60.0, clock=clock)
    key, record = await store.create(
        name="office",
        roles=["ops"],
        scopes=[],
        expires_at=clock() + 30,
        allowed_networks=["10.0.0.0/8", "2001:db8::/32"],
        now=clock(),
        env="test",
    )
    assert key.startswith("bst_test_")
    assert record.allowed_networks == ("10.0.0.0/8", "2001:db8::/32")
    assert (await store.get_by_hash(record.key_hash)) == record
    await auth.authenticate(key, "10.20.30.40")
    await auth.authenticate(key, "2001:db8::7")
    assert await refused(auth, key, "192.0.2.1") == "apikey.network"
    assert await refused(auth, key, "2001:db9::7") == "apikey.network"
    clock.advance(30)  # the cached record is re-checked against the clock on every call
    assert await refused(auth, key, "10.20.30.40") == "apikey.expired"


async def test_rotation_rules(backend: StoreFactory, clock: FakeClock) -> None:
    store = await backend()
    _, record = await store.create(
        name="n",
        roles=["r"],
        scopes=["s"],
        expires_at=clock() + 86400,
        allowed_networks=[],
        now=clock(),
    )
    with pytest.raises(UnknownApiKey):
        await store.rotate("key_doesnotexist", overlap_seconds=60, now=clock())
    clock.advance(100)
    _new_key, successor = await store.rotate(record.key_id, overlap_seconds=1e9, now=clock())
    # The successor keeps the lifetime; the overlap never extends the old key's expiry.
    assert successor.expires_at == pytest.approx(clock() + 86400)
    old = next(r for r in await store.list() if r.key_id == record.key_id)
    assert old.expires_at == pytest.approx(record.expires_at)
    with pytest.raises(ApiKeyNotRotatable, match="already rotated"):
        await store.rotate(record.key_id, overlap_seconds=60, now=clock())
    assert await store.revoke(successor.key_id, clock())
    with pytest.raises(ApiKeyNotRotatable, match="revoked"):
        await store.rotate(successor.key_id, overlap_seconds=60, now=clock())
    assert await store.revoke("key_doesnotexist", clock()) is False


async def test_invalid_input_is_refused_before_storing(
    backend: StoreFactory, clock: FakeClock
) -> None:
    store = await backend()
    base: dict[str, object] = {
        "name": "n",
        "roles": [],
        "scopes": [],
        "expires_at": None,
        "allowed_networks": [],
        "now": clock(),
    }
    for bad in (
        {"allowed_networks": ["10.0.0.1/8"]},
        {"roles": ["has space"]},
        {"roles": "admin"},
        {"name": "  "},
        {"expires_at": clock() - 1},
        {"env": "prod"},
    ):
        with pytest.raises(ValueError):
            await store.create(**{**base, **bad})  # type: ignore[arg-type]
    assert await store.list() == []


async def test_postgres_connections_dropped_by_the_server_are_replaced(
    postgres_backend: StoreFactory, postgres_url: str, clock: FakeClock
) -> None:
    store = await postgres_backend()
    key, record = await store.create(
        name="n", roles=[], scopes=[], expires_at=None, allowed_networks=[], now=clock()
    )
    assert isinstance(store, SqlApiKeyStore)
    table = store.table_name
    assert await store.get_by_hash(record.key_hash) == record  # a pooled connection exists
    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND query LIKE :q"
                ),
                # Only this run's connections: their last query names its unique table.
                {"q": f"%{table}%"},
            )
    finally:
        await engine.dispose()
    auth = ApiKeyAuthenticator(store, clock=clock)
    assert (await auth.authenticate(key, IP)).key_id == record.key_id


async def test_gateways_starting_together_share_one_table(
    backend: StoreFactory, clock: FakeClock
) -> None:
    stores = await asyncio.gather(*(backend() for _ in range(4)))
    _, record = await stores[0].create(
        name="n", roles=[], scopes=[], expires_at=None, allowed_networks=[], now=clock()
    )
    for store in stores:
        assert await store.get_by_hash(record.key_hash) == record


async def test_stores_do_not_keep_discarded_authenticators_alive(
    backend: StoreFactory, clock: FakeClock
) -> None:
    store = await backend()
    assert isinstance(store, InvalidationSource)
    auth = ApiKeyAuthenticator(store, clock=clock)
    probe = weakref.ref(auth)
    del auth
    gc.collect()
    assert probe() is None
    assert await store.revoke("key_doesnotexist", clock()) is False


async def test_concurrent_rotations_leave_exactly_one_successor(
    backend: StoreFactory, clock: FakeClock
) -> None:
    first, second = await backend(), await backend()
    _, record = await first.create(
        name="n", roles=[], scopes=[], expires_at=None, allowed_networks=[], now=clock()
    )
    results = await asyncio.gather(
        *(s.rotate(record.key_id, overlap_seconds=60, now=clock()) for s in (first, second)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, tuple)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], ApiKeyNotRotatable)
    successors = [r for r in await first.list() if r.rotated_from == record.key_id]
    assert [s.key_id for s in successors] == [winners[0][1].key_id]


async def test_many_gateways_opening_a_fresh_sqlite_file_at_once(tmp_path: Path) -> None:
    """Switching a new file to WAL may be refused at once ("database is locked") instead of
    waiting for the busy timeout when several processes open it together: retried."""
    for attempt in range(5):
        url = f"sqlite+aiosqlite:///{tmp_path}/keys-{attempt}.db"
        stores = [SqlApiKeyStore(url) for _ in range(16)]
        try:
            await asyncio.gather(*(store.start() for store in stores))
        finally:
            for store in stores:
                await store.close()
