"""Feature probes: proof that a row's feature is enforced before its number is trusted.

Each probe raises :class:`harness.Unavailable` with the reason when the feature is absent,
so the row is printed ``n/a (<reason>)`` instead of measuring something else.
"""

from __future__ import annotations

from typing import Any

import fixtures
import orjson
from gateways import ITEM_PATH, rate_limit_changes, redis_state, start_gateway
from harness import Env, Running, Unavailable, http, send
from loaddriver import LoadSpec
from procs import StartFailed

__all__ = [
    "delete_redis_keys",
    "probe_contract",
    "probe_jwt",
    "probe_memory_limit",
    "probe_redis_limit",
    "redis_keys",
]


def probe_jwt(env: Env, running: Running, spec: LoadSpec) -> None:
    status, _, _ = http(running.base_url + ITEM_PATH)
    if status != 401:
        raise Unavailable(f"JWT not enforced: a request without a token got {status}")
    status, _ = send(running, spec, "/items/u-2")
    if status not in (403, 404):
        raise Unavailable(f"owner rule not enforced: another user's object got {status}")


def _proberate_limit_changes(env: Env, state: dict[str, Any] | None) -> None:
    """A twin gateway limited to 2/minute must refuse with 429 (and use Redis if asked)."""
    changes: dict[str, Any] = rate_limit_changes("2/minute")
    if state is not None:
        changes["state"] = state
    try:
        probe = start_gateway(env, "ratelimit-probe", **changes)
    except StartFailed as exc:
        raise Unavailable(str(exc)) from None
    try:
        statuses = [http(probe.base_url + ITEM_PATH)[0] for _ in range(4)]
    finally:
        probe.stop()
    if 429 not in statuses:
        raise Unavailable(f"rate limit not enforced: 2/minute answered {statuses}")
    if state is not None:
        try:
            if not redis_keys(env.redis_url, state["prefix"]):
                raise Unavailable("rate limit state not written to Redis (no keys under prefix)")
        finally:
            delete_redis_keys(env.redis_url, state["prefix"])


def probe_memory_limit(env: Env, running: Running, spec: LoadSpec) -> None:
    _proberate_limit_changes(env, None)


def redis_keys(url: str, prefix: str) -> list[bytes]:
    """Keys holding ``prefix`` anywhere (the store puts it inside a hash tag: ``{p:rl}``)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return list(client.scan_iter(match=f"*{prefix}*", count=1000))
    finally:
        client.close()


def delete_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        for start_at in range(0, len(keys), 500):
            client.delete(*keys[start_at : start_at + 500])
    finally:
        client.close()


def probe_redis_limit(env: Env, running: Running, spec: LoadSpec) -> None:
    # The measured limit's counters expire within nanoseconds, so the proof that Redis
    # holds the state comes from the 2/minute twin, whose keys live for a minute.
    _proberate_limit_changes(env, redis_state(env, "probe"))


def probe_contract(env: Env, running: Running, spec: LoadSpec) -> None:
    bad = orjson.dumps(fixtures.invalid_order_request())
    status, _, _ = http(running.base_url + "/orders", "POST", dict(spec.headers), bad)
    if status not in (400, 422):
        raise Unavailable(f"request validation not enforced: an invalid body got {status}")
    status, body = send(running, spec)
    if fixtures.UNDECLARED_RESPONSE_FIELD.encode() in body:
        raise Unavailable("response filtering not enforced: undeclared fields passed")


# -- the rows ------------------------------------------------------------------------------
