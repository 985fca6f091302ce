"""Fixtures for the API key tests: an injected clock and the three real store backends.

``backend`` yields a factory: every call opens another store on the same data (as another
gateway process would), started, and closed at teardown. SQLite lives in ``tmp_path``;
Redis uses a unique key prefix and PostgreSQL a unique table, both removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bastion.apikeys import ApiKeyRecord, ApiKeyStore, open_store

NOW = 1_800_000_000.0

StoreFactory = Callable[[], Awaitable[ApiKeyStore]]


class FakeClock:
    """Tests move time instead of sleeping."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingStore:
    """Wraps a store and counts the per-request lookups that reach it."""

    def __init__(self, inner: ApiKeyStore) -> None:
        self.inner = inner
        self.lookups = 0
        self.fail: BaseException | None = None

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def create(
        self,
        *,
        name: str,
        roles: Sequence[str],
        scopes: Sequence[str],
        expires_at: float | None,
        allowed_networks: Sequence[str],
        now: float,
        env: str = "live",
    ) -> tuple[str, ApiKeyRecord]:
        return await self.inner.create(
            name=name,
            roles=roles,
            scopes=scopes,
            expires_at=expires_at,
            allowed_networks=allowed_networks,
            now=now,
            env=env,
        )

    async def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        self.lookups += 1
        if self.fail is not None:
            raise self.fail
        return await self.inner.get_by_hash(key_hash)

    async def list(self) -> list[ApiKeyRecord]:
        return await self.inner.list()

    async def revoke(self, key_id: str, now: float) -> bool:
        return await self.inner.revoke(key_id, now)

    async def rotate(
        self, key_id: str, *, overlap_seconds: float, now: float
    ) -> tuple[str, ApiKeyRecord]:
        return await self.inner.rotate(key_id, overlap_seconds=overlap_seconds, now=now)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys.db'}"


async def _factory(url: str, **options: str) -> AsyncIterator[StoreFactory]:
    opened: list[ApiKeyStore] = []

    async def make() -> ApiKeyStore:
        store = open_store(url, **options)
        await store.start()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def sqlite_backend(sqlite_url: str) -> AsyncIterator[StoreFactory]:
    async for make in _factory(sqlite_url):
        yield make


@pytest.fixture
async def redis_backend(redis_url: str) -> AsyncIterator[StoreFactory]:
    prefix = f"test:apikeys:{uuid.uuid4().hex[:12]}"
    async for make in _factory(redis_url, redis_prefix=prefix):
        yield make
    client = aioredis.Redis.from_url(redis_url)
    try:
        names = [name async for name in client.scan_iter(match="{" + prefix + "}*")]
        if names:
            await client.delete(*names)
    finally:
        await client.aclose()


@pytest.fixture
async def postgres_backend(postgres_url: str) -> AsyncIterator[StoreFactory]:
    table = f"apikeys_{uuid.uuid4().hex[:12]}"
    async for make in _factory(postgres_url, table=table):
        yield make
    engine = create_async_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP TABLE IF EXISTS "{table}"'))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def backend(request: pytest.FixtureRequest) -> StoreFactory:
    factory: StoreFactory = request.getfixturevalue(f"{request.param}_backend")
    return factory
