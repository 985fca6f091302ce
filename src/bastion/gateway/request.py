"""Incoming request hygiene: path normalisation, framing checks, the real client IP.

Everything here runs before routing, on every request, and refuses ambiguity rather than
guessing: the path we match is exactly the path the upstream receives, so a path that two
parsers could read differently (``/admin/..%2fusers``, ``/%2e%2e/``, ``/a%5cb``,
``/..;/admin``) is a 400, never a pass-through.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from urllib.parse import quote, unquote_to_bytes

from bastion.errors import (
    BadRequest,
    HeadersTooLarge,
    PayloadTooLarge,
    RequestSmuggling,
    UnsupportedMediaType,
)
from bastion.types import Headers

__all__ = ["TrustedProxies", "check_framing", "normalize_path", "without_path_parameters"]

_HEX = frozenset("0123456789abcdefABCDEF")
# Characters left unescaped when re-encoding a decoded path for the upstream (RFC 3986 pchar).
_PCHAR_SAFE = "/!$&'()*+,;=:@-._~"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_FORBIDDEN_BYTE = re.compile(rb"[^\x21-\x7e]|\\")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
#: A Host header: a name or IPv4 address, or an IPv6 literal, and an optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\Z")
#: Paths made only of unreserved characters and sub-delimiters need no decoding.
_PLAIN = re.compile(r"[A-Za-z0-9/!$&'()*+,=:@._~-]*\Z")


def normalize_path(raw_path: bytes) -> tuple[str, str]:
    """Return ``(decoded_path, encoded_path)`` for a request target's path, or raise.

    ``decoded_path`` is what routes match against; ``encoded_path`` is its canonical
    percent-encoding, which is what the upstream receives.
    """
    if not raw_path.startswith(b"/"):
        raise RequestSmuggling("The request path must start with '/'.", reason="path.not_absolute")
    for byte in raw_path:
        if byte < 0x21 or byte >= 0x7F or byte == 0x5C:  # controls, space, DEL, non-ASCII, '\'
            raise RequestSmuggling(
                "The request path contains a forbidden character.", reason="path.forbidden_byte"
            )
    text = raw_path.decode("ascii")
    if "%" in text:
        _check_escapes(text)
        try:
            decoded = unquote_to_bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise RequestSmuggling(
                "The request path is not valid UTF-8.", reason="path.bad_utf8"
            ) from None
        for char in decoded:
            if ord(char) < 0x20 or ord(char) == 0x7F:
                raise RequestSmuggling(
                    "The request path contains a control character.", reason="path.control_char"
                )
        if "%" in decoded and _ESCAPE.search(decoded):
            # "%25%32%65" decodes to "%2e", which the upstream receives as "%252e": an
            # upstream that decodes twice reads "." (or "/", "\"). Refused like "%252e".
            raise RequestSmuggling(
                "Double percent-encoding is not allowed.", reason="path.double_encoding"
            )
    else:
        decoded = text
    segments = decoded.split("/")
    for index, segment in enumerate(segments[1:], start=1):
        bare = segment.split(";", 1)[0]
        if bare in (".", ".."):
            raise RequestSmuggling(
                "Dot segments are not allowed in the request path.", reason="path.dot_segment"
            )
        if segment == "" and index != len(segments) - 1:
            raise RequestSmuggling(
                "Empty path segments are not allowed.", reason="path.empty_segment"
            )
    encoded = quote(decoded, safe=_PCHAR_SAFE)
    return decoded, encoded


def without_path_parameters(path: str) -> str:
    """``path`` with each segment's ``;parameters`` cut, as servlet containers (Tomcat,
    Jetty, Spring) read it: ``/orders/export;jsessionid=x`` is ``/orders/export`` to them.
    A segment that is only parameters (OpenAPI's matrix style, ``/items/;id=5``) stays."""
    return "/".join(
        segment.split(";", 1)[0] if not segment.startswith(";") else segment
        for segment in path.split("/")
    )


def _check_escapes(text: str) -> None:
    i = 0
    length = len(text)
    while i < length:
        if text[i] == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                raise RequestSmuggling(
                    "Malformed percent-encoding in the request path.", reason="path.bad_escape"
                )
            lowered = pair.lower()
            if lowered in ("2f", "5c"):
                raise RequestSmuggling(
                    "Encoded '/' or '\\' is not allowed in the request path.",
                    reason="path.encoded_separator",
                )
            if lowered == "00":
                raise RequestSmuggling(
                    "Encoded NUL is not allowed in the request path.", reason="path.nul"
                )
            if lowered == "25":
                nxt = text[i + 3 : i + 5]
                if len(nxt) == 2 and nxt[0] in _HEX and nxt[1] in _HEX:
                    raise RequestSmuggling(
                        "Double percent-encoding is not allowed.", reason="path.double_encoding"
                    )
            i += 3
        else:
            i += 1


def check_framing(headers: Headers, *, max_header_bytes: int, max_body_bytes: int) -> int | None:
    """Refuse ambiguous message framing (CL.TE / TE.CL smuggling) and oversized messages.

    Returns the declared Content-Length (or None for chunked / no body).
    """
    if headers.size > max_header_bytes:
        raise HeadersTooLarge(reason="limits.header_bytes")
    hosts = headers.get_all("host")
    if len(hosts) > 1 or (hosts and hosts[0] and not _HOST.match(hosts[0])):
        # The Host goes upstream inside Forwarded (host="…") and X-Forwarded-Host: a quote
        # in it wrote a second Forwarded element of the client's choosing (for=6.6.6.6).
        raise BadRequest("The Host header is not a host name or address.", reason="framing.host")
    if len(headers.get_all("content-type")) > 1:
        # Which one is the body's differs between parsers (the gateway read JSON, Flask a
        # form with another owner field).
        raise BadRequest(
            "Several Content-Type headers are ambiguous.", reason="framing.content_type"
        )
    lengths = headers.get_all("content-length")
    encodings = headers.get_all("transfer-encoding")
    if lengths and encodings:
        raise RequestSmuggling(
            "Content-Length and Transfer-Encoding together are ambiguous.", reason="framing.cl_te"
        )
    if encodings:
        values = [v.strip().lower() for item in encodings for v in item.split(",")]
        if values != ["chunked"]:
            raise RequestSmuggling(
                "Only 'Transfer-Encoding: chunked' is accepted.", reason="framing.bad_te"
            )
        _identity_coded(headers)
        return None
    if not lengths:
        return None
    distinct = {v.strip() for item in lengths for v in item.split(",")}
    if len(distinct) != 1:
        raise RequestSmuggling("Conflicting Content-Length values.", reason="framing.multi_cl")
    value = distinct.pop()
    if not value.isdigit() or not value.isascii() or len(value) > 18:
        raise BadRequest("Invalid Content-Length.", reason="framing.bad_cl")
    length = int(value)
    if length > max_body_bytes:
        raise PayloadTooLarge(reason="limits.body_bytes")
    if length:
        _identity_coded(headers)
    return length


def _identity_coded(headers: Headers) -> None:
    """Refuse a compressed request body: the limits and the contract would read the
    compressed bytes while the upstream unpacks them (48 KB of gzip were 50 MB upstream)."""
    codings = [
        c.strip().lower() for value in headers.get_all("content-encoding") for c in value.split(",")
    ]
    if any(c and c != "identity" for c in codings):
        raise UnsupportedMediaType(
            "Request bodies must not be content-encoded (RFC 7694).",
            reason="framing.content_encoding",
        )


class TrustedProxies:
    """Which TCP peers may tell us the client's address (X-Forwarded-For, Forwarded)."""

    def __init__(self, cidrs: Sequence[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str) -> bool:
        if not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack listener (::) sees IPv4 peers so
        return any(ip in net for net in self._networks)

    def client_ip(self, peer: str, headers: Headers) -> str:
        """The client address: the peer, unless the peer is a trusted proxy.

        Behind trusted proxies, X-Forwarded-For is read right to left and the first address
        that is not itself a trusted proxy is the client (``Forwarded`` when there is no
        X-Forwarded-For: a proxy that writes one does not vouch for the other, which its
        client may have sent). Entries may carry a port (``203.0.113.9:4455``,
        ``"[2001:db8::1]:4711"``). An entry that is no address (``unknown``, ``_hidden``,
        junk) ends the walk at the last trusted hop: what lies left of it was written by
        someone the trusted proxies did not vouch for (a client prepending ``6.6.6.6``).
        A spoofed header from an untrusted peer is ignored entirely. Entries are parsed
        only as far as the walk goes: whatever a client prepends is never read once its
        own address is found.
        """
        if not self.trusts(peer):
            return peer
        if "x-forwarded-for" in headers:
            candidates = _xff_right_to_left(headers)
        else:
            candidates = _forwarded_right_to_left(headers)
        leftmost = ""
        for raw in candidates:
            address = _node_address(raw)
            if not address:
                break
            if not self.trusts(address):
                return address
            leftmost = address
        # Every hop read is a trusted proxy: the first one sent it (none read: the peer).
        return leftmost or peer


def client_key(address: str, ipv6_prefix: int = 64) -> str:
    """Who a limit keyed by the client address counts: the IPv4 address, or the IPv6
    address's ``/ipv6_prefix`` network (``2001:db8:1:2::/64``).

    An IPv6 subscriber is usually given a whole /64 or more (RFC 6177), so a limit per
    address would let one client rotate through 2^64 of them. IPv4-mapped addresses count
    as IPv4; a prefix of 128 counts every address alone.
    """
    return address if ":" not in address else _ipv6_key(address, ipv6_prefix)


@lru_cache(maxsize=8192)  # clients repeat; addresses are short, validated strings
def _ipv6_key(address: str, ipv6_prefix: int) -> str:
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ipv6_prefix >= 128:
        return str(ipaddress.IPv6Address(int(ip)))  # without a zone index
    host_bits = 128 - ipv6_prefix
    return str(ipaddress.IPv6Network(((int(ip) >> host_bits) << host_bits, ipv6_prefix)))


_VISIBLE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))


def path_as_received(raw_path: bytes | None, path: str) -> str:
    """The request path as the client sent it, for the audit log of a request refused
    before its path was accepted: everything but printable ASCII percent-encoded, so a
    path full of control bytes (terminal escapes) cannot reach a log reader raw."""
    if raw_path is None:
        raw_path = path.encode("utf-8", "surrogateescape")
    return quote(raw_path.split(b"?", 1)[0], safe=_VISIBLE_ASCII)


def _xff_right_to_left(headers: Headers) -> Iterator[str]:
    for value in reversed(headers.get_all("x-forwarded-for")):
        for part in reversed(value.split(",")):
            yield part.strip()


def _forwarded_right_to_left(headers: Headers) -> Iterator[str]:
    for value in reversed(headers.get_all("forwarded")):
        for element in reversed(value.split(",")):
            for pair in element.split(";"):
                key, _, val = pair.strip().partition("=")
                if key.lower() == "for":
                    yield val


def _node_address(value: str) -> str:
    """The address of one forwarding entry (``ip``, ``ip:port``, ``[ipv6]``, ``[ipv6]:port``,
    quoted or not), or "" when it is none."""
    value = value.strip().strip('"')
    if value.startswith("["):
        host, closed, rest = value[1:].partition("]")
        if not closed or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return ""
        value = host
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
        if not port.isdigit():
            return ""
        value = host
    return _valid_ip(value)


def _valid_ip(value: str) -> str:
    if not value:
        return ""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return ""
