"""The local, synchronous view of the shared sets, consulted on every request.

Every lookup is a dictionary access (IP blocks add one lookup per distinct CIDR prefix
length in use). The owning store keeps the mirror current — the memory store writes it
directly, the Redis store loads it at start, applies pub/sub changes and resyncs
periodically — and moves :meth:`SharedMirror.fresh`'s horizon forward whenever it shows the
mirror current. When that horizon passes, callers must fail closed (503).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping

from bastion.state.base import BLOCK_KINDS, BlockEntry

__all__ = ["REVOCATION_GRACE", "SharedMirror", "normalize_block_value"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_MAX_VALUE = 1024
#: A revoked token stays refused this long after its ``exp``: the JWT verifier accepts a
#: token until ``exp`` plus its clock leeway, which is at most 60 s (config ``leeway``).
REVOCATION_GRACE = 60.0


def _parse_ip(value: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalize_block_value(kind: str, value: str) -> str:
    """Validate and normalise a block target; raise ValueError when it is not usable.

    ``ip`` accepts an address or a CIDR network (host bits are cleared: ``10.1.2.3/8`` →
    ``10.0.0.0/8``); IPv4-mapped IPv6 addresses are stored as IPv4. Values are trimmed and
    hold no control character; an ``api_key`` block takes the key's id, also when given as
    its principal's name (``apikey:<id>``).
    """
    if kind not in BLOCK_KINDS:
        raise ValueError(f"unknown block kind {kind!r} (use ip, principal or api_key)")
    if isinstance(value, str):
        value = value.strip()
    if not isinstance(value, str) or not value or len(value) > _MAX_VALUE:
        raise ValueError(f"a {kind} block needs a non-empty value of at most {_MAX_VALUE} chars")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        # "u-eve\n" was listed as a block and matched nobody (nor could it be lifted).
        raise ValueError(f"a {kind} block value cannot hold control characters")
    if kind == "api_key":
        # Principals of API keys are named "apikey:<id>" (audit log, dashboard); the block
        # matches the id.
        return value.removeprefix("apikey:")
    if kind != "ip":
        return value
    address = _parse_ip(value)
    if address is not None:
        return str(address)
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"invalid IP address or CIDR network {value!r}") from None
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


class SharedMirror:
    """Revoked tokens, per-subject not-before times and blocks, held locally."""

    def __init__(self, *, fresh_until: float = math.inf) -> None:
        self._revoked: dict[str, float] = {}
        self._not_before: dict[str, float] = {}
        self._blocks: dict[tuple[str, str], BlockEntry] = {}
        # (ip version, prefix length) -> {network address as int: entry}
        self._networks: dict[tuple[int, int], dict[int, BlockEntry]] = {}
        self._ip_blocks = 0
        self._fresh_until = fresh_until

    # -- per-request checks (synchronous, O(1)) ---------------------------------------

    def is_token_revoked(self, jti: str, now: float) -> bool:
        """True while the token ``jti`` is revoked: until it expires, and for
        :data:`REVOCATION_GRACE` after (the verifier accepts it that much longer)."""
        expires_at = self._revoked.get(jti)
        return expires_at is not None and expires_at + REVOCATION_GRACE > now

    def subject_not_before(self, subject: str) -> float | None:
        """Tokens of ``subject`` issued before this time are revoked."""
        return self._not_before.get(subject)

    def is_blocked(self, kind: str, value: str, now: float) -> BlockEntry | None:
        """The active block matching ``value`` (for ``ip`` also CIDR blocks), else None."""
        entry = self._blocks.get((kind, value))
        if entry is not None and entry.active(now):
            return entry
        if kind != "ip" or not self._ip_blocks:
            return None
        address = _parse_ip(value)
        if address is None:
            return None
        entry = self._blocks.get(("ip", str(address)))
        if entry is not None and entry.active(now):
            return entry
        as_int = int(address)
        bits = address.max_prefixlen
        for (version, prefixlen), networks in self._networks.items():
            if version != address.version:
                continue
            shift = bits - prefixlen
            entry = networks.get((as_int >> shift) << shift)
            if entry is not None and entry.active(now):
                return entry
        return None

    def fresh(self, now: float) -> bool:
        """False when the backend has been unreachable longer than the allowed staleness."""
        return now <= self._fresh_until

    def blocks(self) -> list[BlockEntry]:
        return list(self._blocks.values())

    # -- maintenance (called by the owning store) ---------------------------------------

    def mark_fresh_until(self, horizon: float) -> None:
        self._fresh_until = horizon

    def revoke_token(self, jti: str, expires_at: float) -> None:
        current = self._revoked.get(jti)
        self._revoked[jti] = expires_at if current is None else max(current, expires_at)

    def revoke_subject(self, subject: str, not_before: float) -> None:
        current = self._not_before.get(subject)
        self._not_before[subject] = not_before if current is None else max(current, not_before)

    def block(self, entry: BlockEntry) -> None:
        """Add a block; it never shortens an active one (a playbook's 10-minute block of a
        client an operator blocked for good would end the operator's block)."""
        current = self._blocks.get((entry.kind, entry.value))
        if (
            current is not None
            and current.active(entry.created_at)
            and (current.until is None or (entry.until is not None and current.until > entry.until))
        ):
            return
        self.unblock(entry.kind, entry.value)
        self._blocks[(entry.kind, entry.value)] = entry
        if entry.kind == "ip":
            self._ip_blocks += 1
            if "/" in entry.value:
                network = ipaddress.ip_network(entry.value)
                slot = self._networks.setdefault((network.version, network.prefixlen), {})
                slot[int(network.network_address)] = entry

    def unblock(self, kind: str, value: str) -> None:
        entry = self._blocks.pop((kind, value), None)
        if entry is None or kind != "ip":
            return
        self._ip_blocks -= 1
        if "/" in value:
            network = ipaddress.ip_network(value)
            index = (network.version, network.prefixlen)
            slot = self._networks.get(index)
            if slot is not None:
                slot.pop(int(network.network_address), None)
                if not slot:
                    del self._networks[index]

    def replace(
        self,
        revoked: Mapping[str, float],
        not_before: Mapping[str, float],
        blocks: Iterable[BlockEntry],
    ) -> None:
        """Swap in a full snapshot (start-up load or periodic resync)."""
        fresh = SharedMirror()
        fresh._revoked = dict(revoked)
        fresh._not_before = dict(not_before)
        for entry in blocks:
            fresh.block(entry)
        self._revoked = fresh._revoked
        self._not_before = fresh._not_before
        self._blocks = fresh._blocks
        self._networks = fresh._networks
        self._ip_blocks = fresh._ip_blocks

    def prune(self, now: float) -> None:
        """Drop revocations of expired tokens and lapsed blocks."""
        self._revoked = {k: v for k, v in self._revoked.items() if v + REVOCATION_GRACE > now}
        for entry in [e for e in self._blocks.values() if not e.active(now)]:
            self.unblock(entry.kind, entry.value)
