"""Measure JWTVerifier.verify(): cold (full ES256/RS256 verification) and warm (cache hit).

Run: .venv/bin/python -m tests.tokens.bench_tokens_verify
Not collected by pytest (no ``test_`` prefix). Prints microseconds per call.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bastion.tokens import IssuerSettings, JWTVerifier
from tests.tokens.conftest import AUDIENCE, ISSUER, KeyPair, jwks_bytes, make_ec, make_rsa
from tests.vectors.jwt_attacks import valid_token


async def _measure(pair: KeyPair, alg: str, rounds: int = 5, n: int = 2000) -> None:
    async def fetch(url: str) -> bytes:
        return jwks_bytes(pair)

    settings = IssuerSettings(
        issuer=ISSUER, audiences=(AUDIENCE,), algorithms=(alg,), jwks_uri="https://x/jwks"
    )
    cold = JWTVerifier([settings], fetcher=fetch, cache_size=0)
    warm = JWTVerifier([settings], fetcher=fetch)
    await cold.start()
    await warm.start()
    token = valid_token(pair.private, ISSUER, AUDIENCE, pair.kid, time.time())
    await warm.verify(token)
    cold_runs, warm_runs = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            await cold.verify(token)
        cold_runs.append((time.perf_counter() - start) / n * 1e6)
        start = time.perf_counter()
        for _ in range(n * 20):
            await warm.verify(token)
        warm_runs.append((time.perf_counter() - start) / (n * 20) * 1e6)
    print(
        f"{alg}: cold median {statistics.median(cold_runs):.1f} us/call "
        f"(min {min(cold_runs):.1f}), warm median {statistics.median(warm_runs):.2f} us/call "
        f"(min {min(warm_runs):.2f})"
    )
    await cold.close()
    await warm.close()


async def main() -> None:
    await _measure(make_ec("bench-ec"), "ES256")
    await _measure(make_rsa("bench-rsa"), "RS256")


if __name__ == "__main__":
    asyncio.run(main())
