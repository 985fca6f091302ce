"""The settings loader: typed, frozen, ${ENV} expansion, errors naming file, line and key."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.identity.check import failed, run_checks
from bastion.identity.settings import load_identity_settings

KEY = base64.urlsafe_b64encode(bytes(range(7, 39))).decode()  # fixed: test ids must be stable


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "identity.yaml"
    path.write_text(text)
    return path


def test_loads_with_env_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_IDENTITY_KEY", KEY)
    settings = load_identity_settings(
        write(tmp_path, "issuer: https://id.example.com\nsecret_key: ${TEST_IDENTITY_KEY}\n")
    )
    assert settings.secret_key.get_secret_value() == KEY
    assert KEY not in repr(settings)
    with pytest.raises(ValueError, match="frozen"):
        settings.mode = "development"  # type: ignore[misc]
    assert not failed(run_checks(settings))


@pytest.mark.parametrize(
    ("text", "location", "message"),
    [
        (
            f"issuer: https://id.example.com\nsecret_key: {KEY}\ntokens:\n  bogus: 1\n",
            ":4: tokens.bogus",
            "unknown key",
        ),
        (
            f"issuer: https://id.example.com\nsecret_key: {KEY}\ntokens:\n  code_ttl: 600\n",
            ":4: tokens.code_ttl",
            "less than or equal to 60",
        ),
        (f"issuer: http://id.example.com\nsecret_key: {KEY}\n", ":1: (root)", "https"),
        ("issuer: https://id.example.com\nsecret_key: c2hvcnQ\n", ":1: (root)", "32 bytes"),
        (
            f"issuer: https://id.example.com\nsecret_key: {KEY}\n"
            "lockout:\n  lockout_threshold: 1000\n",
            ":4: lockout.lockout_threshold",
            "100",
        ),
        ("issuer: https://x\nsecret_key: ${NOT_SET_ANYWHERE_42}\n", "", "NOT_SET_ANYWHERE_42"),
        ("issuer: [unclosed\n", "", "invalid YAML"),
        (
            f"issuer: https://a.example\nsecret_key: {KEY}\nissuer: https://b.example\n",
            ":3: issuer",
            "duplicate key",
        ),
    ],
)
def test_errors_name_file_line_and_key(
    tmp_path: Path, text: str, location: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_identity_settings(path)
    assert str(path) in str(info.value)
    assert location in str(info.value)
    assert message in str(info.value)
    assert KEY not in str(info.value)


def test_inline_secret_refused_in_production(tmp_path: Path) -> None:
    path = write(tmp_path, f"issuer: https://id.example.com\nmode: production\nsecret_key: {KEY}\n")
    with pytest.raises(ConfigError, match=r"identity.yaml:3: secret_key: in production"):
        load_identity_settings(path)
    dev = write(tmp_path, f"issuer: http://127.0.0.1:9\nmode: development\nsecret_key: {KEY}\n")
    assert load_identity_settings(dev).mode == "development"


def test_check_fails_insecure_production_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_IDENTITY_KEY", KEY)
    path = write(
        tmp_path,
        "issuer: https://id.example.com\nsecret_key: ${TEST_IDENTITY_KEY}\naudit: none\n"
        "passwords:\n  min_length: 10\n  argon2: {time_cost: 1, memory_cost: 1024}\n"
        "tokens:\n  access_token_ttl: 7200\n",
    )
    findings = run_checks(load_identity_settings(path))
    bad = {f.rule for f in findings if f.status == "fail"}
    assert failed(findings)
    assert any("minimum length" in rule for rule in bad)
    assert any("Argon2id" in rule for rule in bad)
    assert any("access tokens" in rule for rule in bad)
    assert any("audit" in rule for rule in bad)
    dev = write(
        tmp_path, path.read_text().replace("https://id", "http://id") + "mode: development\n"
    )
    assert not failed(run_checks(load_identity_settings(dev)))
