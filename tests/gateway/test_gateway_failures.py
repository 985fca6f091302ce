"""Upstream failures, trusted proxies, redaction and hot reload, through real processes."""

from __future__ import annotations

import http.client
import json
import signal
import time
from pathlib import Path

import pytest

from tests.support.procs import Upstream, dev_config, free_port, run_gateway
from tests.support.rawhttp import raw_request


def call(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_upstream_down_is_502_problem(tmp_path: Path, server: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with run_gateway(dev_config(dead), tmp_path, server=server) as gw:
        status, headers, body = call(gw.port, "GET", "/echo")
        assert status == 502
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(body)["code"] == "bad_gateway"
        assert headers["x-content-type-options"] == "nosniff"
        event = gw.event_for(headers["x-request-id"])
        assert event["status"] == 502
        assert event["reason"] == "upstream.connect_failed"
        status, _, body = call(gw.port, "GET", "/_bastion/health/ready")
        assert status == 503
        assert json.loads(body)["checks"] == {"echo": False, "state": True}


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_slow_upstream_is_504_problem(tmp_path: Path, upstream: Upstream, server: str) -> None:
    with run_gateway(dev_config(upstream.url), tmp_path, server=server) as gw:
        status, headers, body = call(gw.port, "GET", "/slow?seconds=5")
        assert status == 504
        assert json.loads(body)["code"] == "gateway_timeout"
        assert gw.event_for(headers["x-request-id"])["reason"].startswith("upstream.timeout")


def test_trusted_proxy_supplies_client_ip(tmp_path: Path, upstream: Upstream) -> None:
    config = dev_config(upstream.url, extra="trusted_proxies: [127.0.0.1/32]")
    with run_gateway(config, tmp_path) as gw:
        status, _, body = call(
            gw.port, "GET", "/echo", headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.1"}
        )
        assert status == 200
        received = {k.lower(): v for k, v in json.loads(body)["headers"]}
        assert received["x-forwarded-for"] == "203.0.113.9, 127.0.0.1, 203.0.113.9"
        request_id = {k.lower(): v for k, v in json.loads(body)["headers"]}["x-request-id"]
        assert gw.event_for(request_id)["client_ip"] == "203.0.113.9"


def test_audit_event_per_request_without_secrets(tmp_path: Path, upstream: Upstream) -> None:
    with run_gateway(dev_config(upstream.url), tmp_path) as gw:
        secret = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LXRva2Vu.c2ln"
        call(
            gw.port,
            "GET",
            "/echo?password=hunter2hunter2&page=2",
            headers={
                "Authorization": f"Bearer {secret}",
                "Cookie": "session=abcdef123456",
                "X-API-Key": "bst_live_abcdefabcdef",
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            },
        )
        call(gw.port, "GET", "/missing")
        raw_request(
            gw.port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n"
            b"Connection: close\r\n\r\nxxxx",
        )
        events = gw.audit_events(at_least=3)
        assert [e["status"] for e in events] == [200, 404, 413]
        text = gw.audit.read_text()
        for leaked in (secret, "hunter2hunter2", "abcdef123456", "bst_live_abcdefabcdef"):
            assert leaked not in text
        first = events[0]
        assert first["query"] == {"password": "[REDACTED]", "page": "2"}
        assert first["redacted"] == ["query.password"]
        assert first["traceparent"].startswith("00-4bf92f")
        for key in (
            "time",
            "request_id",
            "client_ip",
            "method",
            "route",
            "path",
            "status",
            "decision",
            "reason",
            "upstream_ms",
            "total_ms",
            "bytes_in",
            "bytes_out",
        ):
            assert key in first
        assert first["time"].endswith("Z")
        assert events[1]["decision"] == "deny"
        assert events[1]["reason"] == "route.unknown_path"


def test_sighup_reload_good_and_bad_config(tmp_path: Path, upstream: Upstream) -> None:
    with run_gateway(dev_config(upstream.url), tmp_path) as gw:
        assert call(gw.port, "GET", "/echo")[0] == 200
        assert call(gw.port, "GET", "/extra")[0] == 404
        original = gw.config.read_text()
        # A broken config: the old one keeps serving and the log says why.
        gw.config.write_text(original.replace("version: 1", "version: 1\nbogus_key: 1"))
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reload_failed" not in gw.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "reload_failed" in gw.stderr_text()
        assert "bogus_key" in gw.stderr_text()
        assert call(gw.port, "GET", "/echo")[0] == 200
        # A good config with a new route: served after the reload.
        gw.config.write_text(
            original.replace(
                "    routes:", "    routes:\n      - {path: /extra, methods: [GET], public: true}"
            )
        )
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        status = 404
        while status == 404 and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                status = call(gw.port, "GET", "/extra")[0]
            except (ConnectionError, OSError):
                status = 404
        assert status == 200
        assert gw.proc.poll() is None


def test_sighup_reload_in_process_on_uvicorn(tmp_path: Path, upstream: Upstream) -> None:
    with run_gateway(dev_config(upstream.url), tmp_path, server="uvicorn") as gw:
        original = gw.config.read_text()
        gw.config.write_text("version: [")
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reload_failed" not in gw.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "invalid YAML" in gw.stderr_text()
        assert call(gw.port, "GET", "/echo")[0] == 200
        gw.config.write_text(
            original.replace(
                "    routes:", "    routes:\n      - {path: /extra, methods: [GET], public: true}"
            )
        )
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while call(gw.port, "GET", "/extra")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert call(gw.port, "GET", "/extra")[0] == 200


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_sigterm_drains_in_flight_requests(tmp_path: Path, upstream: Upstream, server: str) -> None:
    import threading

    results: list[int] = []
    with run_gateway(dev_config(upstream.url), tmp_path, server=server) as gw:

        def slow() -> None:
            results.append(call(gw.port, "GET", "/slow?seconds=1.5")[0])

        worker = threading.Thread(target=slow)
        worker.start()
        deadline = time.monotonic() + 5
        while not any(r["path"] == "/slow" for r in upstream.received()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        gw.proc.send_signal(signal.SIGTERM)
        worker.join(timeout=15)
        gw.proc.wait(timeout=15)  # it exits once drained (uvicorn re-raises SIGTERM)
    assert results == [200]
