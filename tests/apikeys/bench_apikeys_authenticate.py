"""Measure ApiKeyAuthenticator.authenticate(): warm (cache hit) and cold (store lookup).

Run: .venv/bin/python -m tests.apikeys.bench_apikeys_authenticate [sqlite|redis|postgres ...]
Not collected by pytest (no ``test_`` prefix). Prints microseconds per call (median of 5).
Redis and PostgreSQL are the machine's services (see tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bastion.apikeys import ApiKeyAuthenticator, generate_key, key_checksum_ok, open_store
from bastion.errors import Unauthorized
from tests.conftest import PG_DATABASE, PG_HOST, PG_PORT, PG_USER, REDIS_HOST, REDIS_PORT

PG_URL = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}"


async def _per_call(call: object, n: int, rounds: int = 5) -> float:
    runs = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            await call()  # type: ignore[operator]
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(runs)


async def measure(backend: str, tmp: Path) -> None:
    table = f"bench_apikeys_{uuid.uuid4().hex[:8]}"
    prefix = f"bench:apikeys:{uuid.uuid4().hex[:8]}"
    url = {
        "sqlite": f"sqlite:///{tmp / 'bench.db'}",
        "redis": f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        "postgres": PG_URL,
    }[backend]
    store = open_store(url, table=table, redis_prefix=prefix)
    await store.start()
    try:
        key, record = await store.create(
            name="bench",
            roles=["r"],
            scopes=["s"],
            expires_at=None,
            allowed_networks=["10.0.0.0/8", "2001:db8::/32"],
            now=time.time(),
        )
        warm = ApiKeyAuthenticator(store)
        cold = ApiKeyAuthenticator(store, cache_ttl=0)
        await warm.authenticate(key, "10.1.2.3")

        async def warm_call() -> None:
            await warm.authenticate(key, "10.1.2.3")

        async def cold_call() -> None:
            await cold.authenticate(key, "10.1.2.3")

        typo = key[:-1] + ("0" if key[-1] != "0" else "1")

        async def typo_call() -> None:
            with contextlib.suppress(Unauthorized):
                await cold.authenticate(typo, "10.1.2.3")

        w = await _per_call(warm_call, 20000)
        c = await _per_call(cold_call, 500)
        t = await _per_call(typo_call, 20000)
        print(
            f"{backend:9s} warm {w:7.1f} us   cold {c:7.1f} us   typo refused {t:5.1f} us"
            f"   cold/warm {c / w:5.0f}x"
        )
        if backend == "redis":
            await store.revoke(record.key_id, time.time())
    finally:
        await store.close()
        if backend == "postgres":
            engine = create_async_engine(PG_URL)
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP TABLE IF EXISTS "{table}"'))
            await engine.dispose()
        if backend == "redis":
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(url)
            names = [n async for n in client.scan_iter(match="{" + prefix + "}*")]
            if names:
                await client.delete(*names)
            await client.aclose()


def main() -> None:
    assert key_checksum_ok(generate_key())
    backends = sys.argv[1:] or ["sqlite", "redis", "postgres"]
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            asyncio.run(measure(backend, Path(tmp)))


if __name__ == "__main__":
    main()
