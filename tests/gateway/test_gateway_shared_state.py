"""Two gateway processes sharing a real Redis: revocations and blocks made through one
gateway's admin API (and the CLI) take effect on the other within a second."""

from __future__ import annotations

import http.client
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.keys import KeyIssuer, make_issuer
from tests.support.procs import GatewayProc, Upstream, dev_config, free_port, run_gateway

BASTION = str(Path(sys.executable).with_name("bastion"))
ADMIN_TOKEN = "adm-" + secrets.token_urlsafe(32)
PROPAGATION_DEADLINE = 1.0

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> KeyIssuer:
    return make_issuer(tmp_path_factory.mktemp("sharedkeys"))


@pytest.fixture(scope="module")
def pair(
    upstream: Upstream, issuer: KeyIssuer, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProc, GatewayProc]]:
    tmp = tmp_path_factory.mktemp("shared")
    prefix = f"bastion-test-{secrets.token_hex(4)}"
    state = f"state: {{backend: redis, url: '{redis_url}', prefix: {prefix}}}\n"
    routes = """
      - {path: /echo, methods: [GET], allow: authenticated}
"""
    admin_port = free_port()
    first = dev_config(
        upstream.url,
        routes=routes,
        extra=issuer.config()
        + state
        + (f"admin: {{port: {admin_port}, token: '${{ADMIN_TOKEN}}'}}\n"),
    )
    second = dev_config(upstream.url, routes=routes, extra=issuer.config() + state)
    env = {"ADMIN_TOKEN": ADMIN_TOKEN}
    with run_gateway(first, tmp, env=env) as one, run_gateway(second, tmp, env=env) as two:
        yield one, two


def status(gw: GatewayProc, token: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    try:
        conn.request("GET", "/echo", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def cli(gw: GatewayProc, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [BASTION, *args, "--config", str(gw.config)],
        capture_output=True,
        text=True,
        env={"ADMIN_TOKEN": ADMIN_TOKEN, "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def wait_for(gw: GatewayProc, token: str, expected: int) -> float:
    """Seconds until ``gw`` answers ``expected`` for ``token`` (fails past the deadline)."""
    start = time.monotonic()
    while True:
        if status(gw, token) == expected:
            return time.monotonic() - start
        if time.monotonic() - start > PROPAGATION_DEADLINE:
            pytest.fail(f"gateway still did not answer {expected} after {PROPAGATION_DEADLINE}s")
        time.sleep(0.01)


def test_token_revocation_reaches_the_other_gateway(
    pair: tuple[GatewayProc, GatewayProc], issuer: KeyIssuer
) -> None:
    one, two = pair
    jti = secrets.token_hex(8)
    token = issuer.token("u-carol", ["customer"], jti=jti)
    assert status(two, token) == 200  # also warms the verified-token cache
    answer = cli(one, "revoke", "token", jti, "--reason", "laptop stolen")
    assert answer["revoked"] == "token"
    # Without the token's exp, kept for years: a revocation must not lapse before its token.
    assert answer["expires_at"] > time.time() + 5 * 365 * 86_400
    wait_for(two, token, 401)
    assert status(one, token) == 401
    other = issuer.token("u-carol", ["customer"])
    assert status(two, other) == 200  # only that token


def test_subject_revocation_ends_every_older_token(
    pair: tuple[GatewayProc, GatewayProc], issuer: KeyIssuer
) -> None:
    one, two = pair
    old = issuer.token("u-dave", ["customer"], iat=int(time.time()) - 30)
    assert status(two, old) == 200
    cli(one, "revoke", "subject", "u-dave")
    wait_for(two, old, 401)
    fresh = issuer.token("u-dave", ["customer"], iat=int(time.time()) + 1, nbf=int(time.time()))
    assert status(two, fresh) == 200


def test_block_and_unblock_ip_everywhere(
    pair: tuple[GatewayProc, GatewayProc], issuer: KeyIssuer
) -> None:
    one, two = pair
    token = issuer.token("u-erin", ["customer"])
    cli(one, "block", "ip", "127.0.0.0/8", "--ttl", "5m", "--reason", "enumeration")
    wait_for(two, token, 403)
    listed = cli(one, "blocks")
    assert any(b["value"] == "127.0.0.0/8" for b in listed["blocks"])  # type: ignore[attr-defined]
    cli(one, "unblock", "ip", "127.0.0.0/8")
    wait_for(two, token, 200)


def test_block_principal_everywhere(
    pair: tuple[GatewayProc, GatewayProc], issuer: KeyIssuer
) -> None:
    one, two = pair
    token = issuer.token("u-frank", ["customer"])
    cli(one, "block", "principal", "u-frank", "--reason", "scraping")
    wait_for(two, token, 403)
    assert status(two, issuer.token("u-grace", ["customer"])) == 200
    cli(one, "unblock", "principal", "u-frank")
    wait_for(two, token, 200)


def test_admin_api_requires_its_credential(pair: tuple[GatewayProc, GatewayProc]) -> None:
    one, _ = pair
    text = one.config.read_text()
    port = int(text.split("admin: {port: ")[1].split(",")[0])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(
        "POST",
        "/blocks",
        body=b'{"kind":"ip","value":"10.0.0.1"}',
        headers={"Authorization": "Bearer wrong"},
    )
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 401
    event = one.wait_event(lambda e: e.get("event") == "admin_action" and e["status"] == 401)
    assert event["actor"] is None
    assert ADMIN_TOKEN not in one.audit.read_text()
