"""``format: email``: what the compiled check accepts, against a reference implementation.

The gateway compiles ``format: email`` to jsonschema-rs' native check plus patterns
(:mod:`bastion.contract.formats`). The reference below is the RFC 5321 mailbox written
out in Python (one pass with ``str`` operations, :mod:`ipaddress` for address literals);
the property test holds the compiled check to it on generated addresses.
"""

from __future__ import annotations

import ipaddress
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.contract.schema import SchemaCompiler

_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_ATEXT_DOT = _ATEXT | {"."}
_LDH = frozenset(string.ascii_letters + string.digits + "-")
_QTEXT = frozenset(chr(c) for c in range(32, 127)) - {'"', "\\"}
_VCHAR_SP = frozenset(chr(c) for c in range(32, 127))


def _dot_atom(text: str) -> bool:
    """Non-empty atext parts separated by single dots (``text`` is not empty)."""
    return text[0] != "." and text[-1] != "." and ".." not in text and _ATEXT_DOT.issuperset(text)


def _quoted(text: str) -> bool:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return False
    escaped = False
    for char in text[1:-1]:
        if escaped:
            if char not in _VCHAR_SP:
                return False
            escaped = False
        elif char == "\\":
            escaped = True
        elif char not in _QTEXT:
            return False
    return not escaped


def _is_hostname(text: str) -> bool:
    """RFC 1123 §2.1 host name: LDH labels of 1–63 characters, 253 in all."""
    if not text or len(text) > 253:
        return False
    for label in text.split("."):
        if not (0 < len(label) <= 63) or label[0] == "-" or label[-1] == "-":
            return False
        if not _LDH.issuperset(label):
            return False
    return True


def _literal(text: str) -> bool:
    inner = text[1:-1]
    try:
        if inner[:5].lower() == "ipv6:":
            ipaddress.IPv6Address(inner[5:])
        else:
            ipaddress.IPv4Address(inner)
    except ValueError:
        return False
    return True


def _reference_is_email(value: object) -> bool:
    """RFC 5321 mailbox (ASCII; internationalised addresses are ``idn-email``)."""
    if not isinstance(value, str):
        return True  # formats only constrain strings
    if len(value) > 254 or not value.isascii():
        return False
    local, at, domain = value.rpartition("@")
    if not at or not local or len(local) > 64 or not domain:
        return False
    if not (_dot_atom(local) or _quoted(local)):
        return False
    if domain[0] == "[" and domain[-1] == "]":
        return _literal(domain)
    return _is_hostname(domain)


_EMAIL = SchemaCompiler({}, "3.1", "response").validator_for({"type": "string", "format": "email"})


def _accepted(value: object) -> bool:
    return bool(_EMAIL.is_valid(value))


VALID = [
    "ada@example.com",
    "a@b",
    "first.last+tag@sub.example.org",
    '"with space"@example.com',
    '"quoted\\"quote"@example.com',
    '"at@sign"@example.com',
    "user@[192.0.2.1]",
    "user@[IPv6:2001:db8::1]",
    # Upper-case IDNA A-label: valid, but jsonschema-rs' own check refuses it.
    "CKTR@d.H.P1rN3.n.Z.l.p.xN--6fRZ82G",
    # "--" in the third and fourth places of a label that is not IDNA: refused there too.
    "EQ--CLl@EQ--CLl",
    "o'brien@example.ie",
    "x" * 64 + "@example.com",
    "a@" + ("b" * 63 + ".") * 3 + "b" * 60,  # 254 characters
]
INVALID = [
    "",
    "plain",
    "@example.com",
    "a@",
    ".a@example.com",
    "a.@example.com",
    "a..b@example.com",
    "a@-example.com",
    "a@example-.com",
    "a@exa_mple.com",
    "a@example..com",
    "a b@example.com",
    "ü@example.com",
    "a@ü.example",
    "a@[300.1.1.1]",
    "a@[IPv6:zz::1]",
    "a@[example.com]",
    '"unterminated@example.com',
    "Ada <ada@example.com>",
    "x" * 65 + "@example.com",
    "a@" + "b" * 64 + ".com",
    "a@" + ("b" * 60 + ".") * 5 + "com",
    "x" * 64 + "@" + ("b" * 60 + ".") * 3 + "b" * 10,  # 255 characters
    "a@b\n",
    "a@b.EQ--CLl\n",
]


@pytest.mark.parametrize("value", VALID)
def test_valid_addresses(value: str) -> None:
    assert _reference_is_email(value)
    assert _accepted(value)


@pytest.mark.parametrize("value", INVALID)
def test_invalid_addresses(value: str) -> None:
    assert not _reference_is_email(value)
    assert not _accepted(value)


def test_hostname_and_non_strings() -> None:
    assert _is_hostname("api.example.com")
    assert not _is_hostname("")
    # formats constrain strings only; the type keyword handles the rest
    untyped = SchemaCompiler({}, "3.1", "response").validator_for({"format": "email"})
    assert untyped.is_valid(42)


def test_huge_inputs_are_linear() -> None:
    # No timing assertion: a backtracking check would not finish within the test timeout.
    assert not _accepted("a" * 1_000_000 + "@" + "b." * 500_000)
    assert not _accepted('"' + "\\" * 1_000_001 + '"@x')
    assert not _accepted("a" * 64 + "@" + "b-" * 500_000)


_LITERALS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"IPv6:{a}"),
    st.from_regex(r"(IPv6:|ipv6:)?[0-9a-fA-F:.]{0,45}", fullmatch=True),
)
_LABELS = st.lists(st.integers(1, 63).map(lambda n: "b" * n), min_size=1, max_size=5)
_ADDRESSES = st.one_of(
    st.emails(),
    # near the size limits: 64 for the local part, 63 per label, 253 and 254 in all
    st.builds(lambda n, labels: "x" * n + "@" + ".".join(labels), st.integers(1, 66), _LABELS),
    st.text(max_size=40),
    st.builds(lambda a, d: f"{a}@[{d}]", st.from_regex(r"[a-z]{1,5}", fullmatch=True), _LITERALS),
    st.builds(
        lambda local, domain: f"{local}@{domain}",
        st.from_regex(r"[a-zA-Z0-9!#$%&'*+/=?^_`{|}~.\"\\ @\n-]{1,70}", fullmatch=True),
        st.from_regex(r"[a-zA-Z0-9.@\n-]{1,260}", fullmatch=True),
    ),
)


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(_ADDRESSES)
def test_the_compiled_check_accepts_exactly_the_valid_addresses(value: str) -> None:
    assert _accepted(value) == _reference_is_email(value)
