"""Lua scripts for the Redis store, called with EVALSHA.

Each script is sent by its SHA-1 (computed locally, no round trip). When Redis answers
``NOSCRIPT`` — after a restart, a failover or ``SCRIPT FLUSH`` — the script is loaded with
``SCRIPT LOAD`` and the call retried once, so a long-lived store keeps working.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from bastion.state.redis_batch import CommandBatcher, bulk

__all__ = ["Script", "load_script"]


class Script:
    """One Lua script: its source and SHA-1."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def load(self, client: Redis) -> None:
        await client.script_load(self.source)

    async def __call__(self, client: Redis, keys: list[str], args: list[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.load(client)
            return await client.evalsha(self.sha, len(keys), *keys, *args)

    def command(self, keys: list[str], rest: list[Any]) -> tuple[bytes, bytes]:
        """The EVALSHA command packed for :meth:`batched`, in two parts around ``ARGV[1]``
        (the caller puts ``bulk(argv1)`` between them, per call)."""
        count = 3 + len(keys) + 1 + len(rest)
        head = b"*%d\r\n" % count + bulk("EVALSHA") + bulk(self.sha) + bulk(len(keys))
        head += b"".join(bulk(key) for key in keys)
        return head, b"".join(bulk(arg) for arg in rest)

    async def batched(self, batcher: CommandBatcher, client: Redis, packed: bytes) -> Any:
        """Run the packed :meth:`command`, pipelined with the other commands of this loop
        turn; on NOSCRIPT, load the script and run it again."""
        try:
            return await batcher.execute(packed)
        except NoScriptError:
            await self.load(client)
            return await batcher.execute(packed)


def load_script(name: str) -> Script:
    """Read ``bastion/state/lua/<name>.lua`` from the package."""
    source = resources.files("bastion.state").joinpath("lua", f"{name}.lua").read_text("utf-8")
    return Script(name, source)
