"""The local mirror: O(1) checks, CIDR blocks, expiry, freshness."""

from __future__ import annotations

import math

import pytest

from bastion.state import BlockEntry, SharedMirror, normalize_block_value
from bastion.state.mirror import REVOCATION_GRACE

NOW = 1_800_000_000.0


def entry(kind: str, value: str, until: float | None = None) -> BlockEntry:
    return BlockEntry(kind, normalize_block_value(kind, value), until, "r", NOW)  # type: ignore[arg-type]


def test_cidr_blocks_match_addresses_inside_only() -> None:
    mirror = SharedMirror()
    mirror.block(entry("ip", "10.0.0.0/8"))
    mirror.block(entry("ip", "2001:db8::/32"))
    assert mirror.is_blocked("ip", "10.200.3.4", NOW) is not None
    assert mirror.is_blocked("ip", "11.0.0.1", NOW) is None
    assert mirror.is_blocked("ip", "2001:db8:1::5", NOW) is not None
    assert mirror.is_blocked("ip", "2001:db9::5", NOW) is None
    assert mirror.is_blocked("ip", "::ffff:10.1.1.1", NOW) is not None  # IPv4-mapped
    assert mirror.is_blocked("ip", "garbage", NOW) is None
    mirror.unblock("ip", "10.0.0.0/8")
    assert mirror.is_blocked("ip", "10.200.3.4", NOW) is None


def test_single_address_and_other_kinds() -> None:
    mirror = SharedMirror()
    mirror.block(entry("ip", "::ffff:192.0.2.5"))
    mirror.block(entry("principal", "mallory"))
    assert mirror.is_blocked("ip", "192.0.2.5", NOW) is not None
    assert mirror.is_blocked("principal", "mallory", NOW) is not None
    assert mirror.is_blocked("api_key", "mallory", NOW) is None  # kinds are separate


def test_blocks_and_revocations_lapse() -> None:
    mirror = SharedMirror()
    mirror.block(entry("ip", "192.0.2.0/24", until=NOW + 10))
    mirror.revoke_token("j", NOW + 10)
    assert mirror.is_blocked("ip", "192.0.2.1", NOW + 9) is not None
    assert mirror.is_blocked("ip", "192.0.2.1", NOW + 10) is None
    # A revoked token stays refused for the verifier's largest clock leeway after its exp
    # (it used to work again from exp to exp + leeway).
    assert mirror.is_token_revoked("j", NOW + 9)
    assert mirror.is_token_revoked("j", NOW + 10 + REVOCATION_GRACE - 1)
    assert not mirror.is_token_revoked("j", NOW + 10 + REVOCATION_GRACE)
    mirror.prune(NOW + 11)
    assert mirror.blocks() == []
    assert mirror.is_token_revoked("j", NOW + 11)  # kept by the prune too
    mirror.prune(NOW + 10 + REVOCATION_GRACE)
    assert not mirror.is_token_revoked("j", NOW + 10)


def test_subject_not_before_only_moves_forward() -> None:
    mirror = SharedMirror()
    mirror.revoke_subject("alice", NOW)
    mirror.revoke_subject("alice", NOW - 100)
    assert mirror.subject_not_before("alice") == NOW
    assert mirror.subject_not_before("bob") is None


def test_freshness_horizon() -> None:
    assert SharedMirror().fresh(NOW)
    mirror = SharedMirror(fresh_until=-math.inf)
    assert not mirror.fresh(NOW)
    mirror.mark_fresh_until(NOW + 5)
    assert mirror.fresh(NOW + 5)
    assert not mirror.fresh(NOW + 5.01)


def test_replace_swaps_everything() -> None:
    mirror = SharedMirror()
    mirror.block(entry("ip", "10.0.0.0/8"))
    mirror.replace({"j": NOW + 1}, {"s": NOW}, [entry("principal", "p")])
    assert mirror.is_blocked("ip", "10.0.0.1", NOW) is None
    assert mirror.is_blocked("principal", "p", NOW) is not None
    assert mirror.is_token_revoked("j", NOW)


@pytest.mark.parametrize(
    ("kind", "value", "normalized"),
    [
        ("ip", "10.1.2.3/8", "10.0.0.0/8"),
        ("ip", "192.0.2.7/32", "192.0.2.7"),
        ("ip", " 2001:DB8::1 ", "2001:db8::1"),
        ("api_key", "k_123", "k_123"),
        # as the audit log and the dashboard name the key's principal
        ("api_key", "apikey:k_123", "k_123"),
        ("principal", " u-eve\n", "u-eve"),
    ],
)
def test_normalize_block_value(kind: str, value: str, normalized: str) -> None:
    assert normalize_block_value(kind, value) == normalized


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("ip", "10.0.0.0/33"),
        ("ip", ""),
        ("user", "x"),
        ("principal", "x" * 2000),
        ("principal", "u-\neve"),
        ("principal", "   "),
        ("api_key", "k\x1b[2J"),
    ],
)
def test_normalize_block_value_rejects(kind: str, value: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        normalize_block_value(kind, value)
