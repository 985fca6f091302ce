"""`bastion demo` end to end: the JSON line, then every advertised status through sockets."""

from __future__ import annotations

import http.client
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.procs import run_demo

BASTION = str(Path(sys.executable).with_name("bastion"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("demo-state")
    with run_demo(state) as info:
        yield info


def call(
    info: dict[str, Any],
    method: str,
    path: str,
    token: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    url = urlsplit(info["gateway_url"])
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=15)
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {info['tokens'][token]}"
    try:
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_json_line_has_everything_a_client_needs(demo: dict[str, Any]) -> None:
    for key in (
        "gateway_url",
        "upstream_url",
        "identity_url",
        "jwks_url",
        "tokens",
        "users",
        "clients",
        "admin_url",
        "admin_token",
    ):
        assert key in demo
    assert set(demo["tokens"]) == {"alice", "bob", "admin"}
    assert {"alice", "bob", "admin"} <= set(demo["users"])
    assert demo["clients"]["demo"]["client_secret"]


@pytest.mark.parametrize(
    ("method", "path", "token", "status"),
    [
        ("GET", "/health", None, 200),
        ("GET", "/v2/orders/o-1001", None, 401),
        ("GET", "/v2/orders/o-1001", "alice", 200),
        ("GET", "/v2/orders/o-2001", "alice", 404),
        ("GET", "/v2/admin/reports", "alice", 403),
        ("GET", "/v2/admin/reports", "admin", 200),
        ("GET", "/v2/orders/o-2001", "admin", 200),
        ("GET", "/v2/debug", None, 404),
        ("DELETE", "/health", None, 405),
    ],
)
def test_demo_statuses(
    demo: dict[str, Any], method: str, path: str, token: str | None, status: int
) -> None:
    got, headers, _ = call(demo, method, path, token)
    assert got == status
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"


def test_password_hash_never_leaves(demo: dict[str, Any]) -> None:
    status, _, body = call(demo, "GET", "/v2/users/u-alice", "alice")
    assert status == 200
    assert b"password_hash" not in body
    assert b"internal_notes" not in body


def test_oversized_body_is_413(demo: dict[str, Any]) -> None:
    status, headers, _ = call(
        demo,
        "POST",
        "/v2/login",
        body=b"x" * 2_000_000,
        headers={"content-type": "application/json"},
    )
    assert status == 413
    assert headers["content-type"] == "application/problem+json"


def test_token_from_identity_service_works_for_a_client(demo: dict[str, Any]) -> None:
    url = urlsplit(demo["identity_url"])
    client = demo["clients"]["demo"]
    import base64

    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=15)
    conn.request(
        "POST",
        "/token",
        body=b"grant_type=client_credentials&resource=api://shop",
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    response = conn.getresponse()
    token = json.loads(response.read())
    conn.close()
    assert response.status == 200, token
    assert token["token_type"].lower() == "bearer"


def test_every_request_leaves_an_audit_line_without_secrets(demo: dict[str, Any]) -> None:
    call(demo, "GET", "/v2/orders/o-1001", "alice")
    audit = Path(demo["audit_log"])
    # Audit lines are written in batches: wait for them instead of guessing a delay.
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = audit.read_text() if audit.exists() else ""
        if text.endswith("\n") and text.count("\n") >= 10:
            break
        time.sleep(0.05)
    events = [json.loads(line) for line in text.splitlines()]
    assert len(events) >= 10
    for token in demo["tokens"].values():
        assert token not in text
        assert token.split(".")[2] not in text
    for password in demo["users"].values():
        assert password not in text
    assert all(e["request_id"] for e in events if e["event"] == "request")


def test_background_enumeration_is_detected_and_blocked(demo: dict[str, Any]) -> None:
    """The demo's attacker (mallory) probes other customers' orders; the enumeration
    detector fires and its playbook blocks mallory, visible through the admin API."""
    url = urlsplit(demo["admin_url"])
    deadline = time.monotonic() + 60
    blocks: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("GET", "/blocks", headers={"Authorization": f"Bearer {demo['admin_token']}"})
        response = conn.getresponse()
        blocks = json.loads(response.read())["blocks"]
        conn.close()
        if any(b["value"] == "u-mallory" for b in blocks):
            break
        time.sleep(1)
    assert any(b["kind"] == "principal" and b["value"] == "u-mallory" for b in blocks)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("GET", "/incidents", headers={"Authorization": f"Bearer {demo['admin_token']}"})
    incidents = json.loads(conn.getresponse().read())["incidents"]
    conn.close()
    assert any(i.get("detector") == "enumeration" for i in incidents)
