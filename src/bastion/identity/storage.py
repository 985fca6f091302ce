"""Database engine and migrations: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) by URL.

SQLite notes: the driver runs in autocommit mode and SQLAlchemy emits the transaction
itself, ``BEGIN IMMEDIATE`` for writers (so a read-then-write never fails on a lock upgrade)
and a deferred ``BEGIN`` for readers; WAL journal, a busy timeout, foreign keys on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bastion.sqlite_wal import enable_wal

__all__ = ["Database", "migrate_sync"]

_MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "identity_alembic_version"


def _alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate_sync(connection: Connection, revision: str = "head") -> None:
    """Apply the shipped alembic migrations on an open (sync) connection."""
    command.upgrade(_alembic_config(connection), revision)


class Database:
    """One async engine plus the two transaction shapes the service uses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _sqlite_tuning(self.engine)
        self._writer = self.engine.execution_options(bastion_writer=True)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits on success and rolls back on any exception."""
        async with self._writer.begin() as conn:
            yield conn

    async def migrate(self, revision: str = "head") -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(migrate_sync, revision)

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_tuning(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        enable_wal(dbapi_connection)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writer = conn.get_execution_options().get("bastion_writer", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")
