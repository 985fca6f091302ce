"""SQLite's write-ahead log, switched on reliably when several processes open one file.

Every SQLite connection Bastion opens (API keys, the token service) runs in WAL mode, so
readers never wait for the writer. The switch needs the file to itself for a moment, and
when several gateways open a fresh database at the same instant SQLite may refuse it at
once with "database is locked" instead of waiting for the busy timeout (or answer with the
old mode). :func:`enable_wal` sets the busy timeout first and retries the switch for a
bounded time; on a database already in WAL mode it is a single statement.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["enable_wal"]

_ATTEMPTS = 100
_PAUSE = 0.05  # seconds between attempts: 5 s in all, only ever spent at a cold start


def enable_wal(dbapi_connection: Any) -> None:
    """Put a fresh DB-API connection in WAL mode (busy timeout 30 s set first)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=30000")
        for _ in range(_ATTEMPTS):
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                row = cursor.fetchone()
            except Exception as exc:  # the driver's OperationalError (sqlite3 or adapted)
                if "locked" not in str(exc).lower():
                    raise
            else:
                if row is not None and str(row[0]).lower() == "wal":
                    return
            time.sleep(_PAUSE)
        raise RuntimeError("SQLite: could not switch the database to WAL mode (it stayed locked)")
    finally:
        cursor.close()
