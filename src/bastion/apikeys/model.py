"""API key format, hashing and the stored record.

A key looks like ``bst_live_<43 chars><6 chars>``:

* ``bst_`` — the Bastion marker, so secret scanners can recognise a leaked key;
* ``live_`` or ``test_`` — the environment the key belongs to;
* 43 characters of unpadded base64url (RFC 4648 §5) encoding 32 random bytes (256 bits);
* 6 characters of base62 CRC32 over everything before it (the GitHub token layout), so a
  typo or a truncated paste is refused without touching the store.

Only :func:`hash_key` (SHA-256 of the full key, hex) is ever stored, plus a public key id
(``key_<12 chars>``) and the first 12 characters of the key for display. A slow password
hash is unnecessary: guessing a 256-bit random secret is infeasible whatever the hash speed,
while a fast hash keeps per-request lookups cheap.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import zlib
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "ENVIRONMENTS",
    "KEY_LENGTH",
    "KEY_PATTERN",
    "SCANNER_REGEX",
    "ApiKeyRecord",
    "display_prefix",
    "generate_key",
    "generate_key_id",
    "hash_key",
    "key_checksum_ok",
    "key_environment",
    "key_format_problem",
    "parse_networks",
]

ENVIRONMENTS = ("live", "test")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SECRET_CHARS = 43
_CHECKSUM_CHARS = 6
#: Total length of every key: ``bst_`` + env (4) + ``_`` + 43 + 6.
KEY_LENGTH = 4 + 4 + 1 + _SECRET_CHARS + _CHECKSUM_CHARS
#: Pattern of a well-formed key, for ``fullmatch`` (checksum not verified).
KEY_PATTERN = re.compile(r"bst_(live|test)_([A-Za-z0-9_-]{43})([0-9A-Za-z]{6})", re.ASCII)
#: Unpadded base64url of 32 bytes leaves 2 zero bits in the last character: only these 16
#: characters can end a canonical encoding.
#: For secret scanners: finds keys inside arbitrary text (verify the checksum to cut noise).
SCANNER_REGEX = (
    r"(?<![A-Za-z0-9_-])bst_(?:live|test)_[A-Za-z0-9_-]{43}[A-Za-z0-9]{6}(?![A-Za-z0-9_-])"
)
_CANONICAL_LAST = frozenset("AEIMQUYcgkosw048")
_DISPLAY_CHARS = 12
_KEY_ID_CHARS = 12

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


_PAIRS = tuple(a + b for a in _BASE62 for b in _BASE62)  # two base62 digits per lookup


def _checksum(body: str) -> str:
    """Base62 CRC32 of ``body``, zero-padded to 6 characters (62**6 > 2**32)."""
    high, rest = divmod(zlib.crc32(body.encode("ascii")), 3844 * 3844)
    middle, low = divmod(rest, 3844)
    return _PAIRS[high] + _PAIRS[middle] + _PAIRS[low]


def generate_key(env: str = "live") -> str:
    """A new random key for ``env`` (``live`` or ``test``). Show it once, store its hash."""
    if env not in ENVIRONMENTS:
        raise ValueError(f"env must be one of {', '.join(ENVIRONMENTS)}")
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    body = f"bst_{env}_{secret}"
    return body + _checksum(body)


def generate_key_id() -> str:
    """A public identifier, ``key_`` followed by 12 base62 characters (~71 random bits)."""
    return "key_" + "".join(secrets.choice(_BASE62) for _ in range(_KEY_ID_CHARS))


def key_format_problem(key: str) -> str | None:
    """``None`` for a well-formed key with a valid checksum, else the audit reason code:
    ``apikey.malformed`` (wrong shape) or ``apikey.checksum`` (typo, truncation)."""
    if len(key) != KEY_LENGTH:
        return "apikey.malformed"
    match = KEY_PATTERN.fullmatch(key)
    if match is None or match.group(2)[-1] not in _CANONICAL_LAST:
        return "apikey.malformed"
    body = key[:-_CHECKSUM_CHARS]
    if not hmac.compare_digest(_checksum(body), match.group(3)):
        return "apikey.checksum"
    return None


def key_checksum_ok(key: str) -> bool:
    """True when ``key`` is well-formed and its checksum matches (no store involved)."""
    return key_format_problem(key) is None


def key_environment(key_or_prefix: str) -> str:
    """The environment (``live``/``test``) named by a key or its display prefix."""
    for env in ENVIRONMENTS:
        if key_or_prefix.startswith(f"bst_{env}_"):
            return env
    raise ValueError("not a Bastion API key prefix")


def hash_key(key: str) -> str:
    """SHA-256 of the full key, lower-case hex: the only form in which a key is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    """The first 12 characters (``bst_live_AbC``): enough to recognise a key, never to use it."""
    return key[:_DISPLAY_CHARS]


@lru_cache(maxsize=4096)
def _parsed_networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c, strict=True) for c in cidrs)


def parse_networks(cidrs: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate CIDRs (host bits must be zero) and return them normalised.

    Raises :class:`ValueError` naming the bad entry.
    """
    result = []
    for cidr in cidrs:
        try:
            result.append(str(ipaddress.ip_network(cidr.strip(), strict=True)))
        except ValueError as exc:
            raise ValueError(f"invalid network {cidr!r}: {exc}") from None
    return tuple(result)


@lru_cache(maxsize=65536)
def _ip_allowed(client_ip: str, cidrs: tuple[str, ...]) -> bool:
    """Memoised: the gateway sees the same few (address, allow-list) pairs over and over."""
    try:
        networks = _parsed_networks(cidrs)
        address = ipaddress.ip_address(client_ip.split("%", 1)[0])
    except ValueError:
        return False
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(
        candidate.version == network.version and candidate in network
        for candidate in candidates
        for network in networks
    )


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """What the store knows about one key. Never holds the key itself."""

    key_id: str
    name: str
    prefix: str
    key_hash: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    allowed_networks: tuple[str, ...]
    rotated_from: str | None

    def usable(self, now: float, client_ip: str) -> str | None:
        """``None`` when the key may be used now from ``client_ip``, else the reason code:
        ``apikey.revoked``, ``apikey.expired`` or ``apikey.network``.

        Fails closed: an unparsable client address is outside every allow-list. An
        IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) is matched against IPv4 networks too.
        """
        if self.revoked_at is not None:
            return "apikey.revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "apikey.expired"
        if self.allowed_networks and not _ip_allowed(client_ip, self.allowed_networks):
            return "apikey.network"
        return None

    def status(self, now: float) -> str:
        """``active``, ``revoked`` or ``expired``, for listings."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"
