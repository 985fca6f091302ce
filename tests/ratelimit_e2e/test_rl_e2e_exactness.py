"""Rate limits are exact across gateways: two gateway processes share one real Redis.

400 concurrent requests, split across both gateways, against a limit of 100 admit exactly
100 (per-process counters would admit 200) and refuse 300 with 429, none of which reach the
upstream. The limits here are per hour so that no token is replenished while the requests
run: the count is exact whatever the machine's load.
"""

from __future__ import annotations

import asyncio
import collections
import re
import secrets
from collections.abc import Iterator
from contextlib import ExitStack

import aiohttp
import pytest

from tests.ratelimit_e2e.rl_support import call, config, enter_together, traced
from tests.support.procs import GatewayProc, Upstream, run_gateway

pytestmark = pytest.mark.services

ROUTES = """
      - path: /echo
        methods: [GET]
        public: true
        rate_limit: [{key: route, limit: 100/hour}]
      - path: "/echo/{item_id}"
        methods: [GET]
        public: true
        rate_limit: [{key: ip, limit: 3/hour}]
"""


@pytest.fixture(scope="module")
def pair(
    upstream: Upstream, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProc, GatewayProc]]:
    tmp = tmp_path_factory.mktemp("rl-exact")
    prefix = f"bastion-rle2e-{secrets.token_hex(6)}"
    state = f"state: {{backend: redis, url: '{redis_url}', prefix: {prefix}}}\n"
    text = config(upstream.url, ROUTES, extra=state)
    with ExitStack() as stack:
        one, two = enter_together(stack, run_gateway(text, tmp), run_gateway(text, tmp))
        yield one, two


async def _fire(ports: list[int], total: int) -> list[tuple[int, dict[str, str]]]:
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def one(i: int) -> tuple[int, dict[str, str]]:
            url = f"http://127.0.0.1:{ports[i % len(ports)]}/echo"
            async with session.get(url) as response:
                await response.read()
                return response.status, {k.lower(): v for k, v in response.headers.items()}

        return list(await asyncio.gather(*(one(i) for i in range(total))))


def _upstream_hits(upstream: Upstream, path: str) -> int:
    return sum(1 for r in upstream.received() if r["path"] == path)


def test_400_concurrent_requests_on_two_gateways_admit_exactly_100(
    pair: tuple[GatewayProc, GatewayProc], upstream: Upstream
) -> None:
    one, two = pair
    before = _upstream_hits(upstream, "/echo")
    results = asyncio.run(_fire([one.port, two.port], 400))
    statuses = [status for status, _ in results]
    assert collections.Counter(statuses) == {200: 100, 429: 300}
    refused = [headers for status, headers in results if status == 429]
    assert all(int(h["retry-after"]) >= 1 for h in refused)
    assert all(h["content-type"] == "application/problem+json" for h in refused)
    # Refused requests never reached the upstream.
    assert _upstream_hits(upstream, "/echo") - before == 100


def _remaining(header: str) -> int:
    match = re.search(r";r=(\d+)", header)
    assert match is not None, header
    return int(match.group(1))


def test_429_shape_and_ratelimit_headers(
    pair: tuple[GatewayProc, GatewayProc], upstream: Upstream
) -> None:
    one, two = pair
    before = sum(1 for r in upstream.received() if r["path"].startswith("/echo/"))
    remaining = []
    for item in ("a", "b", "c"):
        answer = call(one.port, f"/echo/{item}")
        assert answer.status == 200
        assert answer.headers["ratelimit-policy"] == '"ip";q=3;w=3600'
        assert answer.headers["ratelimit"].startswith('"ip";r=')
        remaining.append(_remaining(answer.headers["ratelimit"]))
    assert remaining == [2, 1, 0]
    # The fourth request goes to the OTHER gateway: the counter is shared.
    refused, event = traced(two, "/echo/d")
    assert refused.status == 429
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["status"] == 429
    assert problem["code"] == "rate_limited"
    assert problem["request_id"]
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 3600
    assert refused.headers["ratelimit-policy"] == '"ip";q=3;w=3600'
    # draft-ietf-httpapi-ratelimit-headers §6: t equals Retry-After on a refusal.
    assert refused.headers["ratelimit"] == f'"ip";r=0;t={retry_after}'
    # The reason is for the audit log only, never the client.
    assert b"ratelimit.exceeded" not in refused.body
    assert event["status"] == 429
    assert event["decision"] == "deny"
    assert event["reason"] == "ratelimit.exceeded"
    assert event["upstream"] is None or event.get("upstream_ms") is None
    after = sum(1 for r in upstream.received() if r["path"].startswith("/echo/"))
    assert after - before == 3
    assert not any(r["path"] == "/echo/d" for r in upstream.received())
