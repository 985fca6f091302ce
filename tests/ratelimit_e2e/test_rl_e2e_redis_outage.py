"""Redis dies under running gateways, then comes back: fail closed, fail open where
configured, recovery without restarting anything but Redis.

The gateways run on a private redis-server (never the machine's Redis on 6379) that the
test kills and restarts on the same port. Two gateways share it:

* ``lenient`` (``max_staleness: 60``): while its mirror of the blocklist and revocations
  is still trusted, a rate-limited route answers 503 (fail closed) and a route whose limit
  says ``fail_open: true`` answers 200, with ``"rate_limit": "fail_open"`` in the audit
  event;
* ``strict`` (``max_staleness: 2``): once its mirror is stale, authenticated routes answer
  503 too.

A third gateway, ``flapping`` (``max_staleness: 0.5``, below the mirror's default 1 s
resync interval), must never refuse a request while Redis is healthy (it did before the
mirror resynced within its staleness bound).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from tests.ratelimit_e2e.rl_support import (
    PrivateRedis,
    call,
    config,
    enter_together,
    need_redis_server,
    poll,
    traced,
)
from tests.support.keys import KeyIssuer, make_issuer
from tests.support.procs import GatewayProc, Upstream, run_gateway

ROUTES = """
      - path: /echo
        methods: [GET]
        public: true
        rate_limit: [{key: ip, limit: 10000/hour}]
      - path: "/echo/{item_id}"
        methods: [GET]
        public: true
        rate_limit: [{key: ip, limit: 10000/hour, fail_open: true}]
      - path: "/status/{code}"
        methods: [GET]
        allow: authenticated
"""
RECOVERY_DEADLINE = 15.0
pytestmark = pytest.mark.services


@dataclass
class Setup:
    redis: PrivateRedis
    lenient: GatewayProc
    strict: GatewayProc
    flapping: GatewayProc
    token: str


@pytest.fixture(scope="module")
def setup(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    need_redis_server()
    tmp = tmp_path_factory.mktemp("rl-outage")
    issuer: KeyIssuer = make_issuer(tmp)
    redis = PrivateRedis(tmp)
    redis.start()
    try:
        prefix = f"bastion-outage-{secrets.token_hex(4)}"

        def gateway_config(staleness: float) -> str:
            state = (
                f"state: {{backend: redis, url: '{redis.url}', prefix: {prefix}, "
                f"max_staleness: {staleness}}}\n"
            )
            return config(upstream.url, ROUTES, extra=issuer.config() + state)

        with ExitStack() as stack:
            lenient, strict, flapping = enter_together(
                stack,
                run_gateway(gateway_config(60), tmp),
                run_gateway(gateway_config(2), tmp),
                run_gateway(gateway_config(0.5), tmp),
            )
            token = issuer.token("u-outage", ["customer"])
            yield Setup(redis, lenient, strict, flapping, token)
    finally:
        redis.close()


def _answers(
    gw: GatewayProc, path: str, status: int, headers: dict[str, str] | None = None
) -> Callable[[], bool]:
    return lambda: call(gw.port, path, headers=headers).status == status


def _hits(upstream: Upstream, path: str) -> int:
    return sum(1 for r in upstream.received() if r["path"] == path)


def test_small_max_staleness_never_refuses_while_redis_is_healthy(setup: Setup) -> None:
    bearer = {"Authorization": f"Bearer {setup.token}"}
    statuses = []
    end = time.monotonic() + 2.5  # spread over more than two resync intervals
    while time.monotonic() < end:
        statuses.append(call(setup.flapping.port, "/status/200", headers=bearer).status)
        time.sleep(0.05)
    assert set(statuses) == {200}


def test_redis_down_fails_closed_fails_open_where_configured_then_recovers(
    setup: Setup, upstream: Upstream
) -> None:
    lenient, strict = setup.lenient, setup.strict
    bearer = {"Authorization": f"Bearer {setup.token}"}
    for gw in (lenient, strict):
        assert call(gw.port, "/echo").status == 200
        assert call(gw.port, "/echo/open").status == 200
        assert call(gw.port, "/status/200", headers=bearer).status == 200

    setup.redis.kill()

    # Fail closed: the limit cannot be checked, so the request is refused, not forwarded.
    before = _hits(upstream, "/echo")
    closed, event = traced(lenient, "/echo")
    assert closed.status == 503
    assert closed.headers["content-type"] == "application/problem+json"
    assert closed.json()["status"] == 503
    assert event["rate_limit"] == "fail_closed"
    assert event["reason"] == "state.unavailable"
    assert _hits(upstream, "/echo") == before

    # Fail open, explicitly configured: admitted, and the audit event says so.
    opened, event = traced(lenient, "/echo/open")
    assert opened.status == 200
    assert "ratelimit" not in opened.headers  # no counter was consulted
    assert event["rate_limit"] == "fail_open"
    assert event["status"] == 200

    # The mirror (blocklist, revocations) is trusted for max_staleness seconds, no longer.
    assert call(lenient.port, "/status/200", headers=bearer).status == 200
    poll(_answers(strict, "/status/200", 503, bearer), RECOVERY_DEADLINE, "stale, closed")
    stale, event = traced(strict, "/status/200", headers=bearer)
    assert stale.status == 503
    assert event["reason"] == "state.stale"
    # The blocklist is global: a stale mirror refuses every request, the fail-open route
    # included (docs/architecture.md, "State shared by many gateways").
    assert call(strict.port, "/echo/open").status == 503

    setup.redis.start()  # same port, empty (no persistence)

    for gw in (lenient, strict):
        poll(_answers(gw, "/echo", 200), RECOVERY_DEADLINE, "recovered")
        poll(_answers(gw, "/status/200", 200, bearer), RECOVERY_DEADLINE, "recovered")
        answer = call(gw.port, "/echo/open")
        assert answer.status == 200
        assert "ratelimit" in answer.headers  # counted again
