"""Key format, checksum, hashing and the usability rules of a record."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.apikeys import ApiKeyRecord, generate_key, hash_key, key_checksum_ok
from bastion.apikeys.model import (
    KEY_LENGTH,
    SCANNER_REGEX,
    display_prefix,
    generate_key_id,
    key_format_problem,
    parse_networks,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api-keys.md"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def record(**changes: object) -> ApiKeyRecord:
    base = ApiKeyRecord(
        key_id="key_abcdefghijkl",
        name="ci",
        prefix="bst_live_abc",
        key_hash="0" * 64,
        roles=("reader",),
        scopes=(),
        created_at=1000.0,
        expires_at=None,
        revoked_at=None,
        allowed_networks=(),
        rotated_from=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("env", ["live", "test"])
def test_generated_keys_have_the_documented_shape(env: str) -> None:
    key = generate_key(env)
    assert len(key) == KEY_LENGTH == 58
    assert re.fullmatch(rf"bst_{env}_[A-Za-z0-9_-]{{43}}[A-Za-z0-9]{{6}}", key)
    assert key_checksum_ok(key)
    assert display_prefix(key) == key[:12]
    assert re.fullmatch(r"key_[A-Za-z0-9]{12}", generate_key_id())


def test_keys_are_unique_and_env_is_checked() -> None:
    assert len({generate_key() for _ in range(200)}) == 200
    with pytest.raises(ValueError):
        generate_key("prod")


@given(st.data())
def test_any_single_character_typo_is_refused(data: st.DataObject) -> None:
    key = generate_key()
    position = data.draw(st.integers(min_value=9, max_value=KEY_LENGTH - 1))
    # An offset, not a filtered character: what is drawn must not depend on the random key,
    # or Hypothesis cannot replay an example (FlakyStrategyDefinition).
    offset = data.draw(st.integers(min_value=1, max_value=len(ALPHABET) - 1))
    replacement = ALPHABET[(ALPHABET.index(key[position]) + offset) % len(ALPHABET)]
    typo = key[:position] + replacement + key[position + 1 :]
    assert not key_checksum_ok(typo)


@given(st.integers(min_value=9, max_value=KEY_LENGTH - 2))
def test_adjacent_transpositions_are_refused(position: int) -> None:
    key = generate_key()
    swapped = key[:position] + key[position + 1] + key[position] + key[position + 2 :]
    if swapped != key:
        assert not key_checksum_ok(swapped)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda k: k[:-1],
        lambda k: k + "0",
        lambda k: " " + k[1:],
        lambda k: k.replace("bst_live_", "bst_prod_"),
        lambda k: k.replace("bst_", "BST_"),
        lambda k: k[:20] + "é" + k[21:],
        lambda k: k[:20] + "=" + k[21:],
        lambda k: "",
    ],
)
def test_malformed_keys_are_named_malformed(mutate: object) -> None:
    key = mutate(generate_key())  # type: ignore[operator]
    assert key_format_problem(key) == "apikey.malformed"


def test_non_canonical_base64_is_malformed() -> None:
    key = generate_key()
    body = key[:51] + "B"  # 'B' cannot end a canonical 32-byte encoding
    from bastion.apikeys.model import _checksum

    assert key_format_problem(body + _checksum(body)) == "apikey.malformed"


def test_hash_is_sha256_hex_of_the_whole_key() -> None:
    key = generate_key()
    digest = hash_key(key)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest != hash_key(generate_key())
    assert key not in digest


def test_docs_publish_the_scanner_regex_and_it_finds_leaked_keys() -> None:
    assert SCANNER_REGEX in DOCS.read_text(encoding="utf-8")
    live, test = generate_key("live"), generate_key("test")
    leaked = f'config = {{"token": "{live}"}}\nexport KEY={test}\nnot: xbst_live_{"a" * 49}'
    assert re.findall(SCANNER_REGEX, leaked) == [live, test]


def test_usable_reasons() -> None:
    assert record().usable(5000.0, "192.0.2.1") is None
    assert record(revoked_at=900.0).usable(5000.0, "192.0.2.1") == "apikey.revoked"
    # A revocation stamped by a clock that runs ahead still refuses at once.
    assert record(revoked_at=9000.0).usable(5000.0, "192.0.2.1") == "apikey.revoked"
    expiring = record(expires_at=2000.0)
    assert expiring.usable(1999.0, "192.0.2.1") is None
    assert expiring.usable(2000.0, "192.0.2.1") == "apikey.expired"
    both = record(revoked_at=1500.0, expires_at=1200.0)
    assert both.usable(5000.0, "192.0.2.1") == "apikey.revoked"


@pytest.mark.parametrize(
    ("client_ip", "allowed"),
    [
        ("10.1.2.3", True),
        ("11.0.0.1", False),
        ("192.168.7.200", True),
        ("192.168.8.1", False),
        ("2001:db8::1", True),
        ("2001:db8:ffff::42", True),
        ("2001:db9::1", False),
        ("::ffff:10.9.9.9", True),
        ("::ffff:11.0.0.1", False),
        ("fe80::1%eth0", False),
        ("not-an-ip", False),
        ("", False),
        ("10.1.2.3/32", False),
    ],
)
def test_network_allow_list_ipv4_and_ipv6(client_ip: str, allowed: bool) -> None:
    networks = parse_networks(["10.0.0.0/8", "192.168.7.0/24", "2001:db8::/32"])
    rec = record(allowed_networks=networks)
    assert (rec.usable(5000.0, client_ip) is None) is allowed
    if not allowed:
        assert rec.usable(5000.0, client_ip) == "apikey.network"


def test_empty_allow_list_means_any_address() -> None:
    assert record().usable(1.0, "203.0.113.9") is None
    assert record().usable(1.0, "2001:db8::9") is None


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "300.0.0.0/8", "2001:db8::/129", "any"])
def test_invalid_networks_are_refused_with_their_value(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid network"):
        parse_networks([bad])


def test_networks_are_normalised() -> None:
    assert parse_networks([" 2001:DB8:0::/32 ", "10.0.0.0/8"]) == ("2001:db8::/32", "10.0.0.0/8")


def test_the_documented_checksum_vector() -> None:
    key = "bst_live_" + "A" * 43 + "0LTjDA"
    assert key_checksum_ok(key)
    assert "0LTjDA" in DOCS.read_text(encoding="utf-8")
    assert key_format_problem(key[:-1] + "B") == "apikey.checksum"
