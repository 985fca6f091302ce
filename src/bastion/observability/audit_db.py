"""Audit events in a database (PostgreSQL; SQLite works too), written in batches.

:class:`AuditDbSink` buffers events in memory (bounded: beyond ``max_buffer`` events are
dropped and counted, never blocking a request) and inserts them every ``flush_interval`` or
``batch_size`` events with one multi-row ``INSERT``. Events are redacted with the audit
log's own :class:`~bastion.observability.audit.Redactor` before they are stored.
:func:`search_db` answers ``bastion audit search --db``; every query is parameterised.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bastion.observability.audit import Redactor
from bastion.observability.audit_search import Query

__all__ = ["AuditDbSink", "audit_table", "search_db"]

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def audit_table(name: str = "bastion_audit") -> Table:
    if not _NAME.match(name):
        raise ValueError("the audit table name must match [a-z_][a-z0-9_]*")
    metadata = MetaData()
    return Table(
        name,
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        Column("at", Float, nullable=False),
        Column("event", String(64), nullable=False),
        Column("principal", String(512)),
        Column("route", String(512)),
        Column("status", Integer),
        Column("client_ip", String(64)),
        Column("request_id", String(128)),
        Column("data", JSON, nullable=False),
        Index(f"{name}_at", "at"),
        Index(f"{name}_principal_at", "principal", "at"),
    )


def _text(value: Any, size: int) -> str | None:
    return None if value is None else str(value)[:size]


class AuditDbSink:
    def __init__(
        self,
        url: str,
        *,
        table: str = "bastion_audit",
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_buffer: int = 100_000,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.time,
        engine: AsyncEngine | None = None,
    ) -> None:
        self.table = audit_table(table)
        self._engine = engine or create_async_engine(url, pool_pre_ping=True)
        self.batch_size, self.flush_interval, self.max_buffer = (
            batch_size,
            flush_interval,
            max_buffer,
        )
        self._redactor = redactor or Redactor(())
        self._clock = clock
        self._buffer: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self.dropped = 0
        self.failed_batches = 0

    async def start(self) -> None:
        async with self._engine.begin() as conn:
            await conn.run_sync(self.table.metadata.create_all)
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()
        await self._engine.dispose()

    def add(self, event: Mapping[str, Any]) -> None:
        """Buffer one event (synchronous, bounded, never raises)."""
        if len(self._buffer) >= self.max_buffer:
            self.dropped += 1
            return
        try:
            data = self._redactor(None, "", dict(event))
        except Exception:
            self.dropped += 1
            return
        at = self._clock()
        data.setdefault("time", at)
        status = data.get("status")
        self._buffer.append(
            {
                "at": at,
                "event": _text(data.get("event"), 64) or "unknown",
                "principal": _text(data.get("principal"), 512),
                "route": _text(data.get("route"), 512),
                "status": status if isinstance(status, int) else None,
                "client_ip": _text(data.get("client_ip"), 64),
                "request_id": _text(data.get("request_id"), 128),
                "data": data,
            }
        )
        if len(self._buffer) >= self.batch_size:
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # the database is down: keep buffering (bounded)
                self.failed_batches += 1
                if self.failed_batches == 1:
                    print(f"bastion: audit database write failed: {type(exc).__name__}",
                          file=sys.stderr)  # fmt: skip

    async def flush(self) -> int:
        """Insert everything buffered; one flush at a time (rows are never written twice)."""
        written = 0
        async with self._flushing:
            while self._buffer:
                batch = self._buffer[: self.batch_size]
                async with self._engine.begin() as conn:
                    await conn.execute(insert(self.table), batch)
                del self._buffer[: len(batch)]
                written += len(batch)
        return written


async def search_db(url: str, query: Query, table: str = "bastion_audit") -> list[dict[str, Any]]:
    t = audit_table(table)
    statement = select(t.c.data).order_by(t.c.at, t.c.id).limit(query.limit)
    if query.principal is not None:
        statement = statement.where(t.c.principal == query.principal)
    if query.event is not None:
        statement = statement.where(t.c.event == query.event)
    if query.route is not None:
        if query.route.endswith("*"):
            statement = statement.where(t.c.route.startswith(query.route[:-1], autoescape=True))
        else:
            statement = statement.where(t.c.route == query.route)
    bounds = query.status_range()
    if bounds is not None:
        statement = statement.where(t.c.status.between(*bounds))
    if query.since is not None:
        statement = statement.where(t.c.at >= query.since)
    if query.until is not None:
        statement = statement.where(t.c.at <= query.until)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
    finally:
        await engine.dispose()
    return [dict(row[0]) for row in rows]
