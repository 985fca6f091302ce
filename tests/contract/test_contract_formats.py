"""The email format Bastion checks itself (linear time, no regex)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.contract.formats import is_email, is_hostname


@pytest.mark.parametrize(
    "value",
    [
        "ada@example.com",
        "a@b",
        "first.last+tag@sub.example.org",
        '"with space"@example.com',
        '"quoted\\"quote"@example.com',
        "user@[192.0.2.1]",
        "user@[IPv6:2001:db8::1]",
        # Upper-case IDNA A-label: valid, but jsonschema-rs refuses it.
        "CKTR@d.H.P1rN3.n.Z.l.p.xN--6fRZ82G",
        "o'brien@example.ie",
    ],
)
def test_valid_addresses(value: str) -> None:
    assert is_email(value)


@pytest.mark.parametrize(
    "value",
    [
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
        "a@[300.1.1.1]",
        "a@[IPv6:zz::1]",
        '"unterminated@example.com',
        "x" * 65 + "@example.com",
        "a@" + "b" * 64 + ".com",
        "a@" + ("b" * 60 + ".") * 5 + "com",
    ],
)
def test_invalid_addresses(value: str) -> None:
    assert not is_email(value)


def test_hostname_and_non_strings() -> None:
    assert is_hostname("api.example.com")
    assert not is_hostname("")
    assert is_email(42)  # formats constrain strings only; the type keyword handles the rest


def test_huge_inputs_are_linear() -> None:
    # No timing assertion: a backtracking check would not finish within the test timeout.
    assert not is_email("a" * 1_000_000 + "@" + "b." * 500_000)
    assert not is_email('"' + "\\" * 1_000_001 + '"@x')


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='a.-+@ ü"', min_size=1, max_size=12))
def test_dot_atom_is_non_empty_atext_parts_between_single_dots(text: str) -> None:
    from bastion.contract.formats import _ATEXT, _dot_atom

    parts = text.split(".")
    assert _dot_atom(text) == all(part and _ATEXT.issuperset(part) for part in parts)
