"""Shared state for Bastion gateway processes: counters, revocations, blocklist.

``create_store({"backend": "memory"})`` or
``create_store({"backend": "redis", "url": "redis://127.0.0.1:6379/0", "prefix": "bastion"})``
returns a :class:`StateStore`; call ``await store.start()`` before use and
``await store.close()`` at shutdown. See docs/state.md.
"""

from __future__ import annotations

from bastion.state.base import BlockEntry, BlockKind, ChangeEvent, StateStore
from bastion.state.factory import create_store
from bastion.state.memory import MemoryStateStore
from bastion.state.mirror import SharedMirror, normalize_block_value
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
