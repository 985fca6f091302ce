"""Measure what the listeners do with slow and idle clients (the numbers quoted in
docs/rate-limiting.md, "Slow clients and connections").

Run: ``.venv/bin/python -m tests.ratelimit_e2e.slow_clients`` (about three minutes). For
each server (granian, uvicorn) it starts the test upstream and a gateway (upstream
timeouts of 120 s, so what shows is the listener's own behaviour), then, in parallel:

* ``idle-before-request``: connect and send nothing;
* ``slowloris``: send a request line, then one header line every second, never finishing;
* ``idle-keep-alive``: one complete request, then stay idle on the connection;
* ``stalled-body``: headers with ``Content-Length: 1000``, 10 bytes of body, then nothing;
* ``trickled-body``: the same, but one body byte every second;

then again, with upstream timeouts of 8 s, the body scenarios, ``stalled-large-body``
(``Content-Length: 200000``: streamed, not buffered) and ``stalled-body-buffered`` (a
route whose policy reads the body before forwarding). ``python -m ... timeout=8`` runs
only that pass.

and prints how long the server kept each connection and what it answered (if anything).
Not a test: it waits for real timeouts. Nothing here asserts timings.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.ratelimit_e2e.rl_support import config
from tests.support.procs import run_gateway, run_upstream

ROUTES = """
      - {path: /echo, methods: [GET, POST], public: true}
      - path: /buffered
        methods: [POST]
        public: true
        rate_limit: [{key: body.username, limit: 1000/minute}]
"""
LIMIT = 45.0  # give up watching a connection after this many seconds


def _status(received: bytes) -> str:
    if received.startswith(b"HTTP/"):
        return received.split(b"\r\n", 1)[0].decode("latin-1")
    return "nothing" if not received else f"{len(received)} more bytes"


def _watch(sock: socket.socket, start: float, trickle: Callable[[int], bytes] | None) -> str:
    """Wait until the server answers or closes; optionally send ``trickle(i)`` each second."""
    sock.settimeout(1.0)
    received = b""
    tick = 0
    while time.monotonic() - start < LIMIT:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if trickle is not None:
                tick += 1
                try:
                    sock.sendall(trickle(tick))
                except OSError as exc:
                    return f"send failed after {time.monotonic() - start:.1f} s ({exc})"
            continue
        except OSError as exc:
            return f"reset after {time.monotonic() - start:.1f} s ({type(exc).__name__})"
        if not chunk:
            status = _status(received)
            return f"closed after {time.monotonic() - start:.1f} s (answered: {status})"
        received += chunk
    status = _status(received)
    return f"still open after {LIMIT:.0f} s (answered: {status})"


def _scenario(port: int, name: str) -> str:
    sock = socket.create_connection(("127.0.0.1", port))
    start = time.monotonic()
    head = f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    with sock:
        if name == "idle-before-request":
            return _watch(sock, start, None)
        if name == "slowloris":
            sock.sendall(f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
            return _watch(sock, start, lambda i: f"X-Slow-{i}: {i}\r\n".encode())
        if name == "idle-keep-alive":
            sock.sendall(f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            sock.settimeout(10)
            first = sock.recv(65536)
            start = time.monotonic()  # idle from here
            return f"[{first.split(b' ', 2)[1].decode()}] " + _watch(sock, start, None)
        if name == "stalled-body":
            sock.sendall((head + "Content-Length: 1000\r\n\r\n").encode() + b"x" * 10)
            return _watch(sock, start, None)
        if name == "trickled-body":
            sock.sendall((head + "Content-Length: 1000\r\n\r\n").encode() + b"x" * 10)
            return _watch(sock, start, lambda _: b"x")
        if name == "stalled-large-body":  # above the 64 KiB the gateway buffers whole
            sock.sendall((head + "Content-Length: 200000\r\n\r\n").encode() + b"x" * 10)
            return _watch(sock, start, None)
        if name == "stalled-body-buffered":
            buffered = f"POST /buffered HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            sock.sendall((buffered + "Content-Length: 1000\r\n\r\n").encode() + b"x" * 10)
            return _watch(sock, start, None)
    raise ValueError(name)


LISTENER = ["idle-before-request", "slowloris", "idle-keep-alive", "stalled-body", "trickled-body"]
BODIES = ["stalled-body", "trickled-body", "stalled-large-body", "stalled-body-buffered"]
#: (label, upstream read/total timeout, scenarios)
PASSES = {"listener": (120.0, LISTENER), "timeout=8": (8.0, BODIES)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with run_upstream(tmp) as upstream:
            for label in sys.argv[1:] or list(PASSES):
                timeout, scenarios = PASSES[label]
                for server in ("granian", "uvicorn"):
                    text = config(upstream.url, ROUTES, read=timeout)
                    with (
                        run_gateway(text, tmp, server=server) as gw,
                        ThreadPoolExecutor(max_workers=len(scenarios)) as pool,
                    ):
                        results = list(pool.map(lambda n: _scenario(gw.port, n), scenarios))
                    for name, result in zip(scenarios, results, strict=True):
                        print(f"{server:8} {label:10} {name:22} {result}")
                    sys.stdout.flush()


if __name__ == "__main__":
    main()
