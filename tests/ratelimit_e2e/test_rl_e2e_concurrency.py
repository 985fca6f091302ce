"""In-flight concurrency limit per principal through a real gateway (OWASP API4).

``concurrency: {limit: 2, key: principal}`` on the test upstream's slow route: five
parallel requests of one principal are two 200s and three 429s; another principal is not
affected; once the requests complete, the slots are free again.

A slow client holds a connection (and an in-flight request) longest by not finishing its
request body: that is checked here too.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Iterator

import aiohttp
import pytest

from tests.ratelimit_e2e.rl_support import config, poll
from tests.support.keys import KeyIssuer, make_issuer
from tests.support.procs import GatewayProc, Upstream, run_gateway

ROUTES = """
      - {path: /echo, methods: [POST], public: true}
      - path: /slow
        methods: [GET]
        allow: authenticated
        concurrency: {limit: 2, key: principal}
"""
STALLED_BODY_DEADLINE = 15.0  # upstream total timeout is 30 s, header read timeout 10 s


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> KeyIssuer:
    return make_issuer(tmp_path_factory.mktemp("rl-cc-keys"))


@pytest.fixture(scope="module")
def gateway(
    upstream: Upstream, issuer: KeyIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProc]:
    tmp = tmp_path_factory.mktemp("rl-cc")
    with run_gateway(config(upstream.url, ROUTES, extra=issuer.config()), tmp) as gw:
        yield gw


async def _parallel(port: int, tokens: list[str]) -> list[int]:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(token: str) -> int:
            async with session.get(
                f"http://127.0.0.1:{port}/slow?seconds=1",
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one(t) for t in tokens)))


def _slow_hits(upstream: Upstream, subject: str) -> int:
    return sum(
        1
        for record in upstream.received()
        if record["path"] == "/slow"
        and [subject] == [v for k, v in record["headers"] if k.lower() == "x-bastion-subject"]
    )


def test_two_in_flight_per_principal(
    gateway: GatewayProc, issuer: KeyIssuer, upstream: Upstream
) -> None:
    carol, dave = issuer.token("u-cc-carol", ["customer"]), issuer.token("u-cc-dave", ["x"])
    statuses = asyncio.run(_parallel(gateway.port, [carol] * 5 + [dave]))
    assert collections.Counter(statuses[:5]) == {200: 2, 429: 3}
    assert statuses[5] == 200  # another principal has slots of its own
    assert _slow_hits(upstream, "u-cc-carol") == 2  # refused requests were never forwarded
    # After completion the slots are free again (released just after each response).
    poll(
        lambda: asyncio.run(_parallel(gateway.port, [carol, carol])) == [200, 200],
        10.0,
        "free again",
    )


def test_a_stalled_request_body_does_not_hold_the_connection(gateway: GatewayProc) -> None:
    """Headers must arrive within 10 s (granian's header_read_timeout); a body that stops
    arriving should be bounded as well (answered 408/504 or closed), not held forever."""
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(
            f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:{gateway.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
        )
        sock.settimeout(STALLED_BODY_DEADLINE)
        try:
            sock.recv(65536)  # an answer, or b"" when closed
        except TimeoutError:
            pytest.fail(f"connection still held after {STALLED_BODY_DEADLINE} s")
        except ConnectionResetError:
            pass
