"""The monitor wired into a real gateway: /metrics and the dashboard on the admin listener."""

from __future__ import annotations

import http.client
import secrets
import time
from pathlib import Path

from tests.support.procs import Upstream, dev_config, free_port, run_gateway

TOKEN = "adm-" + secrets.token_urlsafe(32)


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_metrics_and_dashboard_on_the_admin_listener(tmp_path: Path, upstream: Upstream) -> None:
    admin_port = free_port()
    extra = (
        f"admin: {{port: {admin_port}, token: '${{ADMIN}}'}}\n"
        "monitoring: {detectors: {enumeration: {distinct_objects: 5}}}\n"
    )
    with run_gateway(dev_config(upstream.url, extra=extra), tmp_path, env={"ADMIN": TOKEN}) as gw:
        for _ in range(3):
            assert get(gw.port, "/echo")[0] == 200
        assert get(gw.port, "/nowhere")[0] == 404
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert get(admin_port, "/metrics")[0] == 401
        status, text = 0, ""
        for _ in range(50):  # the monitor aggregates in the background
            status, text = get(admin_port, "/metrics", auth)
            if 'route="/echo",status="200"} 3.0' in text:
                break
            time.sleep(0.1)
        assert status == 200
        assert 'route="/echo",status="200"} 3.0' in text
        assert 'reason="route.unknown_path"' in text
        status, page = get(admin_port, "/dashboard")
        assert status in (200, 303)
        assert TOKEN not in page
