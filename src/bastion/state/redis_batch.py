"""Automatic pipelining: the hot-path commands of one event-loop turn share one write.

A gateway under load has many requests in flight; each rate-limit check is one EVALSHA. Sent
one by one through redis-py, every command pays for a pool checkout, packing, a timeout
context per read and the wake-ups around them: several hundred microseconds of gateway CPU
per request, more than the proxying itself. The :class:`CommandBatcher` instead queues the
commands issued while the event loop runs its ready callbacks and, on the next turn, writes
them all at once on its own connection, which keeps them pipelined: Redis answers in order,
so replies are matched to callers first-in first-out as ``hiredis`` (redis-py's C parser)
decodes them, straight in ``data_received``, with no task per command or per batch. The same
idea as ioredis's ``enableAutoPipelining`` and Lettuce's default. Each command keeps its own
atomicity (a Lua script is atomic anyway); there is no MULTI.

Nothing waits to fill a batch: the flush is scheduled with ``call_soon``, so a lone request
goes out at once, and under load batches form by themselves.

Failure handling, fail closed:

* every command has a deadline (``timeout`` after it was written); when the oldest one
  passes, the connection is dropped and every caller still waiting gets ``TimeoutError``.
  A reply arriving later lands on a closed socket: it can never answer a later request;
* a lost connection fails every waiting caller with ``ConnectionError``; the next command
  opens a new connection (AUTH and SELECT from the URL first);
* an error reply fails only its own caller (``NoScriptError`` for NOSCRIPT, so scripts can
  be reloaded, ``ResponseError`` otherwise).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

__all__ = ["CommandBatcher", "bulk", "pack"]


def bulk(arg: bytes | str | int) -> bytes:
    """One argument as a RESP bulk string."""
    data = arg if isinstance(arg, bytes) else str(arg).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def pack(*args: bytes | str | int) -> bytes:
    """One command in RESP (the Redis protocol): ``*<n>`` then each argument as a bulk string."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(arg) for arg in args)


def _reply_error(error: hiredis.ReplyError) -> ResponseError:
    message = str(error)
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


class _Endpoint:
    """Where and how to connect, read from a redis-py client's pool (the configured URL)."""

    def __init__(self, client: Redis) -> None:
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        self.path: str | None = None
        self.host = str(kwargs.get("host", "127.0.0.1"))
        self.port = int(kwargs.get("port", 6379))
        self.ssl: ssl.SSLContext | None = None
        if issubclass(pool.connection_class, UnixDomainSocketConnection):
            self.path = str(kwargs["path"])
        elif issubclass(pool.connection_class, SSLConnection):
            context = ssl.create_default_context(cafile=kwargs.get("ssl_ca_certs"))
            if kwargs.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self.ssl = context
        password = kwargs.get("password")
        username = kwargs.get("username")
        self.handshake: list[bytes] = []
        if password:
            args = ("AUTH", username, password) if username else ("AUTH", password)
            self.handshake.append(pack(*args))
        if int(kwargs.get("db") or 0):
            self.handshake.append(pack("SELECT", int(kwargs["db"])))


class _Resp(asyncio.Protocol):
    """One pipelined connection: replies resolve waiting futures in order."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._reader = hiredis.Reader()
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self._transport = cast(asyncio.Transport, transport)

    def send(self, data: bytes, futures: list[asyncio.Future[Any]]) -> None:
        assert self._transport is not None
        deadline = self._loop.time() + self._timeout
        self._waiting.extend((future, deadline) for future in futures)
        self._transport.write(data)
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._check_deadline)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError:
                self.abort(RedisConnectionError("invalid reply from Redis"))
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream cannot be trusted
                self.abort(RedisConnectionError("unexpected reply from Redis"))
                return
            future, _ = waiting.popleft()
            if future.done():  # the caller went away (request cancelled)
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(_reply_error(reply))
            else:
                future.set_result(reply)

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._waiting:
            return
        deadline = self._waiting[0][1]
        if deadline <= self._loop.time():
            self.abort(TimeoutError())
        else:
            self._timer = self._loop.call_at(deadline, self._check_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError("connection to Redis lost"))

    def abort(self, error: BaseException) -> None:
        """Drop the connection; every caller still waiting gets ``error``."""
        self._fail(error)
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, error: BaseException) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, deque()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(error)


class CommandBatcher:
    """Pipelines packed commands on its own connection to the Redis of ``client``'s URL.

    ``timeout`` bounds connecting and each command's round trip.
    """

    def __init__(self, client: Redis, *, timeout: float, max_batch: int = 512) -> None:
        self._endpoint = _Endpoint(client)
        self._timeout = timeout
        self._max_batch = max_batch
        self._pending: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._conn: _Resp | None = None
        self._connecting: asyncio.Task[_Resp] | None = None
        #: Batches waiting for a connection, referenced until sent.
        self._waiting_tasks: set[asyncio.Task[None]] = set()

    def execute(self, packed: bytes) -> asyncio.Future[Any]:
        """Queue one command packed by :func:`pack`; the future gets its reply or error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((packed, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        conn = self._conn
        if conn is not None and not conn.closed:
            conn.send(b"".join(p for p, _ in batch), [f for _, f in batch])
            return
        task = asyncio.ensure_future(self._send_when_connected(batch))
        self._waiting_tasks.add(task)
        task.add_done_callback(self._waiting_tasks.discard)

    async def _send_when_connected(self, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        try:
            conn = await self._connection()
        except Exception as exc:  # unreachable, refused, AUTH failed, timed out
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        conn.send(b"".join(p for p, _ in batch), [f for _, f in batch])

    async def _connection(self) -> _Resp:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect())
        # shield: one caller giving up must not cancel the connect the others wait for
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> _Resp:
        endpoint = self._endpoint
        loop = asyncio.get_running_loop()
        protocol = _Resp(self._timeout)
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    if endpoint.path is not None:
                        await loop.create_unix_connection(lambda: protocol, endpoint.path)
                    else:
                        await loop.create_connection(
                            lambda: protocol,
                            endpoint.host,
                            endpoint.port,
                            ssl=endpoint.ssl,
                            server_hostname=endpoint.host if endpoint.ssl else None,
                        )
                except OSError as exc:
                    raise RedisConnectionError(f"cannot connect to Redis: {exc}") from None
                if endpoint.handshake:
                    futures = [loop.create_future() for _ in endpoint.handshake]
                    protocol.send(b"".join(endpoint.handshake), futures)
                    try:
                        for future in futures:
                            await future
                    finally:
                        for future in futures:  # the first failure is raised; mark the rest
                            if future.done() and not future.cancelled():
                                future.exception()
        except BaseException:  # timed out, refused, AUTH or SELECT refused, cancelled
            protocol.abort(RedisConnectionError("could not connect to Redis"))
            raise
        self._conn = protocol
        return protocol

    async def close(self) -> None:
        """Send what is queued, let the commands on the wire finish, then disconnect."""
        self._flush()
        if self._waiting_tasks:
            await asyncio.gather(*self._waiting_tasks, return_exceptions=True)
        conn = self._conn
        if conn is not None and not conn.closed:
            waiting = [future for future, _ in conn._waiting]
            if waiting:
                await asyncio.wait(waiting, timeout=self._timeout)
            conn.abort(RedisConnectionError("closed"))
        self._conn = None
