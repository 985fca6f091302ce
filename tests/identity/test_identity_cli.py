"""The admin CLI: ``bastion identity users|clients|keys|check|migrate``."""

from __future__ import annotations

import base64
from pathlib import Path

from click.testing import CliRunner

from bastion.identity.cli import identity

KEY = base64.urlsafe_b64encode(bytes(range(40, 72))).decode()


def _config(tmp_path: Path, extra: str = "", audit: str = "none") -> Path:
    path = tmp_path / "identity.yaml"
    path.write_text(
        "issuer: https://id.example.com\n"
        "secret_key: ${TEST_CLI_IDENTITY_KEY}\n"
        f'database: {{url: "sqlite+aiosqlite:///{tmp_path / "id.db"}"}}\n'
        f"audit: {audit}\n"
        "passwords: {argon2: {time_cost: 2, memory_cost: 19456}}\n" + extra
    )
    return path


def _run(args: list[str], stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(
        identity, args, input=stdin, env={"TEST_CLI_IDENTITY_KEY": KEY}, catch_exceptions=False
    )
    return result.exit_code, result.output


def test_users_clients_keys_roundtrip(tmp_path: Path) -> None:
    cfg = str(_config(tmp_path))
    code, out = _run(["migrate", "--config", cfg])
    assert code == 0, out
    code, out = _run(
        [
            "users",
            "add",
            "--config",
            cfg,
            "carol",
            "--role",
            "customer",
            "--password-stdin",
            "--mfa",
        ],
        "correct horse battery staple 42\n",
    )
    assert code == 0, out
    assert "otpauth://totp/" in out
    assert "recovery codes" in out
    code, out = _run(
        ["users", "add", "--config", cfg, "dave", "--password-stdin"], "password1234567\n"
    )
    assert code == 1
    assert "commonly used or breached" in out
    code, out = _run(["users", "reset-mfa", "--config", cfg, "carol"])
    assert code == 0, out
    code, out = _run(["users", "disable", "--config", cfg, "carol"])
    assert code == 0, out
    code, out = _run(["users", "disable", "--config", cfg, "nobody"])
    assert code == 1
    assert "no such user" in out

    code, out = _run(
        ["clients", "add", "--config", cfg, "--name", "svc", "--client-id", "svc-1",
         "--grant", "client_credentials", "--scope", "read"]
    )  # fmt: skip
    assert code == 0, out
    secret = out.split("client_secret (shown once): ")[1].split()[0]
    code, out = _run(["clients", "list", "--config", cfg])
    assert "svc-1" in out
    assert secret not in out
    code, out = _run(["clients", "rotate-secret", "--config", cfg, "svc-1"])
    assert code == 0
    assert secret not in out
    code, out = _run(
        ["clients", "add", "--config", cfg, "--name", "bad", "--grant", "authorization_code",
         "--redirect-uri", "http://evil.example/cb"]
    )  # fmt: skip
    assert code == 1
    assert "redirect URI must be" in out

    code, out = _run(["keys", "list", "--config", cfg])
    before = set(out.split())
    assert len(before) == 2
    code, out = _run(["keys", "rotate", "--config", cfg])
    assert code == 1
    assert "not been published long enough" in out
    code, out = _run(["keys", "rotate", "--config", cfg, "--force"])
    assert code == 0, out
    code, out = _run(["keys", "list", "--config", cfg])
    assert len(set(out.split())) == 3


def test_check_passes_secure_and_fails_insecure_production(tmp_path: Path) -> None:
    code, out = _run(["check", "--config", str(_config(tmp_path, audit="stdout"))])
    assert code == 0, out
    assert "PKCE" in out
    code, out = _run(
        [
            "check",
            "--config",
            str(_config(tmp_path, "tokens: {access_token_ttl: 86400}\n", "stdout")),
        ]
    )
    assert code == 1
    assert "fail" in out


def test_bad_config_names_file_and_line(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "sessions: {idle_ttl: 5, unknown: 1}\n")
    code, out = _run(["check", "--config", str(cfg)])
    assert code == 1
    assert f"{cfg}:6: sessions" in out


def test_serve_runs_on_granian_and_uvicorn(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.conftest import free_port

    bastion = str(Path(sys.executable).with_name("bastion"))
    for server in ("granian", "uvicorn"):
        port = free_port()
        cfg = tmp_path / f"{server}.yaml"
        cfg.write_text(
            f"issuer: http://127.0.0.1:{port}\nmode: development\nsecret_key: {KEY}\n"
            f"listen: {{port: {port}}}\n"
            f'database: {{url: "sqlite+aiosqlite:///{tmp_path / (server + ".db")}"}}\n'
        )
        proc = subprocess.Popen(
            [bastion, "identity", "serve", "--config", str(cfg), "--server", server],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={**os.environ},
        )
        try:
            url = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
            for _ in range(300):
                try:
                    with urllib.request.urlopen(url, timeout=1) as resp:
                        assert resp.status == 200
                        assert f"127.0.0.1:{port}/.well-known/jwks.json".encode() in resp.read()
                        break
                except OSError:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    time.sleep(0.1)
            else:
                raise AssertionError(f"{server} did not start")
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=15)
            if proc.stderr:
                proc.stderr.close()
