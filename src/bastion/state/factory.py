"""``create_store(config)``: a state store from the ``state:`` section of the config.

``{backend: memory}`` or ``{backend: redis, url: ..., prefix: bastion, max_staleness: 5,
resync_interval: 1, time_source: server, timeout: 1}``. Unknown keys and bad values raise
:class:`bastion.errors.ConfigError`; the URL (which may hold a password) is never echoed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.errors import ConfigError
from bastion.state.base import StateStore
from bastion.state.memory import MemoryStateStore

__all__ = ["create_store"]

_REDIS_KEYS = {
    "backend",
    "url",
    "prefix",
    "max_staleness",
    "resync_interval",
    "time_source",
    "timeout",
}


def _number(config: Mapping[str, Any], name: str, default: float) -> float:
    value = config.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"must be a positive number, got {value!r}", location=f"state.{name}")
    return float(value)


def create_store(config: Mapping[str, Any]) -> StateStore:
    """Build (not start) the configured store."""
    backend = config.get("backend", "memory")
    if backend == "memory":
        unknown = set(config) - {"backend"}
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)}", location="state")
        return MemoryStateStore()
    if backend != "redis":
        raise ConfigError(
            f"unknown backend {backend!r} (use memory or redis)", location="state.backend"
        )
    unknown = set(config) - _REDIS_KEYS
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)}", location="state")
    url = config.get("url")
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("must be a redis://, rediss:// or unix:// URL", location="state.url")
    prefix = config.get("prefix", "bastion")
    time_source = config.get("time_source", "server")
    if time_source not in ("server", "client"):
        raise ConfigError("must be 'server' or 'client'", location="state.time_source")
    from bastion.state.redis_store import RedisStateStore  # only when used (see __init__)

    try:
        max_staleness = _number(config, "max_staleness", 5.0)
        return RedisStateStore(
            url,
            prefix=str(prefix),
            max_staleness=max_staleness,
            # Version checks well within the staleness bound (they keep the mirror trusted).
            resync_interval=_number(config, "resync_interval", min(1.0, max_staleness / 3)),
            time_source=time_source,
            timeout=_number(config, "timeout", 1.0),
        )
    except ValueError as exc:
        raise ConfigError(str(exc), location="state") from None
