"""IPv6 clients are counted per /64: rotating addresses inside one's network does not reset
the limit (``client_ipv6_prefix``).

Two gateways trust 127.0.0.1 as a proxy, so the X-Forwarded-For they are sent is the client.
Both limit ``key: ip`` to 2 per hour and anonymous callers on a ``key: principal`` route to
2 per hour; one counts IPv6 clients per /64 (the default), the other per address (128).
Every refused request is a 429 that never reaches the upstream.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.ratelimit_e2e.rl_support import config, enter_together, traced
from tests.support.procs import GatewayProc, Upstream, run_gateway

ROUTES = """
      - {path: /by-ip, methods: [GET], public: true, rate_limit: [{key: ip, limit: 2/hour}]}
      - {path: /by-caller, methods: [GET], public: true,
         rate_limit: [{key: principal, limit: 2/hour}]}"""


@pytest.fixture(scope="module")
def gateways(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, GatewayProc]]:
    variants = {
        "per64": "trusted_proxies: [127.0.0.1/32]",
        "per128": "trusted_proxies: [127.0.0.1/32]\nclient_ipv6_prefix: 128",
    }
    with ExitStack() as stack:
        started = enter_together(
            stack,
            *(
                run_gateway(
                    config(upstream.url, ROUTES, extra=extra), tmp_path_factory.mktemp(name)
                )
                for name, extra in variants.items()
            ),
        )
        yield dict(zip(variants, started, strict=True))


def _get(gw: GatewayProc, upstream: Upstream, path: str, client: str) -> tuple[int, str, bool]:
    marker = secrets.token_hex(8)
    answer, event = traced(gw, f"{path}?m={marker}", headers={"X-Forwarded-For": client})
    reached = any(r["query"] == f"m={marker}" for r in upstream.received())
    if answer.status == 429:
        assert answer.headers["content-type"] == "application/problem+json"
        assert not reached
    return answer.status, event["client_ip"], reached


@pytest.mark.parametrize("path", ["/by-ip", "/by-caller"])
def test_addresses_of_one_64_share_a_limit(
    gateways: dict[str, GatewayProc], upstream: Upstream, path: str
) -> None:
    gw = gateways["per64"]
    net = f"2001:db8:{secrets.randbelow(0xFFFF):x}:1"
    assert _get(gw, upstream, path, f"{net}::1") == (200, f"{net}::1", True)
    assert _get(gw, upstream, path, f"{net}::2")[0] == 200
    # A third address of the same /64, however different its host bits: refused.
    assert _get(gw, upstream, path, f"{net}:ffff:ffff:ffff:fffe")[:2] == (
        429,
        f"{net}:ffff:ffff:ffff:fffe",  # the audit still names the address itself
    )
    # The neighbouring /64 is another client.
    other = net[: net.rindex(":")] + ":2"
    assert _get(gw, upstream, path, f"{other}::1")[0] == 200


def test_ipv4_mapped_addresses_count_as_ipv4(
    gateways: dict[str, GatewayProc], upstream: Upstream
) -> None:
    gw = gateways["per64"]
    ip = f"198.51.100.{secrets.randbelow(250) + 1}"
    assert _get(gw, upstream, "/by-ip", ip)[0] == 200
    assert _get(gw, upstream, "/by-ip", f"::ffff:{ip}")[0] == 200
    assert _get(gw, upstream, "/by-ip", ip)[0] == 429
    # IPv4 is counted per address: the neighbour is another client.
    neighbour = ip.rsplit(".", 1)[0] + f".{(int(ip.rsplit('.', 1)[1]) % 250) + 2}"
    assert _get(gw, upstream, "/by-ip", neighbour)[0] == 200


def test_prefix_128_counts_every_address(
    gateways: dict[str, GatewayProc], upstream: Upstream
) -> None:
    gw = gateways["per128"]
    net = f"2001:db8:{secrets.randbelow(0xFFFF):x}:1"
    for host in range(1, 5):
        assert _get(gw, upstream, "/by-ip", f"{net}::{host}")[0] == 200
    assert _get(gw, upstream, "/by-ip", f"{net}::1")[0] == 200
    assert _get(gw, upstream, "/by-ip", f"{net}::1")[0] == 429
