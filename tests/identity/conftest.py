"""Fixtures of the token service tests: one database per backend, a live server factory."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.identity.harness import FakeClock, Live, live_server

#: PostgreSQL tests share one database per session, so they share its sealing key too.
PG_SECRET = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture(scope="session")
def identity_pg_url(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (tests use unique names in it)."""
    import asyncpg

    name = f"bastion_identity_{secrets.token_hex(6)}"
    dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'identity.db'}"
    url: str = request.getfixturevalue("identity_pg_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'identity.db'}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def live(db_url: str, clock: FakeClock) -> AsyncIterator[Live]:
    extra = {"secret_key": PG_SECRET} if db_url.startswith("postgresql") else {}
    async with live_server(db_url, clock, **extra) as running:
        yield running


@pytest.fixture
async def live_sqlite(sqlite_url: str, clock: FakeClock) -> AsyncIterator[Live]:
    """For tests whose behaviour does not depend on the database backend."""
    async with live_server(sqlite_url, clock) as running:
        yield running
