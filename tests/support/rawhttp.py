"""Raw HTTP/1.1 over a socket: for requests no well-behaved client library would send."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    header_list: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> RawResponse | None:
    """Send ``data`` as-is; parse one response, or None if the server just closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                return None
            if not chunk:
                return None if not buf else _parse(buf, b"")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        response = _parse(head, rest)
        length = int(response.headers.get("content-length", "0"))
        while len(response.body) < length:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            response.body += chunk
        return response


def _parse(head: bytes, rest: bytes) -> RawResponse:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    header_list = []
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            header_list.append((name.strip().lower(), value.strip()))
    return RawResponse(status, dict(header_list), header_list, rest)


def get(port: int, path: str, headers: str = "", method: str = "GET") -> RawResponse | None:
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Connection: close\r\n\r\n"
    )
    return raw_request(port, request.encode("latin-1"))
