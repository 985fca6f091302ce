"""Fail closed: when the database goes away, the token endpoint answers 503, never a token."""

from __future__ import annotations

import secrets

import pytest

from tests.identity.conftest import PG_SECRET
from tests.identity.harness import live_server, seed


@pytest.mark.services
async def test_database_outage_is_503_not_a_token(postgres_url: str) -> None:
    import asyncpg

    name = f"bastion_identity_outage_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{postgres_url.rsplit('/', 1)[0]}/{name}"
        async with live_server(url, secret_key=PG_SECRET) as live:
            await seed(live)
            status, _ = await live.token("svc", grant_type="client_credentials")
            assert status == 200
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            status, body = await live.token("svc", grant_type="client_credentials")
            assert status == 503
            assert body == {"error": "temporarily_unavailable"}
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
