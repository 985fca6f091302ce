"""An upstream that answers outside HTTP: the client gets a clean 502 or a visibly cut answer.

A real gateway (granian, the default server) in front of a raw socket upstream that sends
canned bytes per path. Each case used to do worse: a status of 000, 099 or 999 made granian
panic and the gateway process exit (every API down); a body on an interim (1xx) answer was
read into the final answer's; trailer fields became response headers; a body cut off
mid-stream reached the client as a complete, correctly terminated answer.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import GatewayProc, dev_config, run_gateway

ANSWERS: dict[str, bytes] = {
    "/ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "/status/000": b"HTTP/1.1 000 X\r\nContent-Length: 2\r\n\r\nok",
    "/status/099": b"HTTP/1.1 099 X\r\nContent-Length: 2\r\n\r\nok",
    "/status/999": b"HTTP/1.1 999 X\r\nContent-Length: 2\r\n\r\nok",
    "/interim-body": (
        b"HTTP/1.1 150 X\r\nContent-Length: 9\r\n\r\nINJECTED!"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    ),
    "/trailers": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\nSet-Cookie: sid=from-trailer\r\nX-From-Trailer: 1\r\n\r\n"
    ),
    # The upstream dies in the middle of a chunked body (no last chunk).
    "/cut-chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
        b"\r\nf\r\n" + b'{"items": [1, 2' + b"\r\n"
    ),
    "/cut-length": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"a" * 70_000,
}
CLOSE_AFTER = {"/cut-chunked", "/cut-length"}


def _serve(conn: socket.socket) -> None:
    buffer = b""
    with conn:
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode("latin-1")
                conn.sendall(ANSWERS[path])
                if path in CLOSE_AFTER:
                    return
        except OSError:
            return


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    tmp: Path = tmp_path_factory.mktemp("misbehaving-upstream")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    routes = "".join(
        f"\n      - {{path: {path}, methods: [GET], public: true}}" for path in ANSWERS
    )
    try:
        with run_gateway(dev_config(f"http://127.0.0.1:{port}", routes=routes), tmp) as gw:
            yield gw
    finally:
        listener.close()


def _get(gw: GatewayProc, path: str) -> tuple[int, dict[str, str], bytes | None]:
    """Status, headers (lower-case names) and body, or None for a body that was cut off."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        try:
            body: bytes | None = response.read()
        except http.client.IncompleteRead:
            body = None
        return response.status, headers, body
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/status/000", "/status/099", "/status/999", "/interim-body"])
def test_an_answer_outside_http_is_a_502_and_the_gateway_serves_on(
    gateway: GatewayProc, path: str
) -> None:
    status, headers, body = _get(gateway, path)
    assert status == 502, body
    assert headers["content-type"] == "application/problem+json"
    assert body is not None
    assert b"INJECTED" not in body
    assert gateway.event_for(headers["x-request-id"])["reason"] == "upstream.bad_response"
    assert _get(gateway, "/ok")[::2] == (200, b"ok")
    assert gateway.proc.poll() is None


def test_trailer_fields_do_not_become_headers(gateway: GatewayProc) -> None:
    status, headers, body = _get(gateway, "/trailers")
    assert (status, body) == (200, b"ok")
    assert "x-from-trailer" not in headers
    assert "set-cookie" not in headers


@pytest.mark.parametrize("path", ["/cut-chunked", "/cut-length"])
def test_a_body_cut_off_upstream_reaches_the_client_cut_off(
    gateway: GatewayProc, path: str
) -> None:
    status, headers, body = _get(gateway, path)
    assert status == 200  # the head had gone out before the body failed
    assert body is None  # not a complete answer
    assert gateway.event_for(headers["x-request-id"])["reason"] == "upstream.bad_payload"
    assert gateway.proc.poll() is None
