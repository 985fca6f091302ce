"""What a client sends that the upstream would read otherwise is refused, unforwarded.

Found by an audit of the client side, each through a real gateway on both servers: a Host
with a quote wrote a second ``Forwarded`` element of the client's choosing; two
Content-Type headers let the gateway read JSON where Flask read a form (past an owner
rule); a gzip body passed the size limit as 48 KB and reached the upstream as 50 MB; a
streamed body that stopped arriving held its request and upstream connection forever.
"""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import GatewayProc, Upstream, dev_config, run_gateway, run_upstream
from tests.support.rawhttp import raw_request


@pytest.fixture(scope="module", params=["granian", "uvicorn"])
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProc, Upstream]]:
    tmp: Path = tmp_path_factory.mktemp("client-requests")
    with run_upstream(tmp) as upstream:
        config = dev_config(
            upstream.url, extra="limits: {max_body_bytes: 1048576, body_timeout: 1}"
        )
        with run_gateway(config, tmp, server=request.param) as gw:
            yield gw, upstream


def _send(gw: GatewayProc, head: str, body: bytes = b"") -> int:
    response = raw_request(gw.port, head.encode("latin-1") + b"\r\n" + body)
    assert response is not None
    return response.status


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ('Host: x", for=6.6.6.6;proto=https;host="admin.internal\r\n', 400),
        ("Host: a.example\r\nHost: b.example\r\n", 400),
        (
            "Host: a.example\r\nContent-Type: application/json\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n",
            400,
        ),
    ],
)
def test_ambiguous_request_heads_are_refused_unforwarded(
    servers: tuple[GatewayProc, Upstream], headers: str, status: int
) -> None:
    gw, upstream = servers
    upstream.clear()
    body = b'{"account": "u-bob"}'
    head = f"POST /echo HTTP/1.1\r\n{headers}Content-Length: {len(body)}\r\nConnection: close\r\n"
    assert _send(gw, head, body) == status
    assert upstream.received() == []


def test_host_names_and_addresses_with_ports_pass(servers: tuple[GatewayProc, Upstream]) -> None:
    gw, _ = servers
    for host in ("api.example.com", "api.example.com:8443", "127.0.0.1:80", "[::1]:443"):
        head = f"GET /echo HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        assert _send(gw, head) == 200, host


def test_a_compressed_body_is_refused_unforwarded(servers: tuple[GatewayProc, Upstream]) -> None:
    gw, upstream = servers
    upstream.clear()
    body = gzip.compress(b"0" * 5_000_000)  # a few KB on the wire, 5 MB unpacked
    head = (
        "POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Encoding: gzip\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    )
    assert _send(gw, head, body) == 415
    assert upstream.received() == []


def test_a_streamed_body_that_stops_arriving_times_out(
    servers: tuple[GatewayProc, Upstream],
) -> None:
    gw, _ = servers
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: 500000\r\n\r\n" + b"x" * 10
        )
        sock.settimeout(20)  # body_timeout is 1 s: the answer comes long before
        began = time.monotonic()
        answer = sock.recv(65536)
        waited = time.monotonic() - began
    assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer[:80]
    assert waited < 20


def test_a_malformed_chunked_body_is_a_400_from_the_gateway(
    servers: tuple[GatewayProc, Upstream],
) -> None:
    """granian reports a body it cannot read as a disconnect; the gateway sent nothing and
    granian answered 500 itself (with its own Server header)."""
    gw, upstream = servers
    upstream.clear()
    head = (
        "POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n"
    )
    response = raw_request(gw.port, head.encode() + b"\r\n5\r\nhelloXX0\r\n\r\n")
    assert response is not None
    assert response.status == 400
    assert upstream.received() == []
