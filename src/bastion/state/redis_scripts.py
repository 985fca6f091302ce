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


def load_script(name: str) -> Script:
    """Read ``bastion/state/lua/<name>.lua`` from the package."""
    source = resources.files("bastion.state").joinpath("lua", f"{name}.lua").read_text("utf-8")
    return Script(name, source)
