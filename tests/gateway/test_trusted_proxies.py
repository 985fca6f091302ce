"""Which address is the client's: X-Forwarded-For and Forwarded behind trusted proxies."""

from __future__ import annotations

import pytest

from bastion.gateway.request import TrustedProxies, client_key
from bastion.types import Headers

PROXIES = TrustedProxies(["10.0.0.0/8", "2001:db8::/32"])


def _client(peer: str, *pairs: tuple[str, str]) -> str:
    return PROXIES.client_ip(peer, Headers((k.encode(), v.encode()) for k, v in pairs))


@pytest.mark.parametrize(
    ("peer", "pairs", "client"),
    [
        # an untrusted peer's headers are ignored entirely
        ("203.0.113.9", [("x-forwarded-for", "198.51.100.1")], "203.0.113.9"),
        # right to left, the first address that is not a trusted proxy
        ("10.0.0.1", [("x-forwarded-for", "6.6.6.6, 198.51.100.1, 10.0.0.2")], "198.51.100.1"),
        # several header lines read as one list, in order
        (
            "10.0.0.1",
            [("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.1, 10.0.0.7")],
            "198.51.100.1",
        ),
        # an entry that is no address ends the walk at the last trusted hop: what lies
        # left of it is not vouched for (it used to be skipped, so the client's own
        # prepended entry became the client)
        ("10.0.0.1", [("x-forwarded-for", "198.51.100.1, , junk,10.0.0.3")], "10.0.0.3"),
        ("10.0.0.1", [("x-forwarded-for", "6.6.6.6, unknown")], "10.0.0.1"),
        ("10.0.0.1", [("x-forwarded-for", "6.6.6.6, 10.0.0.5, unknown")], "10.0.0.1"),
        # entries with ports (Azure Application Gateway appends ip:port)
        ("10.0.0.1", [("x-forwarded-for", "6.6.6.6, 203.0.113.9:4455")], "203.0.113.9"),
        ("10.0.0.1", [("x-forwarded-for", "6.6.6.6, [2001:db9::5]:443")], "2001:db9::5"),
        ("10.0.0.1", [("x-forwarded-for", "6.6.6.6, 10.0.0.2:80")], "6.6.6.6"),
        ("10.0.0.1", [("forwarded", 'for=6.6.6.6, for="203.0.113.9:4711"')], "203.0.113.9"),
        ("10.0.0.1", [("forwarded", "for=6.6.6.6, for=_hidden")], "10.0.0.1"),
        # every hop trusted: the first one sent it
        ("10.0.0.1", [("x-forwarded-for", "10.0.0.9, 10.0.0.8")], "10.0.0.9"),
        # no X-Forwarded-For: Forwarded, right to left
        (
            "10.0.0.1",
            [("forwarded", 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https')],
            "6.6.6.6",
        ),
        # an X-Forwarded-For without an address: not Forwarded, which the proxy writing
        # X-Forwarded-For did not vouch for
        ("10.0.0.1", [("x-forwarded-for", "junk"), ("forwarded", "for=6.6.6.6")], "10.0.0.1"),
        ("2001:db8::1", [("forwarded", "for=198.51.100.1;proto=https")], "198.51.100.1"),
        # a dual-stack listener (::) sees an IPv4 proxy as ::ffff:a.b.c.d
        ("::ffff:10.0.0.1", [("x-forwarded-for", "198.51.100.1")], "198.51.100.1"),
        # nothing usable at all: the peer
        ("10.0.0.1", [("x-forwarded-for", ", ,")], "10.0.0.1"),
    ],
)
def test_client_address(peer: str, pairs: list[tuple[str, str]], client: str) -> None:
    assert _client(peer, *pairs) == client


def test_junk_a_client_prepends_is_not_what_decides() -> None:
    junk = ",".join(["a.b"] * 20_000)
    assert _client("10.0.0.1", ("x-forwarded-for", f"{junk}, 198.51.100.1")) == "198.51.100.1"


@pytest.mark.parametrize(
    ("address", "prefix", "key"),
    [
        ("198.51.100.7", 64, "198.51.100.7"),
        ("::ffff:198.51.100.7", 64, "198.51.100.7"),  # IPv4-mapped counts as IPv4
        ("2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6"),
        ("fe80::1%eth0", 128, "fe80::1"),  # the zone index is not part of the client
        ("fe80::1%eth0", 64, "fe80::/64"),
        ("not-an-address", 64, "not-an-address"),
    ],
)
def test_client_key_groups_ipv6_by_prefix(address: str, prefix: int, key: str) -> None:
    assert client_key(address, prefix) == key


def test_concurrency_counts_ipv6_clients_per_network() -> None:
    from bastion.policies.concurrency import ConcurrencyPolicy
    from bastion.state.memory import MemoryStateStore
    from tests.support.context import request_context

    def identity(key: str, address: str, prefix: int = 64) -> str:
        policy = ConcurrencyPolicy(
            scope="s",
            key=key,
            limit=1,
            ttl=1.0,
            store=MemoryStateStore(),
            clock=lambda: 0.0,
            ipv6_prefix=prefix,
        )
        return policy._identity(request_context(client_ip=address))

    assert identity("ip", "2001:db8::1") == identity("ip", "2001:db8::ffff") == "2001:db8::/64"
    assert identity("principal", "2001:db8::1") == "ip:2001:db8::/64"  # anonymous caller
    assert identity("ip", "2001:db8::1", 128) == "2001:db8::1"
