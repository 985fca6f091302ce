"""A daily quota per API key through a real gateway: ``{key: api_key, limit: 3/day,
algorithm: quota}``. Keys are made with the ``bastion keys create`` CLI; the 4th call of a
key is 429 until 00:00 UTC, another key is unaffected."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ratelimit_e2e.rl_support import Answer, config, traced
from tests.support.procs import GatewayProc, Upstream, run_gateway

BASTION = str(Path(sys.executable).with_name("bastion"))
ROUTES = """
      - path: /echo
        methods: [GET]
        allow: authenticated
        rate_limit: [{key: api_key, limit: 3/day, algorithm: quota}]
"""


@dataclass
class Key:
    secret: str
    key_id: str


def create_key(store: str, name: str) -> Key:
    created = subprocess.run(
        [BASTION, "keys", "create", "--name", name, "--store", store],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    secret = re.search(r"bst_live_[A-Za-z0-9_-]+", created.stdout)
    key_id = re.search(r"key_[A-Za-z0-9]+", created.stdout)
    assert secret is not None
    assert key_id is not None
    return Key(secret.group(0), key_id.group(0))


@pytest.fixture(scope="module")
def setup(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProc, Key, Key]]:
    tmp = tmp_path_factory.mktemp("rl-quota")
    store = f"sqlite:///{tmp / 'keys.db'}"
    first = create_key(store, "partner-a")  # creates the store
    extra = f"authentication: {{api_keys: {{store: '{store}'}}}}\n"
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The gateway looks keys up per request: the second key may be made while it starts.
        second_key = pool.submit(create_key, store, "partner-b")
        with run_gateway(config(upstream.url, ROUTES, extra=extra), tmp) as gw:
            yield gw, first, second_key.result()


def _seconds_to_utc_midnight() -> float:
    now = time.time()
    return 86400 - now % 86400


def _echo(gw: GatewayProc, key: Key, upstream: Upstream) -> tuple[Answer, dict[str, object], bool]:
    marker = secrets.token_hex(8)
    answer, event = traced(gw, f"/echo?m={marker}", headers={"X-API-Key": key.secret})
    reached = any(r["query"] == f"m={marker}" for r in upstream.received())
    return answer, event, reached


def test_fourth_call_of_a_key_is_refused_until_midnight_utc(
    setup: tuple[GatewayProc, Key, Key], upstream: Upstream
) -> None:
    gw, first, second = setup
    if _seconds_to_utc_midnight() < 60:
        pytest.skip("too close to 00:00 UTC: the daily quota would reset during the test")
    for remaining in (2, 1, 0):
        answer, event, reached = _echo(gw, first, upstream)
        assert answer.status == 200
        assert reached
        assert answer.headers["ratelimit-policy"] == '"api_key";q=3;w=86400'
        assert answer.headers["ratelimit"].startswith(f'"api_key";r={remaining};t=')
        assert event["credential_id"] == first.key_id
    refused, event, reached = _echo(gw, first, upstream)
    assert refused.status == 429
    assert not reached
    assert refused.headers["content-type"] == "application/problem+json"
    retry_after = int(refused.headers["retry-after"])
    # The calendar quota resets at 00:00 UTC (a generous margin for a loaded machine).
    assert abs(retry_after - _seconds_to_utc_midnight()) < 30
    assert refused.headers["ratelimit"] == f'"api_key";r=0;t={retry_after}'
    assert event["reason"] == "ratelimit.exceeded"
    assert event["credential_id"] == first.key_id
    assert first.secret not in gw.audit.read_text()
    # Another key has its own quota.
    answer, event, reached = _echo(gw, second, upstream)
    assert answer.status == 200
    assert reached
    assert answer.headers["ratelimit"].startswith('"api_key";r=2;t=')
