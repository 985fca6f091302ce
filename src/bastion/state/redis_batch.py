"""Automatic pipelining: commands issued in the same event-loop turn share one round trip.

A gateway under load has many requests in flight; each rate-limit check is one EVALSHA. Sent
one by one, every command pays for a pool checkout, a write, a read and the asyncio wake-ups
around them: with redis-py that is several hundred microseconds of gateway CPU per request,
more than the proxying itself. The :class:`CommandBatcher` queues the commands issued while
the event loop runs the current batch of ready callbacks and, on the next turn, sends them
all on one connection as one pipeline (``transaction=False``: no MULTI, each command keeps
its own atomicity, as a Lua script does anyway). Each caller gets its own reply or its own
error, in order. The same idea as ioredis's ``enableAutoPipelining`` and Lettuce's default.

Nothing waits to fill a batch: the flush is scheduled with ``call_soon``, so a lone request
goes out at once, and under load batches form by themselves. Batches do not wait for each
other either: while one is on the wire, the next one takes another pooled connection.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

__all__ = ["CommandBatcher", "bulk", "pack"]


def bulk(arg: bytes | str | int) -> bytes:
    """One argument as a RESP bulk string."""
    data = arg if isinstance(arg, bytes) else str(arg).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def pack(*args: bytes | str | int) -> bytes:
    """One command in RESP (the Redis protocol): ``*<n>`` then each argument as a bulk string."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(arg) for arg in args)


class CommandBatcher:
    """Queue packed commands for ``client``'s pool; send each loop turn's commands together.

    ``timeout`` bounds the whole round trip of a batch (write and every reply).
    """

    def __init__(self, client: Redis, *, timeout: float, max_batch: int = 512) -> None:
        self._pool: Any = client.connection_pool
        self._timeout = timeout
        self._max_batch = max_batch
        self._pending: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._scheduled = False
        #: Flushes in flight, referenced until done.
        self._sending: set[asyncio.Task[None]] = set()

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
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        connection: Any = None
        replies: list[Any] = []
        try:
            async with asyncio.timeout(self._timeout):
                connection = await self._pool.get_connection()
                await connection.send_packed_command(b"".join(packed for packed, _ in batch))
                for _ in batch:
                    try:
                        # One timeout for the whole batch (above), none per reply.
                        replies.append(await connection.read_response(timeout=math.inf))
                    except ResponseError as error:  # this command failed; the rest stand
                        replies.append(error)
        except asyncio.CancelledError:
            if connection is not None:
                await connection.disconnect()
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # connection lost, timeout: every caller of the batch fails
            if connection is not None:
                await connection.disconnect()  # replies may still be on the way: start afresh
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            if connection is not None:
                await self._pool.release(connection)
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # the caller went away (request cancelled)
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def close(self) -> None:
        """Send what is queued and wait for the batches on the wire."""
        self._flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
