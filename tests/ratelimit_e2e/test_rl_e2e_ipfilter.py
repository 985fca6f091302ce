"""Static IP allow and deny lists, global and per API, with and without a trusted proxy.

One gateway trusts 127.0.0.1 as a proxy (its X-Forwarded-For is believed). Requests from
other loopback addresses (the client socket is bound to 127.0.0.66 or 127.0.0.7) are
direct clients: whatever X-Forwarded-For they send is ignored. Every refusal is a 403
that never reaches the upstream, with the cause in the audit event only.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.ratelimit_e2e.rl_support import traced
from tests.support.procs import GatewayProc, Upstream, run_gateway

PROXY = "127.0.0.1"


@pytest.fixture(scope="module")
def gateway(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    tmp = tmp_path_factory.mktemp("rl-ip")
    config = f"""version: 1
mode: development
audit: {{sink: file, path: "{{AUDIT}}"}}
trusted_proxies: [{PROXY}/32]
ip_deny: [203.0.113.0/24, 127.0.0.66/32]
upstreams:
  echo:
    url: {upstream.url}
    timeout: {{connect: 5, read: 30, total: 30}}
apis:
  - name: open
    upstream: echo
    base_path: /open
    routes:
      - {{path: /echo, methods: [GET], public: true}}
  - name: internal
    upstream: echo
    base_path: /internal
    ip_allow: [198.51.100.0/24, 127.0.0.1/32]
    ip_deny: [198.51.100.9/32]
    routes:
      - {{path: /echo, methods: [GET], public: true}}
"""
    with run_gateway(config, tmp) as gw:
        yield gw


# (peer, X-Forwarded-For, API, expected status, client IP the gateway decided on, reason)
CASES = [
    (PROXY, None, "open", 200, PROXY, None),
    (PROXY, None, "internal", 200, PROXY, None),
    # Behind the trusted proxy: the forwarded client is filtered.
    (PROXY, "203.0.113.5", "open", 403, "203.0.113.5", "ip_filter.denied"),
    (PROXY, "203.0.113.5, 127.0.0.1", "open", 403, "203.0.113.5", "ip_filter.denied"),
    (PROXY, "198.51.100.7", "internal", 200, "198.51.100.7", None),
    (PROXY, "198.51.100.9", "internal", 403, "198.51.100.9", "ip_filter.denied"),
    (PROXY, "192.0.2.1", "internal", 403, "192.0.2.1", "ip_filter.not_allowed"),
    (PROXY, "192.0.2.1", "open", 200, "192.0.2.1", None),
    # Direct clients (not trusted proxies): X-Forwarded-For is ignored.
    ("127.0.0.66", None, "open", 403, "127.0.0.66", "ip_filter.denied"),
    ("127.0.0.66", "198.51.100.7", "open", 403, "127.0.0.66", "ip_filter.denied"),
    ("127.0.0.7", "198.51.100.7", "internal", 403, "127.0.0.7", "ip_filter.not_allowed"),
    ("127.0.0.7", "203.0.113.5", "open", 200, "127.0.0.7", None),
]


@pytest.mark.parametrize(("peer", "forwarded", "api", "status", "client", "reason"), CASES)
def test_ip_lists(
    gateway: GatewayProc,
    upstream: Upstream,
    peer: str,
    forwarded: str | None,
    api: str,
    status: int,
    client: str,
    reason: str | None,
) -> None:
    marker = secrets.token_hex(8)
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    answer, event = traced(gateway, f"/{api}/echo?m={marker}", headers=headers, source=peer)
    assert answer.status == status
    assert event["client_ip"] == client
    forwarded_to_upstream = any(r["query"] == f"m={marker}" for r in upstream.received())
    if status == 403:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "forbidden"
        assert reason is not None
        assert event["reason"] == reason
        assert reason.encode() not in answer.body
        assert not forwarded_to_upstream
    else:
        assert forwarded_to_upstream
