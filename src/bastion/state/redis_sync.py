"""Keeping every process's :class:`SharedMirror` in step with Redis.

* **Full load** at start: one MULTI with the version counter, the revoked-token sorted set,
  the not-before hash and the block hash.
* **Pub/sub**: every write bumps ``version`` and publishes ``"<version> <json>"`` in the same
  script; subscribers apply it at once (propagation well under a second). A message whose
  version is not the next one reveals a gap and triggers a full load; older ones are ignored.
* **Periodic resync** (``resync_interval``, default 1 s): ``GET version`` — one cheap
  round trip — and a full load only when it differs, so a missed message (a dropped
  subscription, a restart) is repaired within one interval.
* **Freshness**: what shows the mirror current moves ``fresh()``'s horizon to
  ``now + max_staleness``: a full load, a version check that finds nothing new, a change
  applied in order (its own write, or a message). Nothing else does: a rate-limit reply
  shows Redis reachable, not the mirror in step. When no such proof comes for longer
  (Redis unreachable, or the resync failing for any reason), ``fresh()`` turns False and
  callers fail closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bastion.jsonutil import dumps, loads_strict
from bastion.state.base import BlockEntry, ChangeEvent, ChangeKind
from bastion.state.mirror import REVOCATION_GRACE, SharedMirror
from bastion.state.redis_scripts import load_script

__all__ = ["PRUNE_GRACE", "MirrorSync", "SharedKeys"]

#: Expired revocations and lapsed blocks leave Redis only this long after they lapsed by
#: Redis' own clock: a gateway whose clock runs ahead (NTP drift, a bad host) would
#: otherwise delete entries every other gateway still enforces. Each gateway keeps judging
#: expiry by its own clock for what it enforces; this only delays the clean-up.
PRUNE_GRACE = 3600.0

_log = logging.getLogger(__name__)
_CHANGE_OPS: frozenset[str] = frozenset({"revoke_token", "revoke_subject", "block", "unblock"})


class SharedKeys:
    """Key and channel names of the shared sets (one hash tag: one Cluster slot)."""

    def __init__(self, prefix: str) -> None:
        tag = f"{{{prefix}:shared}}"
        self.version = f"{tag}:version"
        self.revoked = f"{tag}:revoked"
        self.not_before = f"{tag}:nbf"
        self.blocks = f"{tag}:blocks"
        self.changes_channel = f"{prefix}:changes"
        self.events_channel = f"{prefix}:events"

    @staticmethod
    def block_field(kind: str, value: str) -> str:
        return f"{kind}|{value}"

    @staticmethod
    def parse_block(raw: bytes | str) -> BlockEntry | None:
        try:
            return BlockEntry.from_json(loads_strict(raw))
        except (ValueError, KeyError, TypeError):
            _log.warning("ignoring a malformed block entry in redis")
            return None


class MirrorSync:
    """Owns the mirror of one :class:`RedisStateStore` and the tasks that maintain it."""

    def __init__(
        self,
        client: Redis,
        keys: SharedKeys,
        *,
        max_staleness: float,
        resync_interval: float,
        clock: Callable[[], float],
    ) -> None:
        if max_staleness <= 0 or resync_interval <= 0:
            raise ValueError("max_staleness and resync_interval must be positive")
        if resync_interval >= max_staleness:
            # The version check is what keeps the mirror trusted between changes.
            raise ValueError("resync_interval must be shorter than max_staleness")
        self.mirror = SharedMirror(fresh_until=-math.inf)
        self.callbacks: list[Callable[[ChangeEvent], None]] = []
        self.clock = clock
        self.version = -1
        self._client = client
        self._keys = keys
        self._max_staleness = max_staleness
        self._interval = resync_interval
        self._script = load_script("shared_write")
        self._dirty = False
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    def touch(self) -> None:
        """The mirror was shown current: trust it for another ``max_staleness``."""
        self.mirror.mark_fresh_until(self.clock() + self._max_staleness)

    async def start(self) -> None:
        from bastion.errors import ServiceUnavailable

        try:
            await self._script.load(self._client)
            await self.load()
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(reason="state.unavailable") from exc
        self._tasks = [
            asyncio.create_task(self._listen_loop(), name="bastion-state-pubsub"),
            asyncio.create_task(self._resync_loop(), name="bastion-state-resync"),
        ]

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a task stuck in a client call must not hang shutdown.
            await asyncio.wait(self._tasks, timeout=2.0)
        self._tasks = []

    async def write(self, op: str, target: str, data: Mapping[str, Any], args: list[Any]) -> None:
        """Run one shared-set change in Redis, then apply it locally (read your writes)."""
        payload = dumps({"op": op, **data}).decode()
        keys = [self._keys.version, target]
        version = await self._script(
            self._client, keys, [op, self._keys.changes_channel, payload, *args]
        )
        if int(version) <= self.version:
            # Redis restarted without its data: the counter went back. Resync now.
            self._dirty = True
            self._wake.set()
        self._apply(int(version), op, data)

    async def load(self) -> None:
        """Replace the mirror with a consistent snapshot of Redis."""
        keys = self._keys
        now = self.clock()
        version_at_start = self.version
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.get(keys.version)
            since = now - REVOCATION_GRACE
            pipe.zrangebyscore(keys.revoked, f"({since!r}", "+inf", withscores=True)
            pipe.hgetall(keys.not_before)
            pipe.hgetall(keys.blocks)
            version, revoked, not_before, blocks = await pipe.execute()
        snapshot_version = int(version or 0)
        if snapshot_version < self.version and self.version != version_at_start:
            # A newer change was applied while this snapshot was in flight: keep the
            # mirror, and look again on the next round. (A lower version with no change in
            # flight means Redis lost its data — a restart without persistence — and the
            # snapshot is the truth.)
            self._dirty = True
            return
        entries = [SharedKeys.parse_block(v) for v in blocks.values()]
        active = [e for e in entries if e is not None and e.active(now)]
        self.mirror.replace(
            {m.decode(): float(s) for m, s in revoked},
            {k.decode(): float(v) for k, v in not_before.items()},
            active,
        )
        self.version = snapshot_version
        self._dirty = False
        self.touch()
        for field, raw in blocks.items():
            entry = SharedKeys.parse_block(raw)
            if entry is not None and entry.until is not None and not entry.active(now):
                # Prune a lapsed block unless it was re-blocked meanwhile, and only once it
                # lapsed PRUNE_GRACE ago by Redis' clock (ours may run ahead).
                await self._script(
                    self._client,
                    [keys.version, keys.blocks],
                    [
                        "unblock_if",
                        keys.changes_channel,
                        "",
                        field,
                        raw,
                        repr(entry.until),
                        repr(PRUNE_GRACE),
                    ],
                )

    def _apply(self, version: int, op: str, data: Mapping[str, Any]) -> None:
        if version <= self.version:
            return
        # Decode fully before touching the version: a malformed change changes nothing.
        mirror = self.mirror
        change: Callable[[], None]
        if op == "revoke_token":
            jti, expires_at = str(data["jti"]), float(data["expires_at"])
            change = lambda: mirror.revoke_token(jti, expires_at)  # noqa: E731
        elif op == "revoke_subject":
            subject, not_before = str(data["subject"]), float(data["not_before"])
            change = lambda: mirror.revoke_subject(subject, not_before)  # noqa: E731
        elif op == "block":
            entry = BlockEntry.from_json(data)
            change = lambda: mirror.block(entry)  # noqa: E731
        elif op == "unblock":
            kind_value = (str(data["kind"]), str(data["value"]))
            change = lambda: mirror.unblock(*kind_value)  # noqa: E731
        else:
            raise ValueError(f"unknown op {op!r}")
        if version != self.version + 1:
            self._dirty = True
            self._wake.set()
        self.version = version
        change()
        if not self._dirty:
            self.touch()  # in order: the mirror is Redis as of this version
        kind: ChangeKind = op  # type: ignore[assignment]
        self._emit(ChangeEvent(kind, dict(data)))

    def _emit(self, event: ChangeEvent) -> None:
        for callback in list(self.callbacks):
            try:
                callback(event)
            except Exception:
                _log.exception("state change callback failed")

    def _handle(self, channel: bytes, data: bytes) -> None:
        try:
            if channel.decode() == self._keys.events_channel:
                event = loads_strict(data)
                if isinstance(event, dict):
                    self._emit(ChangeEvent("event", event))
                return
            version_text, payload = data.decode().split(" ", 1)
            change = loads_strict(payload)
            op = change.pop("op")
            if op not in _CHANGE_OPS:
                raise ValueError(f"unknown op {op!r}")
            self._apply(int(version_text), op, change)
        except (ValueError, KeyError, TypeError, AttributeError):
            _log.warning("malformed message on the state channel; resyncing")
            self._dirty = True
            self._wake.set()

    async def _listen_loop(self) -> None:
        backoff = 0.05
        while not self._closed:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._keys.changes_channel, self._keys.events_channel)
                # Anything published before this subscription changed the version: the
                # resync loop compares and reloads.
                self._wake.set()
                while not self._closed:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._handle(message["channel"], message["data"])
                        backoff = 0.05
            except (RedisError, OSError):
                await asyncio.sleep(backoff)
                backoff = min(1.0, backoff * 2)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _resync_loop(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                version = int(await self._client.get(self._keys.version) or 0)
                if self._dirty or version != self.version:
                    await self.load()
                    self._emit(ChangeEvent("resync"))
                else:
                    self.touch()
                    self.mirror.prune(self.clock())
            except (RedisError, OSError):
                _log.debug("state resync failed; retrying")
            except Exception as exc:
                # Whatever else went wrong (an entry written by something else), the loop
                # must go on: the mirror stays untouched, so it turns stale (fail closed)
                # if this lasts, instead of being trusted without ever being checked.
                _log.warning("state resync failed (%s: %.200s); retrying", type(exc).__name__, exc)
