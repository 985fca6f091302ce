"""API keys through a real gateway: create with the CLI, call, revoke via the admin API."""

from __future__ import annotations

import http.client
import json
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

from tests.support.procs import Upstream, dev_config, free_port, run_gateway

BASTION = str(Path(sys.executable).with_name("bastion"))
ADMIN = "adm-" + secrets.token_urlsafe(32)


def call(
    port: int, headers: dict[str, str], path: str = "/echo"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_api_key_lifecycle_through_gateway(tmp_path: Path, upstream: Upstream) -> None:
    store = f"sqlite:///{tmp_path / 'keys.db'}"
    created = subprocess.run(
        [
            BASTION,
            "keys",
            "create",
            "--name",
            "reports-bot",
            "--roles",
            "reporter",
            "--store",
            store,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    key = re.search(r"bst_live_[A-Za-z0-9_-]+", created.stdout)
    key_id = re.search(r"key_[A-Za-z0-9]+", created.stdout)
    assert key is not None
    assert key_id is not None
    routes = """
      - {path: /echo, methods: [GET], allow: {roles: [reporter]}}
      - {path: "/echo/{item_id}", methods: [GET], allow: {roles: [admin]}}
"""
    admin_port = free_port()
    extra = (
        f"authentication: {{api_keys: {{store: '{store}', cache_ttl: 30}}}}\n"
        f"admin: {{port: {admin_port}, token: '${{ADMIN}}'}}\n"
    )
    config = dev_config(upstream.url, routes=routes, extra=extra)
    with run_gateway(config, tmp_path, env={"ADMIN": ADMIN}) as gw:
        status, _, body = call(gw.port, {"X-API-Key": key.group(0)})
        assert status == 200
        received = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert "x-api-key" not in received  # the key itself never reaches the upstream
        assert received["x-bastion-auth"] == "api_key"
        assert received["x-bastion-roles"] == "reporter"
        assert call(gw.port, {"X-API-Key": key.group(0)}, "/echo/1")[0] == 403
        typo = key.group(0)[:-1] + ("A" if key.group(0)[-1] != "A" else "B")
        status, _, _ = call(gw.port, {"X-API-Key": typo})
        assert status == 401
        assert call(gw.port, {"X-API-Key": "bst_live_" + "x" * 10})[0] == 401
        # Revoked through the admin API: refused at once, despite the 30 s lookup cache.
        conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
        conn.request(
            "POST",
            "/revoke/api-key",
            body=json.dumps({"key_id": key_id.group(0)}),
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        answer = conn.getresponse()
        assert answer.status == 200, answer.read()
        conn.close()
        deadline = time.monotonic() + 2
        while call(gw.port, {"X-API-Key": key.group(0)})[0] != 401:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert key.group(0) not in gw.audit.read_text()
