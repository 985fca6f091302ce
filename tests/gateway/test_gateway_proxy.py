"""The proxy through real sockets: a real gateway process in front of a real upstream."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.support.procs import GatewayProc, Upstream
from tests.support.rawhttp import get, raw_request

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def request(
    gw: GatewayProc,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def upstream_headers(record: dict[str, object]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in record["headers"]}  # type: ignore[attr-defined]


def test_forwards_request_and_returns_upstream_answer(
    gateway: GatewayProc, upstream: Upstream
) -> None:
    status, headers, body = request(
        gateway,
        "POST",
        "/echo/42?q=1",
        body=b'{"a": 1}',
        headers={"content-type": "application/json"},
    )
    assert status == 200
    echoed = json.loads(body)
    assert echoed["path"] == "/echo/42"
    assert echoed["query"] == "q=1"
    assert echoed["body"] == '{"a": 1}'
    assert headers["x-request-id"]
    assert upstream_headers(echoed)["x-request-id"] == headers["x-request-id"]


def test_unknown_path_is_404_problem_and_never_forwarded(
    gateway: GatewayProc, upstream: Upstream
) -> None:
    status, headers, body = request(gateway, "GET", "/admin")
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 404
    assert problem["code"] == "not_found"
    assert upstream.received() == []


def test_undeclared_method_is_405_with_allow(gateway: GatewayProc, upstream: Upstream) -> None:
    status, headers, _ = request(gateway, "DELETE", "/hop")
    assert status == 405
    assert headers["allow"] == "GET, HEAD, OPTIONS"  # OPTIONS: the API has CORS
    assert upstream.received() == []


@pytest.mark.parametrize("path", ["/echo", "/nope", "/_bastion/health/live"])
def test_security_headers_on_every_response(gateway: GatewayProc, path: str) -> None:
    _, headers, _ = request(gateway, "GET", path)
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers.get("server") == "gateway"


def test_upstream_fingerprint_and_hop_by_hop_response_headers_removed(
    gateway: GatewayProc,
) -> None:
    status, headers, _ = request(gateway, "GET", "/hop")
    assert status == 200
    for name in (
        "x-powered-by",
        "keep-alive",
        "x-hop-custom",
        "proxy-authenticate",
        "trailer",
        "upgrade",
    ):
        assert name not in headers, name
    assert headers.get("server") == "gateway"
    # Upstream CORS headers never pass: the gateway is the only CORS authority.
    assert "access-control-allow-origin" not in headers


@pytest.mark.parametrize(
    "header",
    [
        "Connection: close, X-Secret-Hop\r\nX-Secret-Hop: 1\r\n",
        "Keep-Alive: timeout=5\r\n",
        "TE: trailers\r\n",
        "Trailer: X-Foo\r\n",
        "Upgrade: websocket\r\n",
        "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n",
        "Proxy-Connection: keep-alive\r\n",
    ],
)
def test_hop_by_hop_request_headers_never_reach_upstream(
    gateway: GatewayProc, upstream: Upstream, header: str
) -> None:
    name = header.split(":", 1)[0].lower()
    raw = (
        f"GET /echo HTTP/1.1\r\nHost: x\r\n{header}"
        + ("" if name == "connection" else "Connection: close\r\n")
        + "\r\n"
    )
    response = raw_request(gateway.port, raw.encode())
    assert response is not None
    assert response.status == 200
    received = upstream_headers(upstream.received()[-1])
    assert name not in received
    if name == "connection":
        assert "x-secret-hop" not in received


def test_spoofed_x_forwarded_for_is_ignored(gateway: GatewayProc, upstream: Upstream) -> None:
    status, _, _ = request(
        gateway,
        "GET",
        "/echo",
        headers={
            "X-Forwarded-For": "6.6.6.6",
            "Forwarded": "for=6.6.6.6",
            "X-Real-IP": "6.6.6.6",
            "X-Bastion-Subject": "admin",
        },
    )
    assert status == 200
    received = upstream_headers(upstream.received()[-1])
    assert received["x-forwarded-for"] == "127.0.0.1"
    assert received["forwarded"].startswith("for=127.0.0.1;proto=http")
    assert "x-real-ip" not in received
    assert "x-bastion-subject" not in received
    event = gateway.event_for(received["x-request-id"])
    assert event["client_ip"] == "127.0.0.1"
    assert event["request_id"] == received["x-request-id"]


def test_headers_spelt_with_underscores_never_reach_the_upstream(
    gateway: GatewayProc, upstream: Upstream
) -> None:
    """CGI-style upstreams (Django, WSGI bridges, PHP-FPM) read X_Bastion_Roles as
    X-Bastion-Roles: an identity the client chose, on a public route the only one."""
    status, _, _ = request(
        gateway,
        "GET",
        "/echo",
        headers={
            "X_Bastion_Roles": "admin",
            "X_Bastion_Subject": "u-alice",
            "X_Forwarded_For": "10.0.0.1",
            "X_HTTP_Method_Override": "DELETE",
            "X_Account": "u-alice",
            "X-Account": "u-bob",
        },
    )
    assert status == 200
    received = upstream_headers(upstream.received()[-1])
    assert [name for name in received if "_" in name] == []
    assert received["x-account"] == "u-bob"
    assert received["x-forwarded-for"] == "127.0.0.1"


@pytest.mark.parametrize(
    "raw_path",
    [
        "/echo/../admin",
        "/echo/./x",
        "/echo/%2e%2e/admin",
        "/echo/%2E/x",
        "/echo/.%2e/x",
        "/echo/%252e%252e/admin",
        "/echo/%25%32%65%25%32%65/admin",  # decodes to %2e%2e: double-encoded by escaping
        "/echo/%25%32%66admin",
        "/echo/%25%35%43admin",
        "/echo%2fadmin",
        "/echo/%2F",
        "/echo%5cadmin",
        "/echo/..;/admin",
        "/echo/%00",
        "/echo/%0d%0aX:1",
        "/echo//x",
        "/echo/%zz",
        "/echo/%c0%ae%c0%ae/admin",
        "/echo/\\admin",
    ],
)
def test_path_confusion_refused_and_not_forwarded(
    gateway: GatewayProc, upstream: Upstream, raw_path: str
) -> None:
    response = get(gateway.port, raw_path)
    assert response is not None
    assert response.status in (400, 404), raw_path
    assert upstream.received() == []


def test_a_refused_path_is_audited_as_it_came_never_with_control_bytes(
    gateway: GatewayProc, upstream: Upstream
) -> None:
    """Terminal escapes percent-encoded in a path are refused (400); the audit event names
    the path as sent, still encoded, so nobody reading the log gets the raw bytes."""
    raw_path = "/echo/%1b]0;PWNED%07%1b[2J%e2%80%ae"
    response = get(gateway.port, raw_path, headers="X-Request-ID: escape-path-0001\r\n")
    assert response is not None
    assert response.status == 400
    event = gateway.event_for("escape-path-0001")
    assert event["path"] == raw_path
    assert not any(ord(c) < 0x20 or ord(c) >= 0x7F for c in event["path"])
    assert upstream.received() == []


def test_the_admin_dashboard_session_cookie_never_reaches_the_upstream(
    gateway: GatewayProc, upstream: Upstream
) -> None:
    from bastion.gateway.headers import ADMIN_SESSION_COOKIE
    from bastion.observability.dashboard import SESSION_COOKIE

    assert ADMIN_SESSION_COOKIE == SESSION_COOKIE
    cookies = {
        "app=1; bastion_session=1999999999.NONCE.MAC; theme=dark": "app=1; theme=dark",
        "bastion_session=1999999999.NONCE.MAC": None,
        "bastion_sessions=kept": "bastion_sessions=kept",
    }
    for sent, forwarded in cookies.items():
        status, _, body = request(gateway, "GET", "/echo", headers={"Cookie": sent})
        assert status == 200
        assert upstream_headers(json.loads(body)).get("cookie") == forwarded


def test_cl_and_te_together_never_desyncs_the_upstream(
    gateway: GatewayProc, upstream: Upstream
) -> None:
    """CL.TE smuggling: "GPOST" hidden after a zero-length chunked body.

    uvicorn (h11) and the gateway itself refuse CL+TE with 400. granian's HTTP parser
    (hyper) applies RFC 9112 §6.1 before the app sees the request: Transfer-Encoding wins,
    Content-Length is discarded and the connection is closed after the answer. Either way
    the smuggled second request must never reach the upstream, and what does reach it is
    re-framed by the gateway with an exact Content-Length.
    """
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGPOST /echo HTTP/1.1\r\n\r\n"
    )
    response = raw_request(gateway.port, raw)
    received = upstream.received()
    if response is not None and response.status == 200:
        assert response.headers.get("connection") == "close"
        assert len(received) == 1
        assert received[0]["body_len"] == 0
    else:
        assert response is None or response.status == 400
        assert received == []
    assert all(r["method"] != "GPOST" for r in received)


@pytest.mark.parametrize("value", ["abc", "-1", "1, 2", "+5", "0x10"])
def test_invalid_content_length_refused(
    gateway: GatewayProc, upstream: Upstream, value: str
) -> None:
    raw = (
        f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n"
        "Connection: close\r\n\r\nabcde"
    ).encode()
    response = raw_request(gateway.port, raw)
    assert response is None or response.status == 400
    assert upstream.received() == []


def test_body_over_limit_is_413_and_not_forwarded(gateway: GatewayProc, upstream: Upstream) -> None:
    status, headers, body = request(gateway, "POST", "/echo", body=b"x" * 4096)
    assert status == 413
    assert json.loads(body)["code"] == "payload_too_large"
    assert headers["content-type"] == "application/problem+json"
    assert upstream.received() == []


def test_chunked_body_over_limit_is_413_and_not_forwarded(
    gateway: GatewayProc, upstream: Upstream
) -> None:
    chunk = b"x" * 1000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + body
    )
    response = raw_request(gateway.port, raw)
    assert response is not None
    assert response.status == 413
    assert upstream.received() == []


def test_headers_over_limit_are_431(gateway: GatewayProc, upstream: Upstream) -> None:
    status, _, _ = request(gateway, "GET", "/echo", headers={"X-Big": "y" * 5000})
    assert status == 431
    assert upstream.received() == []


def test_streams_large_upstream_response(gateway: GatewayProc) -> None:
    status, _, body = request(gateway, "GET", "/big?bytes=3000000")
    assert status == 200
    assert len(body) == 3_000_000


def test_cors_preflight_allowed_origin(gateway: GatewayProc, upstream: Upstream) -> None:
    status, headers, _ = request(
        gateway,
        "OPTIONS",
        "/echo",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert "POST" in headers["access-control-allow-methods"]
    assert upstream.received() == []


def test_cors_never_reflects_unlisted_origin(gateway: GatewayProc) -> None:
    status, _, _ = request(
        gateway,
        "OPTIONS",
        "/echo",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert status == 403
    status, headers, _ = request(
        gateway, "GET", "/echo", headers={"Origin": "https://evil.example.com"}
    )
    assert status == 200
    assert "access-control-allow-origin" not in headers
    _, headers, _ = request(gateway, "GET", "/echo", headers={"Origin": "https://app.example.com"})
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert "Origin" in headers["vary"]


def test_health_endpoints(gateway: GatewayProc) -> None:
    status, _, body = request(gateway, "GET", "/_bastion/health/live")
    assert status == 200
    status, _, body = request(gateway, "GET", "/_bastion/health/ready")
    assert status == 200
    assert json.loads(body)["checks"] == {"echo": True, "state": True}


def test_incoming_request_id_kept_when_well_formed(gateway: GatewayProc) -> None:
    _, headers, _ = request(gateway, "GET", "/echo", headers={"X-Request-ID": "abc-123-def-456"})
    assert headers["x-request-id"] == "abc-123-def-456"
    _, headers, _ = request(gateway, "GET", "/echo", headers={"X-Request-ID": "bad id\x01"[:6]})
    assert headers["x-request-id"] != "bad id"
