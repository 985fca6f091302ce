"""Bastion's own HTTP/1.1 upstream client: pooled, strict, cheap (the default transport).

One ``asyncio.Protocol`` per upstream connection, responses parsed by llhttp (httptools,
strict mode: no lenient flag is ever set). Per request: one ``transport.write`` for head and
small body, one Future for the answer, one ``TimerHandle`` for the timeouts.

Errors, all raised as :mod:`bastion.errors` classes (reasons shared with
:func:`bastion.gateway.upstream.map_upstream_errors`)::

    connect / TLS handshake / pool wait over ``connect``   -> 504 upstream.timeout.connect
    no byte for ``read`` seconds (head or body)             -> 504 upstream.timeout.read
    no complete response ``total`` seconds after sending     -> 504 upstream.timeout.total
      (a body already being streamed to the client is cut there)
    refused, reset, DNS or certificate failure at connect   -> 502 upstream.connect_failed
    connection closed before the response head             -> 502 upstream.disconnected
    malformed head: llhttp error, CL+TE, differing CLs,
      head over 64 KiB, 101                                 -> 502 upstream.bad_response
    truncated or malformed body, error while streaming,
      64 KiB of chunk framing or trailers without a body byte -> 502 upstream.bad_payload
    header with CR/LF/NUL, non-latin-1 text to write        -> 502 upstream.bad_request

A connection goes back to the pool only when its response was read completely, allowed
keep-alive, the request body was sent completely and nothing followed the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import weakref
from collections import deque
from collections.abc import AsyncIterable
from typing import cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from bastion.errors import BadGateway, BastionError, GatewayTimeout
from bastion.gateway.upstream import (
    CONTENT_UNDEFINED,
    SMALL_BODY,
    UpstreamReply,
    UpstreamRequest,
    UpstreamTimeouts,
)

__all__ = ["HEAD_LIMIT", "HIGH_WATER", "IDLE_TIMEOUT", "H1Transport"]

#: Largest response head accepted (status line, all headers, interim 1xx heads included).
HEAD_LIMIT = 65_536
#: Streamed bodies: reading from the upstream pauses above this many buffered bytes.
HIGH_WATER = 262_144
_LOW_WATER = HIGH_WATER // 4
#: Idle keep-alive connections are closed after this many seconds.
IDLE_TIMEOUT = 30.0
_SWEEP_EVERY = 5.0
_ONE_WRITE = 65_536
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_DEFAULT_PORT = {"http": 80, "https": 443}


class _Stale(Exception):
    """A reused connection died before any response byte: the request may be replayed."""


class _Stop(Exception):
    """Raised from a parser callback to stop parsing (the cause is on the connection)."""


def _bad(reason: str) -> BadGateway:
    return BadGateway(reason=reason)


class _Body:
    """The streamed response body: ``chunks`` of an :class:`UpstreamReply`.

    Owns its buffer, so the connection can go back to the pool as soon as the upstream has
    sent everything. Buffered chunks are handed out joined, so a slow consumer gets bigger
    chunks rather than more of them.
    """

    __slots__ = ("__weakref__", "_chunks", "_conn", "_done", "_error", "_size", "_waiter")

    def __init__(self, conn: _Connection | None) -> None:
        self._conn = conn
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._done = conn is None  # None: an empty body (HEAD, 204 or 304 without length)
        self._error: BaseException | None = None

    # -- producer side (the connection) -------------------------------------------------
    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        self._wake()

    def _end(self, error: BaseException | None) -> None:
        self._done = True
        self._error = error
        self._conn = None
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- consumer side ------------------------------------------------------------------
    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        while not self._chunks:
            if self._done:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                raise StopAsyncIteration
            conn = self._conn
            assert conn is not None
            self._waiter = conn.loop.create_future()
            try:
                await self._waiter
            except BaseException:
                self._waiter = None
                self._abandon()
                raise
        chunks = self._chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        conn = self._conn
        if conn is not None and conn.paused:
            conn.resume()
        return data

    async def aclose(self) -> None:
        """Stop early: the connection, half read, is closed (never reused)."""
        self._abandon()

    def _abandon(self) -> None:
        conn = self._conn
        self._chunks.clear()
        if conn is not None:
            self._end(None)
            conn.abandon()

    def __del__(self) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            # The loop may be closed already (and the socket with it).
            with contextlib.suppress(RuntimeError):
                conn.abandon()


class _Connection(asyncio.Protocol):
    """One upstream connection and the state of the exchange in flight on it."""

    __slots__ = (
        "_body",
        "_body_sent",
        "_chunked",
        "_close_after",
        "_drain",
        "_extra",
        "_future",
        "_head_done",
        "_head_size",
        "_headers",
        "_idle_fed",
        "_interim",
        "_keep",
        "_last_read",
        "_length",
        "_lengths",
        "_method_head",
        "_parser",
        "_parts",
        "_progress",
        "_read",
        "_received",
        "_small",
        "_status",
        "_te",
        "_timer",
        "_total_at",
        "_write_paused",
        "active",
        "closed",
        "idle_since",
        "loop",
        "paused",
        "pool",
        "reused",
        "transport",
    )

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self._parser = HttpResponseParser(self)
        self.closed = False
        self.active = False
        self.reused = False
        self.paused = False
        self.idle_since = 0.0
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._future: asyncio.Future[UpstreamReply] | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: Weak: only the consumer keeps the body alive, so one dropped mid-stream (the
        #: client went away) is collected, and its __del__ closes this connection.
        self._body: weakref.ref[_Body] | None = None
        self._parts: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers = []
        self._length: int | None = None
        self._lengths = 0
        self._te: bytes | None = None
        self._chunked = False
        self._keep = False
        self._close_after = False
        self._head_size = 0
        self._idle_fed = 0
        self._progress = 0
        self._head_done = False
        self._interim = False
        self._small = False
        self._received = False
        self._extra = False
        self._body_sent = True
        self._method_head = False
        self._read = 0.0
        self._total_at = 0.0
        self._last_read = 0.0
        self._parts = []

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports are not asyncio.Transport
        # subclasses (granian and uvicorn pick uvloop whenever it is installed).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.active:
            # Nothing is expected on an idle connection: whatever this is, drop the connection.
            self.abort()
            return
        self._received = True
        self._last_read = self.loop.time()
        progress = self._progress
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade:
            self._fail(_bad("upstream.bad_response"))
            return
        except (HttpParserError, _Stop):
            if self._future is None and self._body is None and self.active:
                # The response was complete: what followed it is dropped with the connection.
                self._extra = True
            elif self.active:
                self._fail(
                    _bad("upstream.bad_payload" if self._head_done else "upstream.bad_response")
                )
                return
        if self.active:
            if self._progress != progress:
                self._idle_fed = 0
            else:
                # Nothing came of these bytes: head, or chunk sizes, extensions, trailers
                # (llhttp keeps a header being received in memory, and grows it by copying).
                # Framing that never ends must not grow, spin or keep the read timer alive.
                self._idle_fed += len(data)
                if self._idle_fed > HEAD_LIMIT:
                    reason = "upstream.bad_payload" if self._head_done else "upstream.bad_response"
                    self._fail(_bad(reason))
                    return
        if self.active and self._future is None and self._body is None:
            self._finish()

    def eof_received(self) -> bool | None:
        return False  # close the transport; connection_lost does the rest

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed = self.closed
        self.closed = True
        if self.active:
            if not self._head_done:
                if self.reused and not self._received:
                    self._fail(_Stale())
                else:
                    self._fail(_bad("upstream.disconnected"))
            elif (
                self._length is None
                and not self._chunked
                and not self._method_head
                and self._status not in (204, 304)
            ):
                self._complete()  # a close-delimited body ends here
            else:
                self._fail(_bad("upstream.bad_payload"))
        self._release_drain()
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()
        if not was_closed:
            self.pool.discard(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def _release_drain(self) -> None:
        """Wake the request-body writer waiting for the transport to drain, if any."""
        drain = self._drain
        if drain is not None:
            self._drain = None
            if not drain.done():
                drain.set_result(None)

    def resume_writing(self) -> None:
        self._write_paused = False
        self._release_drain()

    # -- llhttp callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._future is None and self._body is None:
            raise _Stop  # a second response on one request: the connection is desynced

    def on_header(self, name: bytes, value: bytes) -> None:
        size = self._head_size + len(name) + len(value) + 4
        self._head_size = size
        if size > HEAD_LIMIT:
            self._fail(_bad("upstream.bad_response"))
            raise _Stop
        if self._head_done:
            # A trailer field (after a chunked body): dropped, never merged into the head
            # already handed out (RFC 9110 §6.5.1), counted against the same limit.
            return
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            if not value.isdigit():  # int() would take "+5", " 5" or "1_0"
                self._fail(_bad("upstream.bad_response"))
                raise _Stop
            length = int(value)
            if self._lengths and length != self._length:
                self._fail(_bad("upstream.bad_response"))
                raise _Stop
            self._lengths += 1
            self._length = length
        elif size == 17 and name.lower() == b"transfer-encoding":
            self._te = value if self._te is None else self._te + b"," + value
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if not 100 <= status <= 599:
            # llhttp reads any three digits; no server (granian panics) can send these on.
            self._fail(_bad("upstream.bad_response"))
            raise _Stop
        if 100 <= status < 200:
            if status == 101 or self._lengths or self._te is not None:
                # An interim response has no body (RFC 9110 §15.2): a framed one would be
                # read into the final answer's.
                self._fail(_bad("upstream.bad_response"))
                raise _Stop
            # Interim response (100 Continue, 103 Early Hints): skipped.
            self._interim = True
            self._headers = []
            self._length = None
            self._lengths = 0
            self._te = None
            return
        if self._te is not None:
            if self._lengths:
                # Both framings: the classic desync vector. Refused, never guessed.
                self._fail(_bad("upstream.bad_response"))
                raise _Stop
            codings = [c.strip().lower() for c in self._te.split(b",")]
            if codings != [b"chunked"]:
                # gzip, deflate…: the body would reach the client still encoded, with no
                # header saying so (Transfer-Encoding is hop-by-hop). Nobody sends these.
                self._fail(_bad("upstream.bad_response"))
                raise _Stop
            self._chunked = True
        self._status = status
        self._head_done = True
        self._progress += 1
        future = self._future
        assert future is not None
        length = self._length
        if self._method_head:
            # llhttp cannot be told the body of a HEAD answer is empty: answer now; the
            # parser is replaced before the connection is reused.
            # Like every transport: no body, Content-Length (if any) left for the gateway.
            self._keep = self._parser.should_keep_alive()
            self._future = None
            future.set_result(UpstreamReply(status, self._headers, _Body(None)))
            return
        if length is not None and length <= SMALL_BODY:
            self._small = True
            return
        if status == 204 or status == 304:
            return  # llhttp completes the message without a body
        body = _Body(self)
        self._body = weakref.ref(body)
        self._future = None
        future.set_result(UpstreamReply(status, self._headers, body))
        self._release_drain()  # a request body still uploading: let it see the answer

    def on_body(self, data: bytes) -> None:
        if self._method_head:
            self._extra = True
            raise _Stop
        if self._interim:
            self._fail(_bad("upstream.bad_response"))
            raise _Stop
        self._progress += 1
        ref = self._body
        if ref is not None:
            body = ref()
            if body is None:  # the consumer is gone
                self._fail(_bad("upstream.error"))
                raise _Stop
            body._feed(data)
            if body._size > HIGH_WATER and not self.paused:
                self.paused = True
                assert self.transport is not None
                self.transport.pause_reading()
        else:
            self._parts.append(data)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._progress += 1
        # Read now: llhttp forgets the message's framing once it is complete.
        self._keep = self._parser.should_keep_alive()
        self._complete()

    # -- the exchange -------------------------------------------------------------------
    def _complete(self) -> None:
        future = self._future
        if future is not None:
            self._future = None
            if self._small:
                parts = self._parts
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                future.set_result(UpstreamReply(self._status, self._headers, None, data))
            else:  # 204 or 304 without a declared length
                future.set_result(UpstreamReply(self._status, self._headers, _Body(None)))
        ref = self._body
        if ref is not None:
            self._body = None
            body = ref()
            if body is not None:
                body._end(None)
        if self.closed and self.active:
            self._finish()

    def _finish(self) -> None:
        """The response is complete: back to the pool, or closed."""
        self.active = False
        # The timer stays armed: it finds the connection idle (or serving a later request
        # with later deadlines) and re-arms or drops itself. One TimerHandle per ``read``
        # seconds per connection, not one per request.
        reusable = (
            not self.closed
            and not self._extra
            and self._body_sent
            and self._keep
            and not self._close_after
        )
        if self._method_head and reusable:
            self._parser = HttpResponseParser(self)
        if self.paused:
            self.paused = False
            assert self.transport is not None
            self.transport.resume_reading()
        if reusable:
            self.reused = True
            self.pool.release(self)
        else:
            self.abort()

    def _fail(self, error: BaseException) -> None:
        """End the exchange with ``error`` (to the waiting caller or the body consumer)."""
        if not self.active:
            return
        self.active = False
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()
        future = self._future
        if future is not None:
            self._future = None
            if not future.done():
                future.set_exception(error)
        ref = self._body
        if ref is not None:
            self._body = None
            body = ref()
            if body is not None:
                body._end(error)
        self.abort()

    def begin(
        self,
        head: bytes,
        body: bytes | None,
        method_head: bool,
        timeouts: UpstreamTimeouts,
        streaming: bool,
    ) -> asyncio.Future[UpstreamReply]:
        self._reset()
        self.active = True
        self._method_head = method_head
        self._body_sent = not streaming
        loop = self.loop
        now = loop.time()
        self._read = timeouts.read
        self._last_read = now
        self._total_at = now + timeouts.total
        future: asyncio.Future[UpstreamReply] = loop.create_future()
        self._future = future
        due = min(now + timeouts.read, self._total_at)
        timer = self._timer
        if timer is None or timer.when() > due:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(due, self._on_timer)
        transport = self.transport
        assert transport is not None
        if body is None:
            transport.write(head)
        elif len(body) <= _ONE_WRITE:
            transport.write(head + body)
        else:
            transport.write(head)
            transport.write(body)
        return future

    def _on_timer(self) -> None:
        self._timer = None
        if not self.active:
            return
        now = self.loop.time()
        if not self._head_done:
            if now >= self._total_at:
                self._fail(GatewayTimeout(reason="upstream.timeout.total"))
                return
            due = self._last_read + self._read
            if now >= due:
                self._fail(GatewayTimeout(reason="upstream.timeout.read"))
                return
            due = min(due, self._total_at)
        elif now >= self._total_at:
            # The whole exchange, body included (as aiohttp's total): an upstream that
            # trickles a byte per read timeout must not hold the request forever.
            self._fail(GatewayTimeout(reason="upstream.timeout.total"))
            return
        elif self.paused:
            due = min(now + self._read, self._total_at)  # our consumer is slow, not the upstream
        else:
            due = self._last_read + self._read
            if now >= due:
                self._fail(GatewayTimeout(reason="upstream.timeout.read"))
                return
            due = min(due, self._total_at)
        self._timer = self.loop.call_at(due, self._on_timer)

    def resume(self) -> None:
        self.paused = False
        self._last_read = self.loop.time()
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    async def upload(self, chunks: AsyncIterable[bytes], length: int | None) -> None:
        """Stream a request body (Content-Length framing, or chunked without a length)."""
        transport = self.transport
        assert transport is not None
        sent = 0
        async for chunk in chunks:
            if not self.active or self.closed:
                return
            if not chunk:
                continue
            sent += len(chunk)
            if length is not None:
                if sent > length:
                    self._fail(_bad("upstream.bad_request"))
                    return
                transport.write(chunk)
            else:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            self._last_read = self.loop.time()  # progress: the read timer counts idleness
            if self._write_paused:
                self._drain = self.loop.create_future()
                await self._drain
                if self._write_paused and (self._head_done or not self.active):
                    return  # the upstream answered and stopped reading: stop sending
        if not self.active or self.closed:
            return
        if length is None:
            transport.write(b"0\r\n\r\n")
        elif sent != length:
            self._fail(_bad("upstream.bad_request"))
            return
        self._body_sent = True

    def abandon(self) -> None:
        """The consumer stopped reading the body: the half-read connection is closed."""
        self._body = None
        self._fail(_bad("upstream.error"))

    def abort(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self.pool.discard(self)


class _Pool:
    """Connections to one origin: idle ones reused LIFO, FIFO waiters, a slot limit."""

    __slots__ = (
        "_sweeper",
        "host",
        "host_header",
        "idle",
        "limit",
        "loop",
        "members",
        "open",
        "port",
        "scheme",
        "server_hostname",
        "ssl",
        "waiters",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        scheme: str,
        host: str,
        port: int,
        host_header: str,
        limit: int,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.loop = loop
        self.scheme = scheme
        self.host = host
        self.port = port
        self.host_header = host_header
        self.limit = limit
        self.ssl = ssl_context
        self.server_hostname = host if ssl_context is not None else None
        self.idle: list[_Connection] = []
        self.members: set[_Connection] = set()
        #: Slots taken: open connections, connections being opened, slots given to waiters.
        self.open = 0
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None

    async def acquire(self, connect: float, *, fresh: bool = False) -> _Connection:
        """An idle connection (unless ``fresh``), else a new one when a slot is free, else
        the first one released: all within ``connect`` seconds (504 upstream.timeout.connect)."""
        if not fresh:
            idle = self.idle
            while idle:
                conn = idle.pop()
                if not conn.closed:
                    return conn
        try:
            async with asyncio.timeout(connect):
                if self.open >= self.limit:
                    waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
                    self.waiters.append(waiter)
                    try:
                        given = await waiter
                    except BaseException:
                        if waiter.done() and not waiter.cancelled():
                            self._hand_back(waiter.result())
                        else:
                            waiter.cancel()
                        raise
                    if given is not None:
                        return given
                    # None: a slot was reserved for us (``open`` counts it already).
                else:
                    self.open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self.open -= 1
                    self._wake_one()
                    raise
        except TimeoutError:
            raise GatewayTimeout(reason="upstream.timeout.connect") from None

    def _hand_back(self, conn: _Connection | None) -> None:
        if conn is None:
            self.open -= 1
            self._wake_one()
        else:
            self.release(conn)

    async def _connect(self) -> _Connection:
        conn: _Connection | None = None

        def factory() -> _Connection:
            nonlocal conn
            conn = _Connection(self)
            return conn

        try:
            await self.loop.create_connection(
                factory,
                self.host,
                self.port,
                ssl=self.ssl,
                server_hostname=self.server_hostname,
            )
        except OSError:
            raise _bad("upstream.connect_failed") from None
        except BaseException:
            if conn is not None and conn.transport is not None:
                conn.transport.abort()
            raise
        assert conn is not None
        if conn.closed:
            raise _bad("upstream.connect_failed")
        self.members.add(conn)
        return conn

    def release(self, conn: _Connection) -> None:
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = self.loop.time()
        self.idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(_SWEEP_EVERY, self._sweep)

    def discard(self, conn: _Connection) -> None:
        """``conn`` is closed: free its slot for a waiter."""
        if conn in self.members:
            self.members.discard(conn)
            self.open -= 1
            if conn in self.idle:
                self.idle.remove(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                self.open += 1
                waiter.set_result(None)
                return

    def _sweep(self) -> None:
        self._sweeper = None
        idle = self.idle
        cutoff = self.loop.time() - IDLE_TIMEOUT
        while idle and idle[0].idle_since <= cutoff:
            idle.pop(0).abort()
        if idle:
            self._sweeper = self.loop.call_later(_SWEEP_EVERY, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(_bad("upstream.error"))
        self.waiters.clear()
        for conn in list(self.members):
            conn._fail(_bad("upstream.error"))
            conn.abort()
        self.members.clear()
        self.idle.clear()


class H1Transport:
    """The default upstream transport: Bastion's own pooled HTTP/1.1 client.

    ``max_connections`` bounds the open connections per origin (scheme, host, port);
    ``timeouts`` are the default, each request carries its own. ``ssl_context`` verifies
    https upstreams (default: ``ssl.create_default_context()``, the system trust store).
    """

    def __init__(
        self,
        *,
        max_connections: int = 256,
        timeouts: UpstreamTimeouts | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._timeouts = timeouts or UpstreamTimeouts()
        self._ssl = ssl_context
        self._pools: dict[str, _Pool] = {}

    def _pool(self, origin: str) -> _Pool:
        scheme, _, authority = origin.partition("://")
        scheme = scheme.lower()
        if scheme not in _DEFAULT_PORT or not authority or "@" in authority:
            raise _bad("upstream.bad_request")
        default = _DEFAULT_PORT[scheme]
        host, port = authority, default
        if authority.startswith("["):
            end = authority.find("]")
            if end < 0:
                raise _bad("upstream.bad_request")
            host, rest = authority[1:end], authority[end + 1 :]
            if rest:
                if not rest.startswith(":") or not rest[1:].isdigit():
                    raise _bad("upstream.bad_request")
                port = int(rest[1:])
        elif ":" in authority:
            host, _, digits = authority.rpartition(":")
            if not digits.isdigit():
                raise _bad("upstream.bad_request")
            port = int(digits)
        bracketed = f"[{host}]" if ":" in host else host
        host_header = bracketed if port == default else f"{bracketed}:{port}"
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        pool = _Pool(
            asyncio.get_running_loop(),
            scheme,
            host,
            port,
            host_header,
            self._max_connections,
            context,
        )
        self._pools[origin] = pool
        return pool

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        url = request.url
        start = url.find("/", url.find("://") + 3)
        if start < 0:
            start = url.find("?", url.find("://") + 3)
            if start < 0:
                origin, target = url, "/"
            else:
                origin, target = url[:start], "/" + url[start:]
        else:
            origin, target = url[:start], url[start:]
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pool(origin)
        method = request.method
        body = request.body
        head, length = _head(method, target, request.headers, pool.host_header, body)
        timeouts = request.timeouts
        idle = pool.idle
        conn = idle.pop() if idle else None
        if conn is None or conn.closed:
            conn = await pool.acquire(timeouts.connect)
        try:
            return await self._exchange(conn, head, body, length, method, timeouts)
        except _Stale:
            if method not in _IDEMPOTENT or not (body is None or isinstance(body, bytes)):
                raise _bad("upstream.disconnected") from None
        conn = await pool.acquire(timeouts.connect, fresh=True)
        try:
            return await self._exchange(conn, head, body, length, method, timeouts)
        except _Stale:
            raise _bad("upstream.disconnected") from None

    @staticmethod
    async def _exchange(
        conn: _Connection,
        head: bytes,
        body: bytes | AsyncIterable[bytes] | None,
        length: int | None,
        method: str,
        timeouts: UpstreamTimeouts,
    ) -> UpstreamReply:
        if body is None or isinstance(body, bytes | bytearray):
            future = conn.begin(
                head, bytes(body) if body else None, method == "HEAD", timeouts, False
            )
            conn._close_after = bool(body) and method in CONTENT_UNDEFINED
        else:
            future = conn.begin(head, None, method == "HEAD", timeouts, True)
            conn._close_after = method in CONTENT_UNDEFINED
            try:
                await conn.upload(body, length)
            except BaseException as exc:
                conn._fail(_bad("upstream.error"))
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved: the caller gets the upload's own error
                if isinstance(exc, BastionError | asyncio.CancelledError):
                    raise
                raise _bad("upstream.error") from None
        try:
            return await future
        except BaseException:
            # Cancelled mid-exchange: a half-used connection is never reused.
            if conn.active:
                conn._fail(_bad("upstream.error"))
            raise

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()


def _head(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    host_header: str,
    body: bytes | AsyncIterable[bytes] | None,
) -> tuple[bytes, int | None]:
    """The request head, refusing (502 upstream.bad_request) anything that would inject."""
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    has_host = False
    length: int | None = None
    for name, value in headers:
        lname = name.lower()
        if lname == "host":
            has_host = True
        elif lname == "content-length":
            if length is not None or not value.isdigit():
                raise _bad("upstream.bad_request")
            length = int(value)
        elif lname == "transfer-encoding":
            raise _bad("upstream.bad_request")  # we frame the body ourselves
        lines.append(f"{name}: {value}\r\n")
    if not has_host:
        lines.append(f"host: {host_header}\r\n")
    if isinstance(body, bytes | bytearray):
        if length is None:
            lines.append(f"content-length: {len(body)}\r\n")
        elif length != len(body):
            raise _bad("upstream.bad_request")
    elif body is not None and length is None:
        lines.append("transfer-encoding: chunked\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    # Every line ends in exactly one CRLF: a CR or LF anywhere else, or a NUL, is refused.
    count = len(lines)
    if (
        text.count("\n") != count
        or text.count("\r") != count
        or "\x00" in text
        or " " in target
        or " " in method
    ):
        raise _bad("upstream.bad_request")
    try:
        return text.encode("latin-1"), length
    except UnicodeEncodeError:
        raise _bad("upstream.bad_request") from None
