"""``bastion keys`` through click's CliRunner, against a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bastion.apikeys import ApiKeyAuthenticator, ApiKeyRecord, open_store
from bastion.apikeys.cli import keys, parse_duration, parse_expiry
from bastion.apikeys.model import SCANNER_REGEX
from bastion.errors import Unauthorized


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli-keys.db'}"


def run(store_url: str, *args: str) -> Result:
    return CliRunner().invoke(keys, [*args, "--store", store_url], catch_exceptions=False)


def found_keys(output: str) -> list[str]:
    return re.findall(SCANNER_REGEX, output)


def authenticate(store_url: str, key: str, ip: str = "127.0.0.1") -> ApiKeyRecord:
    async def go() -> ApiKeyRecord:
        store = open_store(store_url)
        await store.start()
        try:
            return await ApiKeyAuthenticator(store).authenticate(key, ip)
        finally:
            await store.close()

    return asyncio.run(go())


def test_create_prints_the_key_once_and_list_never_shows_it(store_url: str) -> None:
    created = run(
        store_url,
        "create",
        "--name",
        "billing job",
        "--roles",
        "reader, billing",
        "--scopes",
        "orders:read",
        "--expires",
        "30d",
        "--network",
        "127.0.0.0/8",
        "--network",
        "::1/128",
    )
    assert created.exit_code == 0, created.output
    [key] = found_keys(created.output)
    assert created.output.count(key) == 1
    assert key.startswith("bst_live_")
    key_id = re.search(r"key_[A-Za-z0-9]{12}", created.output)
    assert key_id is not None
    assert "shown only once" in created.output

    record = authenticate(store_url, key)
    assert record.key_id == key_id.group(0)
    assert record.roles == ("reader", "billing")
    assert record.allowed_networks == ("127.0.0.0/8", "::1/128")

    listed = run(store_url, "list")
    assert listed.exit_code == 0
    assert found_keys(listed.output) == []
    assert key[12:20] not in listed.output
    header, row = listed.output.splitlines()
    assert header.split() == [
        "ID",
        "NAME",
        "PREFIX",
        "ROLES",
        "SCOPES",
        "CREATED",
        "EXPIRES",
        "STATUS",
    ]
    assert key_id.group(0) in row
    assert key[:12] in row
    assert "reader,billing" in row
    assert row.endswith("active")

    as_json = json.loads(run(store_url, "list", "--json").output)
    assert as_json[0]["id"] == key_id.group(0)
    assert as_json[0]["status"] == "active"
    assert key not in json.dumps(as_json)


def test_rotate_then_revoke(store_url: str) -> None:
    first = run(store_url, "create", "--name", "ci", "--env", "test", "-q")
    old_key = first.output.strip()
    assert found_keys(first.output) == [old_key]
    assert old_key.startswith("bst_test_")
    old_id = authenticate(store_url, old_key).key_id

    rotated = run(store_url, "rotate", old_id, "--overlap", "1h")
    assert rotated.exit_code == 0, rotated.output
    [new_key] = found_keys(rotated.output)
    assert rotated.output.count(new_key) == 1
    assert new_key.startswith("bst_test_")
    new = authenticate(store_url, new_key)
    assert new.rotated_from == old_id
    assert authenticate(store_url, old_key).key_id == old_id  # overlap

    again = run(store_url, "rotate", old_id)
    assert again.exit_code == 1
    assert "already rotated" in again.output

    revoked = run(store_url, "revoke", new.key_id)
    assert revoked.exit_code == 0
    with pytest.raises(Unauthorized) as info:
        authenticate(store_url, new_key)
    assert info.value.reason == "apikey.revoked"
    assert run(store_url, "revoke", new.key_id).exit_code == 1
    assert run(store_url, "revoke", "key_unknown00000").exit_code == 1
    statuses = {
        row["id"]: row["status"] for row in json.loads(run(store_url, "list", "--json").output)
    }
    assert statuses == {old_id: "active", new.key_id: "revoked"}


def test_store_comes_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    runner = CliRunner(env={"BASTION_KEYS_STORE": url})
    created = runner.invoke(keys, ["create", "--name", "from-env", "-q"])
    assert created.exit_code == 0, created.output
    assert authenticate(url, created.output.strip()).name == "from-env"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["create", "--name", "x", "--expires", "soon"], 2, "invalid expiry"),
        (["create", "--name", "x", "--expires", "2001-01-01"], 1, "in the future"),
        (["create", "--name", "x", "--network", "10.0.0.1/8"], 1, "invalid network"),
        (["create", "--name", "x", "--roles", "a b"], 1, "invalid role"),
        (["create", "--name", "x", "--env", "prod"], 2, "prod"),
        (["rotate", "key_unknown00000"], 1, "key_unknown00000"),
        (["rotate", "key_unknown00000", "--overlap", "forever"], 2, "invalid duration"),
    ],
)
def test_bad_input_is_a_clear_error(
    store_url: str, args: list[str], code: int, message: str
) -> None:
    result = CliRunner().invoke(keys, [*args, "--store", store_url])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_unsupported_or_unreachable_store_does_not_echo_the_url() -> None:
    for url in ("mysql://admin:hunter2@db/keys", "postgresql://admin:hunter2@127.0.0.1:1/keys"):
        result = CliRunner().invoke(keys, ["list", "--store", url])
        assert result.exit_code == 1, result.output
        assert "hunter2" not in result.output


def test_durations_and_expiry_dates() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2W") == 14 * 86400
    assert parse_expiry("12h", 1000.0) == 1000.0 + 43200
    midnight = datetime(2027, 1, 31, tzinfo=UTC).timestamp()
    assert parse_expiry("2027-01-31", 0.0) == midnight
    assert parse_expiry("2027-01-31T12:00:00+02:00", 0.0) == midnight + 10 * 3600
    assert parse_expiry("2027-01-31T12:00:00", 0.0) == midnight + 12 * 3600
    for bad in ("", "d", "30", "-5d", "1.5h"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    # 999999999w used to be stored, and every later `keys list` failed on its year.
    with pytest.raises(ValueError, match="more than 100 years"):
        parse_expiry("999999999w", 0.0)
