"""SQL key store: SQLite (aiosqlite) or PostgreSQL (asyncpg) through SQLAlchemy 2 Core.

Queries are built with SQLAlchemy expressions, so every value is a bound parameter. The
table is created on :meth:`SqlApiKeyStore.start`. On SQLite, writers open ``BEGIN
IMMEDIATE`` transactions (a read-then-write never fails on a lock upgrade), the journal is
WAL (the gateway reads while the CLI writes) and a new database file is created mode 0600.
On PostgreSQL, rotation locks the old row (``SELECT … FOR UPDATE``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    Connection,
    Double,
    Index,
    MetaData,
    Select,
    String,
    Table,
    Text,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bastion.apikeys.model import ApiKeyRecord
from bastion.apikeys.store import (
    DEFAULT_TABLE,
    ApiKeyNotRotatable,
    Listeners,
    UnknownApiKey,
    issue_key,
    successor_of,
)
from bastion.sqlite_wal import enable_wal

__all__ = ["SqlApiKeyStore"]

_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}", re.ASCII)


def _table(name: str) -> Table:
    if not _TABLE_NAME.fullmatch(name):
        raise ValueError("table name must match [a-z_][a-z0-9_]{0,39}")
    metadata = MetaData()
    return Table(
        name,
        metadata,
        Column("key_id", String(32), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("prefix", String(16), nullable=False),
        Column("key_hash", String(64), nullable=False),
        Column("roles", Text, nullable=False),
        Column("scopes", Text, nullable=False),
        Column("created_at", Double, nullable=False),
        Column("expires_at", Double, nullable=True),
        Column("revoked_at", Double, nullable=True),
        Column("allowed_networks", Text, nullable=False),
        Column("rotated_from", String(32), nullable=True),
        Index(f"{name}_hash_uq", "key_hash", unique=True),
        Index(f"{name}_rotated_from_uq", "rotated_from", unique=True),
    )


def _to_row(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "name": record.name,
        "prefix": record.prefix,
        "key_hash": record.key_hash,
        "roles": orjson.dumps(list(record.roles)).decode(),
        "scopes": orjson.dumps(list(record.scopes)).decode(),
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
        "allowed_networks": orjson.dumps(list(record.allowed_networks)).decode(),
        "rotated_from": record.rotated_from,
    }


def _from_row(row: RowMapping) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row["key_id"],
        name=row["name"],
        prefix=row["prefix"],
        key_hash=row["key_hash"],
        roles=tuple(orjson.loads(row["roles"])),
        scopes=tuple(orjson.loads(row["scopes"])),
        created_at=float(row["created_at"]),
        expires_at=None if row["expires_at"] is None else float(row["expires_at"]),
        revoked_at=None if row["revoked_at"] is None else float(row["revoked_at"]),
        allowed_networks=tuple(orjson.loads(row["allowed_networks"])),
        rotated_from=row["rotated_from"],
    )


def _sqlite_tuning(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        enable_wal(dbapi_connection)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("apikeys_writer", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif not options.get("apikeys_reader", False):
            conn.exec_driver_sql("BEGIN")


def _precreate_sqlite_file(url: str) -> None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    if not os.path.exists(database):
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))


class SqlApiKeyStore:
    """:class:`bastion.apikeys.store.ApiKeyStore` on SQLite or PostgreSQL."""

    def __init__(self, url: str, *, table: str = DEFAULT_TABLE) -> None:
        self._url = url
        self._table = _table(table)
        self._is_sqlite = url.startswith("sqlite")
        self._listeners = Listeners()
        kwargs: dict[str, Any] = {}
        if self._is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=10)
        self._engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self._is_sqlite:
            _sqlite_tuning(self._engine)
        self._writer = self._engine.execution_options(apikeys_writer=True)
        # Single-statement reads need no transaction: no BEGIN/ROLLBACK round trips.
        self._reader = (
            self._engine.execution_options(apikeys_reader=True)
            if self._is_sqlite
            else self._engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    @property
    def table_name(self) -> str:
        return self._table.name

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(key_id)`` after a key of this process is revoked or rotated."""
        self._listeners.add(callback)

    async def start(self) -> None:
        if self._is_sqlite:
            _precreate_sqlite_file(self._url)
        try:
            async with self._writer.begin() as conn:
                await conn.run_sync(self._table.metadata.create_all, checkfirst=True)
        except (ProgrammingError, IntegrityError):
            # Several gateways starting at once raced to create the table: it exists now.
            async with self._writer.begin() as conn:
                await conn.run_sync(self._table.metadata.create_all, checkfirst=True)

    async def close(self) -> None:
        await self._engine.dispose()

    async def create(
        self,
        *,
        name: str,
        roles: Sequence[str],
        scopes: Sequence[str],
        expires_at: float | None,
        allowed_networks: Sequence[str],
        now: float,
        env: str = "live",
    ) -> tuple[str, ApiKeyRecord]:
        key, record = issue_key(
            name=name,
            roles=roles,
            scopes=scopes,
            expires_at=expires_at,
            allowed_networks=allowed_networks,
            now=now,
            env=env,
        )
        async with self._writer.begin() as conn:
            await conn.execute(insert(self._table).values(**_to_row(record)))
        return key, record

    async def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        query = select(self._table).where(self._table.c.key_hash == key_hash)
        try:
            row = await self._read_one(query)
        except DBAPIError as exc:
            # A pooled connection the server dropped (restart, failover): retry once on a
            # fresh one instead of paying a pre-ping round trip on every lookup.
            if not exc.connection_invalidated:
                raise
            row = await self._read_one(query)
        return None if row is None else _from_row(row)

    async def _read_one(self, query: Select[Any]) -> RowMapping | None:
        async with self._reader.connect() as conn:
            row: RowMapping | None = (await conn.execute(query)).mappings().first()
        return row

    async def list(self) -> list[ApiKeyRecord]:
        t = self._table
        query = select(t).order_by(t.c.created_at, t.c.key_id)
        async with self._reader.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_from_row(row) for row in rows]

    async def revoke(self, key_id: str, now: float) -> bool:
        t = self._table
        statement = (
            update(t).where(t.c.key_id == key_id, t.c.revoked_at.is_(None)).values(revoked_at=now)
        )
        async with self._writer.begin() as conn:
            changed = (await conn.execute(statement)).rowcount == 1
        if changed:
            self._listeners.notify(key_id)
        return changed

    async def rotate(
        self, key_id: str, *, overlap_seconds: float, now: float
    ) -> tuple[str, ApiKeyRecord]:
        t = self._table
        query = select(t).where(t.c.key_id == key_id)
        if not self._is_sqlite:
            query = query.with_for_update()
        try:
            async with self._writer.begin() as conn:
                row = (await conn.execute(query)).mappings().first()
                if row is None:
                    raise UnknownApiKey(key_id)
                old = _from_row(row)
                successor = (
                    await conn.execute(select(t.c.key_id).where(t.c.rotated_from == key_id))
                ).first()
                if successor is not None:
                    raise ApiKeyNotRotatable(f"{key_id} was already rotated to {successor[0]}")
                key, record, old_updated = successor_of(
                    old, overlap_seconds=overlap_seconds, now=now
                )
                await conn.execute(
                    update(t)
                    .where(t.c.key_id == key_id, t.c.revoked_at.is_(None))
                    .values(expires_at=old_updated.expires_at)
                )
                await conn.execute(insert(t).values(**_to_row(record)))
        except IntegrityError:
            # The unique index on rotated_from: a concurrent rotation won.
            raise ApiKeyNotRotatable(f"{key_id} was rotated concurrently") from None
        self._listeners.notify(key_id)
        return key, record
