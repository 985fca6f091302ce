"""Shared state for Bastion gateway processes: counters, revocations, blocklist.

``create_store({"backend": "memory"})`` or
``create_store({"backend": "redis", "url": "redis://127.0.0.1:6379/0", "prefix": "bastion"})``
returns a :class:`StateStore`; call ``await store.start()`` before use and
``await store.close()`` at shutdown. See docs/state.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bastion.state.base import BlockEntry, BlockKind, ChangeEvent, StateStore
from bastion.state.factory import create_store
from bastion.state.memory import MemoryStateStore
from bastion.state.mirror import SharedMirror, normalize_block_value

if TYPE_CHECKING:
    from bastion.state.redis_store import RedisStateStore

__all__ = [
    "BlockEntry",
    "BlockKind",
    "ChangeEvent",
    "MemoryStateStore",
    "RedisStateStore",
    "SharedMirror",
    "StateStore",
    "create_store",
    "normalize_block_value",
]


def __getattr__(name: str) -> Any:
    # redis-py is imported only when a Redis store is used: importing it costs ~0.3 s, and it
    # pulls in OpenTelemetry's metrics SDK when that is installed.
    if name == "RedisStateStore":
        from bastion.state.redis_store import RedisStateStore

        return RedisStateStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
