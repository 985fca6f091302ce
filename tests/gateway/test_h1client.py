"""Bastion's HTTP/1.1 upstream client against real local servers.

Well-behaved upstreams are aiohttp web servers; misbehaving ones are raw asyncio servers
that write exactly the bytes under test.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from bastion.config import load_config
from bastion.errors import BadGateway, BastionError, ConfigError, GatewayTimeout
from bastion.gateway.h1client import HEAD_LIMIT, HIGH_WATER, H1Transport
from bastion.gateway.runtime import build_runtime
from bastion.gateway.upstream import (
    AiohttpTransport,
    UpstreamReply,
    UpstreamRequest,
    UpstreamTimeouts,
)
from tests.support.procs import dev_config
from tests.support.tls import self_signed

FAST = UpstreamTimeouts(connect=2.0, read=5.0, total=10.0)
#: The most one socket read hands to the protocol (asyncio's selector transports).
ONE_READ = 262_144
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Raw:
    """A raw upstream: counts connections and records request heads."""

    url: str
    connections: int = 0
    closed: int = 0
    open_now: int = 0
    most_open: int = 0
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Raw], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[Raw]:
    stats = Raw(url="")
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        stats.connections += 1
        stats.open_now += 1
        stats.most_open = max(stats.most_open, stats.open_now)
        try:
            await handler(reader, writer, stats)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # cancelled: the test is over (asyncio.Server.close does not wait for us)
        finally:
            stats.open_now -= 1
            stats.closed += 1
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    stats.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield stats
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def closed_by_client(stats: Raw, count: int) -> bool:
    """Whether ``count`` connections were closed by the client (waits up to 5 s)."""
    for _ in range(500):
        if stats.closed >= count:
            return True
        await asyncio.sleep(0.01)
    return False


async def read_request(reader: asyncio.StreamReader, stats: Raw) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    stats.heads.append(head)
    body = b""
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            body = await reader.readexactly(int(value))
        elif name.lower() == b"transfer-encoding":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                parts.append(await reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(p[:-2] for p in parts)
    stats.bodies.append(body)
    return head


def answering(*responses: bytes, close: bool = False) -> Handler:
    """Answer each request on a connection with the next response (then close if asked)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Raw) -> None:
        for response in responses:
            await read_request(reader, s)
            writer.write(response)
            await writer.drain()
        if close:
            return
        while True:
            await read_request(reader, s)
            writer.write(responses[-1])
            await writer.drain()

    return handler


def first_connection(response: bytes) -> Handler:
    """The first connection answers ``response`` (keep-alive), later ones ``OK``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Raw) -> None:
        answer = response if s.connections == 1 else OK
        while True:
            await read_request(reader, s)
            writer.write(answer)
            await writer.drain()

    return handler


def get(url: str, path: str = "/", **kw: object) -> UpstreamRequest:
    method = str(kw.pop("method", "GET"))
    body = kw.pop("body", None)
    headers = list(kw.pop("headers", []))  # type: ignore[call-overload]
    timeouts = kw.pop("timeouts", FAST)
    assert isinstance(timeouts, UpstreamTimeouts)
    return UpstreamRequest(method, url + path, headers, body, timeouts)  # type: ignore[arg-type]


async def body_of(reply: UpstreamReply) -> bytes:
    return await reply.read(100_000_000)


async def collect(chunks: AsyncIterator[bytes], into: list[bytes]) -> None:
    async for chunk in chunks:
        into.append(chunk)


@pytest.fixture
async def client() -> AsyncIterator[H1Transport]:
    transport = H1Transport(max_connections=8)
    yield transport
    await transport.close()


# -- pooling --------------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection(client: H1Transport) -> None:
    async with raw_server(answering(OK)) as up:
        for _ in range(10):
            reply = await client.send(get(up.url))
            assert (reply.status, await body_of(reply)) == (200, b"ok")
        assert up.connections == 1
        assert all(b"\r\nhost: 127.0.0.1:" in head for head in up.heads)


async def test_pool_limit_is_respected_under_concurrency() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Raw) -> None:
        while True:
            await read_request(reader, s)
            await asyncio.sleep(0.02)
            writer.write(OK)

    transport = H1Transport(max_connections=3)
    try:
        async with raw_server(slow) as up:
            replies = await asyncio.gather(*(transport.send(get(up.url)) for _ in range(30)))
            assert [r.body for r in replies] == [b"ok"] * 30
            assert up.most_open <= 3
            assert up.connections == 3
    finally:
        await transport.close()


async def test_exhausted_pool_is_a_connect_timeout() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Raw) -> None:
        await read_request(reader, s)
        await asyncio.sleep(10)

    transport = H1Transport(max_connections=1)
    try:
        async with raw_server(stall) as up:
            first = asyncio.ensure_future(transport.send(get(up.url)))
            await asyncio.sleep(0.1)
            short = UpstreamTimeouts(connect=0.2, read=5.0, total=10.0)
            with pytest.raises(GatewayTimeout) as caught:
                await transport.send(get(up.url, timeouts=short))
            assert caught.value.reason == "upstream.timeout.connect"
            assert up.connections == 1
            first.cancel()
    finally:
        await transport.close()


def _stale_after_first() -> Handler:
    """Answer the first request keep-alive, then drop the connection on the second."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Raw) -> None:
        await read_request(reader, s)
        writer.write(OK)
        await writer.drain()
        await read_request(reader, s)  # read it, never answer: the idle-close race

    return handler


async def test_stale_connection_is_retried_for_get(client: H1Transport) -> None:
    async with raw_server(_stale_after_first()) as up:
        assert (await client.send(get(up.url))).body == b"ok"
        reply = await client.send(get(up.url, "/again"))
        assert reply.body == b"ok"
        assert up.connections == 2
        assert [h.split(b" ")[1] for h in up.heads] == [b"/", b"/again", b"/again"]


async def test_stale_connection_is_not_retried_for_post(client: H1Transport) -> None:
    async with raw_server(_stale_after_first()) as up:
        assert (await client.send(get(up.url))).body == b"ok"
        with pytest.raises(BadGateway) as caught:
            await client.send(get(up.url, "/pay", method="POST", body=b"{}"))
        assert caught.value.reason == "upstream.disconnected"
        assert [h.split(b" ")[1] for h in up.heads] == [b"/", b"/pay"]


async def test_idle_connections_closed_by_upstream_are_not_reused(client: H1Transport) -> None:
    async with raw_server(answering(OK, close=True)) as up:
        for _ in range(3):
            assert (await client.send(get(up.url))).body == b"ok"
            await asyncio.sleep(0.05)
        assert up.connections == 3


# -- strict response parsing ----------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nEVIL!\r\n0\r\n\r\n",
            id="cl-and-te",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
            b"5\r\nEVIL!\r\n0\r\n\r\n",
            id="te-and-cl",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nEVIL!!",
            id="differing-content-lengths",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nEVIL!!", id="content-length-list"
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nEVIL!", id="negative-length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nEVIL!", id="plus-length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 5\r\n\r\nEVIL!", id="space"),
        pytest.param(b"HTTP/1.1 200 OK\nContent-Length: 5\n\nEVIL!", id="bare-lf"),
        pytest.param(b"HTTP/1.1 200 OK\r\n folded: x\r\nContent-Length: 5\r\n\r\nEVIL!", id="fold"),
        pytest.param(b"HTTP/9.9 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!", id="version"),
        pytest.param(b"NOT HTTP AT ALL\r\n\r\n", id="garbage"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            id="transfer-coding-gzip",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nok\r\n0\r\n\r\n",
            id="chunked-twice",
        ),
        pytest.param(b"HTTP/1.1 000 X\r\nContent-Length: 2\r\n\r\nok", id="status-000"),
        pytest.param(b"HTTP/1.1 099 X\r\nContent-Length: 2\r\n\r\nok", id="status-099"),
        pytest.param(b"HTTP/1.1 600 X\r\nContent-Length: 2\r\n\r\nok", id="status-600"),
        pytest.param(
            b"HTTP/1.1 150 X\r\nContent-Length: 9\r\n\r\nINJECTED!"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            id="interim-with-body",
        ),
        pytest.param(
            b"HTTP/1.1 150 X\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nINJECTED!\r\n0\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            id="interim-with-chunked-body",
        ),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: upgrade\r\n\r\n",
            id="101",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nX-Big: "
            + b"a" * HEAD_LIMIT
            + b"\r\nContent-Length: 5\r\n\r\nEVIL!",
            id="oversized-head",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(6000))
            + b"Content-Length: 5\r\n\r\nEVIL!",
            id="many-headers",
        ),
    ],
)
async def test_malformed_responses_are_502_and_deliver_nothing(
    client: H1Transport, response: bytes
) -> None:
    async with raw_server(answering(response)) as up:
        with pytest.raises(BadGateway) as caught:
            await client.send(get(up.url))
        assert caught.value.reason == "upstream.bad_response"
        # The connection was not reused: the next exchange opens a fresh one.
        with pytest.raises(BadGateway):
            await client.send(get(up.url))
        assert up.connections == 2


async def test_endless_head_is_cut_at_the_limit(client: H1Transport) -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Raw) -> None:
        await read_request(reader, s)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        while True:  # one header value that never ends
            writer.write(b"a" * 8192)
            await writer.drain()

    async with raw_server(endless) as up:
        with pytest.raises(BadGateway) as caught:
            await client.send(get(up.url))
        assert caught.value.reason == "upstream.bad_response"


async def test_identical_duplicate_content_length_is_refused_too(client: H1Transport) -> None:
    # RFC 9110 §8.6 allows collapsing identical values; llhttp (strict) refuses, and so do we.
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"
    async with raw_server(answering(response)) as up:
        with pytest.raises(BadGateway) as caught:
            await client.send(get(up.url))
        assert caught.value.reason == "upstream.bad_response"


async def test_truncated_small_body_is_an_error_and_connection_dropped(
    client: H1Transport,
) -> None:
    truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"
    async with raw_server(answering(truncated, close=True)) as up:
        with pytest.raises(BadGateway) as caught:
            await client.send(get(up.url))
        assert caught.value.reason == "upstream.bad_payload"


async def test_truncated_streamed_body_raises_from_chunks(client: H1Transport) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"

    async def truncate_first(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Raw
    ) -> None:
        first = s.connections == 1
        await read_request(reader, s)
        if first:
            writer.write(head + b"x" * 5000)
            return
        writer.write(OK)

    async with raw_server(truncate_first) as up:
        reply = await client.send(get(up.url))
        assert reply.status == 200
        assert reply.chunks is not None
        received: list[bytes] = []
        with pytest.raises(BadGateway) as caught:
            await collect(reply.chunks, received)
        assert caught.value.reason == "upstream.bad_payload"
        assert b"".join(received) == b"x" * 5000
        assert (await client.send(get(up.url))).body == b"ok"
        assert up.connections == 2


async def test_truncated_chunked_body_raises_from_chunks(client: H1Transport) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    async with raw_server(answering(head, close=True)) as up:
        reply = await client.send(get(up.url))
        with pytest.raises(BadGateway) as caught:
            await body_of(reply)
        assert caught.value.reason == "upstream.bad_payload"


async def test_bytes_beyond_content_length_are_dropped_with_the_connection(
    client: H1Transport,
) -> None:
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\nEVIL"
    async with raw_server(first_connection(smuggled)) as up:
        assert (await client.send(get(up.url))).body == b"ok"
        assert (await client.send(get(up.url))).body == b"ok"
        assert up.connections == 2


async def test_bytes_beyond_a_streamed_body_are_dropped_with_the_connection(
    client: H1Transport,
) -> None:
    body = b"y" * 100_000
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + body + b"EVIL"
    async with raw_server(first_connection(response)) as up:
        assert await body_of(await client.send(get(up.url))) == body
        assert (await client.send(get(up.url))).body == b"ok"
        assert up.connections == 2


async def test_chunked_body_is_decoded_and_connection_reused(client: H1Transport) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    async with raw_server(answering(chunked)) as up:
        for _ in range(3):
            reply = await client.send(get(up.url))
            assert await body_of(reply) == b"hello world"
        assert up.connections == 1


async def test_close_delimited_body_is_read_to_eof(client: H1Transport) -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"z" * 300_000
    async with raw_server(answering(response, close=True)) as up:
        reply = await client.send(get(up.url))
        assert await body_of(reply) == b"z" * 300_000
        reply = await client.send(get(up.url))
        assert await body_of(reply) == b"z" * 300_000
        assert up.connections == 2


@pytest.mark.parametrize(
    ("method", "response"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n'),
    ],
)
async def test_no_body_responses(client: H1Transport, method: str, response: bytes) -> None:
    async with raw_server(answering(response)) as up:
        for _ in range(3):
            reply = await client.send(get(up.url, method=method))
            # No body, and no invented length: the upstream's Content-Length (HEAD) stays.
            assert reply.body is None
            assert await body_of(reply) == b""
        assert up.connections == 1


async def test_head_answer_followed_by_bytes_is_not_reused(client: H1Transport) -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
    async with raw_server(answering(response)) as up:
        for _ in range(2):
            assert await body_of(await client.send(get(up.url, method="HEAD"))) == b""
        assert up.connections == 2


async def test_interim_responses_are_skipped(client: H1Transport) -> None:
    response = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-Final: 1\r\n\r\nok"
    )
    async with raw_server(answering(response)) as up:
        reply = await client.send(get(up.url, method="POST", body=b"{}"))
        assert (reply.status, reply.body) == (201, b"ok")
        assert [name.lower() for name, _ in reply.headers] == ["content-length", "x-final"]


# -- backpressure and early stop ------------------------------------------------------------


async def _big_app(size: int) -> web.Application:
    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = size
        await response.prepare(request)
        block = b"b" * 1_048_576
        for _ in range(size // len(block)):
            await response.write(block)
        return response

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=b"small")

    app = web.Application()
    app.router.add_get("/big", big)
    app.router.add_get("/small", small)
    return app


@asynccontextmanager
async def aiohttp_server(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        await runner.cleanup()


async def test_slow_consumer_keeps_the_buffer_bounded(client: H1Transport) -> None:
    size = 50 * 1_048_576
    async with aiohttp_server(await _big_app(size)) as port:
        reply = await client.send(get(f"http://127.0.0.1:{port}", "/big"))
        assert reply.chunks is not None
        total = largest = 0
        async for chunk in reply.chunks:
            # Each chunk is everything buffered since the last one: the buffer's size.
            largest = max(largest, len(chunk))
            total += len(chunk)
            await asyncio.sleep(0.002)
        assert total == size
        assert largest <= HIGH_WATER + ONE_READ
        reply = await client.send(get(f"http://127.0.0.1:{port}", "/small"))
        assert reply.body == b"small"


async def test_consumer_stopping_early_closes_the_connection(client: H1Transport) -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"q" * 1_000_000
    async with raw_server(first_connection(response)) as up:
        reply = await client.send(get(up.url))
        assert reply.chunks is not None
        iterator = reply.chunks
        first = await iterator.__anext__()
        assert first
        await iterator.aclose()  # type: ignore[attr-defined]
        assert await closed_by_client(up, 1)
        assert (await client.send(get(up.url))).body == b"ok"
        assert up.connections == 2


async def test_abandoned_stream_closes_the_connection(client: H1Transport) -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"q" * 1_000_000
    async with raw_server(first_connection(response)) as up:
        reply = await client.send(get(up.url))
        assert reply.chunks is not None
        await reply.chunks.__anext__()
        del reply  # the gateway dropped it (client gone): never reused half read
        assert await closed_by_client(up, 1)
        assert (await client.send(get(up.url))).body == b"ok"
        assert up.connections == 2


# -- timeouts and failures ------------------------------------------------------------------


async def test_read_timeout_waiting_for_the_head(client: H1Transport) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Raw) -> None:
        await read_request(reader, s)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        await asyncio.sleep(5)

    async with raw_server(stall) as up:
        timeouts = UpstreamTimeouts(connect=1.0, read=0.2, total=5.0)
        with pytest.raises(GatewayTimeout) as caught:
            await client.send(get(up.url, timeouts=timeouts))
        assert caught.value.reason == "upstream.timeout.read"


async def test_total_timeout_for_a_trickled_head(client: H1Transport) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Raw) -> None:
        await read_request(reader, s)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(200):
            writer.write(b"X-%d: v\r\n" % i)
            await asyncio.sleep(0.02)

    async with raw_server(trickle) as up:
        timeouts = UpstreamTimeouts(connect=1.0, read=0.5, total=0.3)
        with pytest.raises(GatewayTimeout) as caught:
            await client.send(get(up.url, timeouts=timeouts))
        assert caught.value.reason == "upstream.timeout.total"


async def test_read_timeout_while_streaming_the_body(client: H1Transport) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Raw) -> None:
        await read_request(reader, s)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nabc")
        await asyncio.sleep(5)

    async with raw_server(stall) as up:
        timeouts = UpstreamTimeouts(connect=1.0, read=0.2, total=0.3)
        reply = await client.send(get(up.url, timeouts=timeouts))
        with pytest.raises(GatewayTimeout) as caught:
            await body_of(reply)
        assert caught.value.reason == "upstream.timeout.read"


@pytest.mark.parametrize("length", [100, 1_000_000])  # the small path and a streamed body
async def test_total_timeout_for_a_trickled_body(client: H1Transport, length: int) -> None:
    """A byte per read interval kept the request open for ever (no 504, no answer)."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Raw) -> None:
        await read_request(reader, s)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length)
        for _ in range(length):
            writer.write(b"a")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with raw_server(trickle) as up:
        timeouts = UpstreamTimeouts(connect=1.0, read=0.5, total=0.4)
        with pytest.raises(GatewayTimeout) as caught:
            await body_of(await client.send(get(up.url, timeouts=timeouts)))
        assert caught.value.reason == "upstream.timeout.total"


@pytest.mark.parametrize(
    "framing",
    [
        b"1\r\na\r\n0\r\nX-Trailer: ",  # a trailer value that never ends
        b"1;ext=",  # a chunk extension that never ends
        b"0000",  # a chunk size of endless zeros
    ],
)
async def test_endless_chunk_framing_is_cut_at_the_limit(
    client: H1Transport, framing: bytes
) -> None:
    """Framing bytes without a body byte (trailers, extensions, padded sizes) once grew
    memory and spun a core with the read timer kept alive: cut after 64 KiB."""
    filler = b"0" if framing == b"0000" else b"a"

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Raw) -> None:
        await read_request(reader, s)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framing)
        while True:
            writer.write(filler * 8192)
            await writer.drain()

    async with raw_server(endless) as up:
        timeouts = UpstreamTimeouts(connect=1.0, read=5.0, total=30.0)
        with pytest.raises(BadGateway) as caught:
            await body_of(await client.send(get(up.url, timeouts=timeouts)))
        assert caught.value.reason == "upstream.bad_payload"


async def test_refused_connection_is_connect_failed(client: H1Transport) -> None:
    async with raw_server(answering(OK)) as up:
        url = up.url
    with pytest.raises(BadGateway) as caught:
        await client.send(get(url))
    assert caught.value.reason == "upstream.connect_failed"


async def test_disconnect_before_the_head(client: H1Transport) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Raw) -> None:
        await read_request(reader, s)

    async with raw_server(hang_up) as up:
        with pytest.raises(BadGateway) as caught:
            await client.send(get(up.url))
        assert caught.value.reason == "upstream.disconnected"


# -- the request as sent --------------------------------------------------------------------


async def test_path_and_query_bytes_are_sent_exactly(client: H1Transport) -> None:
    async with raw_server(answering(OK)) as up:
        await client.send(get(up.url, "/a%2Fb?x=%20&y=%zz"))
        await client.send(get(up.url, "/%7e/../a;b=c?"))
        assert up.heads[0].startswith(b"GET /a%2Fb?x=%20&y=%zz HTTP/1.1\r\n")
        assert up.heads[1].startswith(b"GET /%7e/../a;b=c? HTTP/1.1\r\n")


@pytest.mark.parametrize(
    "headers",
    [
        [("x-a", "b\r\nx-injected: 1")],
        [("x-a", "b\nx-injected: 1")],
        [("x-a", "b\rx")],
        [("x-a\r\nx-injected", "1")],
        [("x-a", "b\x00c")],
        [("x-a", "snowman \u2603")],
        [("transfer-encoding", "chunked")],
    ],
)
async def test_headers_that_would_inject_are_refused_unsent(
    client: H1Transport, headers: list[tuple[str, str]]
) -> None:
    async with raw_server(answering(OK)) as up:
        with pytest.raises(BadGateway) as caught:
            await client.send(get(up.url, headers=headers))
        assert caught.value.reason == "upstream.bad_request"
        assert up.connections == 0


async def test_given_host_header_is_kept(client: H1Transport) -> None:
    async with raw_server(answering(OK)) as up:
        await client.send(get(up.url, headers=[("host", "api.internal")]))
        assert up.heads[0].lower().count(b"\r\nhost:") == 1
        assert b"\r\nhost: api.internal\r\n" in up.heads[0]


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_streamed_request_bodies(client: H1Transport) -> None:
    async with raw_server(answering(OK)) as up:
        declared = [("content-length", "10")]
        await client.send(
            get(up.url, method="PUT", headers=declared, body=_chunks(b"01234", b"56789"))
        )
        await client.send(get(up.url, method="POST", body=_chunks(b"abc", b"", b"def")))
        assert up.bodies == [b"0123456789", b"abcdef"]
        assert b"transfer-encoding: chunked" in up.heads[1]
        assert up.connections == 1


async def test_streamed_body_longer_than_declared_is_refused(client: H1Transport) -> None:
    async with raw_server(answering(OK)) as up:
        declared = [("content-length", "3")]
        with pytest.raises(BadGateway) as caught:
            await client.send(
                get(up.url, method="PUT", headers=declared, body=_chunks(b"abc", b"def"))
            )
        assert caught.value.reason == "upstream.bad_request"


async def test_errors_from_the_request_body_propagate(client: H1Transport) -> None:
    class TooLarge(BastionError):
        status = 413

    async def failing() -> AsyncIterator[bytes]:
        yield b"abc"
        raise TooLarge(reason="limits.body_bytes")

    async with raw_server(answering(OK)) as up:
        declared = [("content-length", "10")]
        with pytest.raises(TooLarge):
            await client.send(get(up.url, method="PUT", headers=declared, body=failing()))
        assert (await client.send(get(up.url))).body == b"ok"
        assert up.connections == 2


# -- TLS ------------------------------------------------------------------------------------


async def test_https_upstream_verified_against_its_ca(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with aiohttp_server(await _big_app(0), server_context) as port:
        transport = H1Transport(ssl_context=trusting)
        try:
            for host in ("127.0.0.1", "localhost"):
                reply = await transport.send(get(f"https://{host}:{port}", "/small"))
                assert (reply.status, reply.body) == (200, b"small")
        finally:
            await transport.close()
        untrusting = H1Transport()  # the system trust store: the self-signed CA is unknown
        try:
            with pytest.raises(BadGateway) as caught:
                await untrusting.send(get(f"https://127.0.0.1:{port}", "/small"))
            assert caught.value.reason == "upstream.connect_failed"
        finally:
            await untrusting.close()


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [("", H1Transport), ("    transport: aiohttp", AiohttpTransport)],
)
def test_upstream_transport_is_chosen_by_config(
    tmp_path: Path, line: str, expected: type[object]
) -> None:
    config = tmp_path / "bastion.yaml"
    text = dev_config("http://127.0.0.1:9", upstream_extra=line)
    config.write_text(text.replace("{AUDIT}", str(tmp_path / "audit.log")))
    runtime = build_runtime(load_config(config))
    assert isinstance(runtime.upstreams["echo"].transport, expected)


def test_unknown_transport_is_a_config_error_naming_the_line(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    text = dev_config("http://127.0.0.1:9", upstream_extra="    transport: httpx")
    config.write_text(text.replace("{AUDIT}", str(tmp_path / "audit.log")))
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "bastion.yaml:9" in str(caught.value)
    assert "transport" in str(caught.value)


@pytest.mark.parametrize("method", ["GET", "DELETE", "OPTIONS"])
async def test_a_connection_that_carried_a_body_of_undefined_meaning_is_not_reused(
    client: H1Transport, method: str
) -> None:
    """A server that ignores a GET body reads it as the next request ("CL.0"): the
    connection that carried one is closed after its answer, never handed to another
    client's request."""
    async with raw_server(answering(OK)) as up:
        reply = await client.send(get(up.url, method=method, body=b'{"x": 1}'))
        assert (reply.status, reply.body) == (200, b"ok")
        await client.send(get(up.url))
        assert up.connections == 2
        await client.send(get(up.url))
        assert up.connections == 2  # without a body the connection is reused as before
