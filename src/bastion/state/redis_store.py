"""Redis state store: N stateless gateway processes sharing one Redis.

* Counters run in Lua scripts (EVALSHA, reloaded on NOSCRIPT): all rate-limit checks of a
  request in **one** script, all-or-nothing. By default the scripts read the clock with
  ``redis.call('TIME')`` (``time_source="server"``) so every gateway uses one clock and
  skewed gateway clocks cannot over-admit; ``time_source="client"`` uses the ``now`` the
  caller passes (deterministic tests). Login backoff always uses the caller's ``now``.
* Redis Cluster: keys used together in one script must share a slot, so all rate-limit
  keys carry one hash tag ``{<prefix>:rl}`` — exact and atomic across checks, at the price of
  placing every counter on one shard (shard by running one prefix per API if needed). The
  shared sets use ``{<prefix>:shared}``; concurrency and login keys are single-key.
* Shared sets (revocations, blocks) are written with a version bump and a PUBLISH in one
  script; every process mirrors them (see :mod:`bastion.state.redis_sync`).
* Any Redis failure raises ``ServiceUnavailable(reason="state.unavailable")``: fail closed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Literal

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bastion.errors import ServiceUnavailable
from bastion.jsonutil import dumps
from bastion.ratelimit.backoff import BackoffPolicy, LoginState, login_state
from bastion.ratelimit.checks import CheckOutcome, LimitCheck, LimitResult, bounded_key
from bastion.state.base import BlockEntry, BlockKind, ChangeEvent
from bastion.state.mirror import SharedMirror, normalize_block_value
from bastion.state.redis_batch import CommandBatcher, bulk
from bastion.state.redis_scripts import load_script
from bastion.state.redis_sync import PRUNE_GRACE, MirrorSync, SharedKeys

__all__ = ["RedisStateStore"]

_log = logging.getLogger(__name__)
_ALG = {"gcra": "g", "sliding_window": "s"}
_US = 1_000_000
_COMMAND_CACHE = 10_000


_DOWN = (RedisError, OSError, TimeoutError)


def _down(exc: BaseException) -> ServiceUnavailable:
    _log.warning("redis state store unavailable: %s", type(exc).__name__)
    return ServiceUnavailable(reason="state.unavailable")


class RedisStateStore:
    """The shared state in Redis. ``url`` may carry credentials: it is never logged."""

    def __init__(
        self,
        url: str,
        prefix: str = "bastion",
        max_staleness: float = 5.0,
        *,
        resync_interval: float = 1.0,
        time_source: Literal["server", "client"] = "server",
        timeout: float = 1.0,
        max_connections: int = 64,
        pool_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        client: Redis | None = None,
    ) -> None:
        if not prefix or any(c in prefix for c in "{}: "):
            raise ValueError("prefix must be non-empty without '{', '}', ':' or spaces")
        if time_source not in ("server", "client"):
            raise ValueError("time_source must be 'server' or 'client'")
        self.prefix = prefix
        self.time_source = time_source
        # A blocking pool: a burst of concurrent requests waits (up to ``pool_timeout``)
        # for a connection instead of failing with "Too many connections"; each command
        # is bounded by ``timeout``.
        self._client = client or Redis.from_pool(
            BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=pool_timeout,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 1),
                decode_responses=False,
            )
        )
        self._owns_client = client is None
        self._batcher = CommandBatcher(self._client, timeout=timeout)
        #: Packed rate-limit commands by checks (LimitChecks are cached and reused).
        self._rl_commands: dict[tuple[LimitCheck, ...], tuple[bytes, bytes]] = {}
        self._rl_tag = f"{{{prefix}:rl}}"
        self._scripts = {n: load_script(n) for n in ("rate_limit", "concurrency", "login")}
        self._keys = SharedKeys(prefix)
        self._sync = MirrorSync(
            self._client,
            self._keys,
            max_staleness=max_staleness,
            resync_interval=resync_interval,
            clock=clock,
        )

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Load scripts and the mirror, start pub/sub and resync. Raises if Redis is down."""
        async with self._unavailable():
            for script in self._scripts.values():
                await script.load(self._client)
        await self._sync.start()

    async def close(self) -> None:
        await self._batcher.close()
        await self._sync.close()
        if self._owns_client:
            await self._client.aclose()

    async def healthy(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    @property
    def mirror(self) -> SharedMirror:
        return self._sync.mirror

    @property
    def client(self) -> Redis:
        """The shared redis-py client (bytes replies), for features that keep their own
        keys under ``<prefix>:`` (windows, incidents). Do not close it."""
        return self._client

    def on_change(self, callback: Callable[[ChangeEvent], None]) -> None:
        self._sync.callbacks.append(callback)

    @contextlib.asynccontextmanager
    async def _unavailable(self) -> AsyncIterator[None]:
        try:
            yield
        except _DOWN as exc:
            raise _down(exc) from exc

    def _now_arg(self, now: float) -> str:
        return "server" if self.time_source == "server" else str(round(now * _US))

    # -- rate limits ----------------------------------------------------------------

    def _rate_limit_command(self, checks: tuple[LimitCheck, ...]) -> tuple[bytes, bytes]:
        """The packed script call for ``checks``, split around the ``now`` argument: only
        ``now`` changes from one request to the next (and not at all with server time)."""
        keys = [f"{self._rl_tag}:{c.storage_key}" for c in checks]
        args: list[Any] = []
        for check in checks:
            rate = check.rate
            algorithm = _ALG.get(check.algorithm) or ("d" if rate.calendar == "day" else "m")
            args += [algorithm, rate.limit, round(rate.period * _US), rate.burst, check.cost]
        return self._scripts["rate_limit"].command(keys, args)

    async def rate_limit(self, checks: Sequence[LimitCheck], now: float) -> LimitResult:
        if not checks:
            return LimitResult(allowed=True)
        frozen = tuple(checks)
        parts = self._rl_commands.get(frozen)
        if parts is None:
            parts = self._rate_limit_command(frozen)
            if len(self._rl_commands) >= _COMMAND_CACHE:
                self._rl_commands.clear()
            self._rl_commands[frozen] = parts
        head, tail = parts
        command = head + bulk(self._now_arg(now)) + tail
        try:  # as _unavailable(), inline: this is every request's path
            reply = await self._scripts["rate_limit"].batched(self._batcher, self._client, command)
        except _DOWN as exc:
            raise _down(exc) from exc
        values = [int(v) for v in reply]
        outcomes = []
        for i, check in enumerate(checks):
            allowed, remaining, reset_us, retry_us = values[3 + 4 * i : 7 + 4 * i]
            outcomes.append(
                CheckOutcome(
                    check=check,
                    allowed=bool(allowed),
                    limit=check.rate.limit,
                    remaining=remaining,
                    reset_after=max(0, reset_us) / _US,
                    retry_after=max(0, retry_us) / _US,
                )
            )
        if values[0]:
            return LimitResult(allowed=True, checks=outcomes)
        binding = values[1] - 1
        return LimitResult(
            allowed=False,
            checks=outcomes,
            retry_after=outcomes[binding].retry_after,
            denied_by=binding,
        )

    # -- concurrency ----------------------------------------------------------------

    def _lease_key(self, key: str) -> str:
        return f"{self.prefix}:cc:{bounded_key(key)}"

    async def concurrency_acquire(
        self, key: str, limit: int, lease_id: str, now: float, ttl: float
    ) -> bool:
        args = [self._now_arg(now), limit, lease_id, round(ttl * _US)]
        async with self._unavailable():
            reply = await self._scripts["concurrency"](self._client, [self._lease_key(key)], args)
        return bool(int(reply))

    async def concurrency_release(self, key: str, lease_id: str) -> None:
        async with self._unavailable():
            await self._client.zrem(self._lease_key(key), lease_id)

    # -- login backoff ----------------------------------------------------------------

    def _login_key(self, key: str) -> str:
        return f"{self.prefix}:login:{bounded_key(key)}"

    async def login_failure(self, key: str, now: float, policy: BackoffPolicy) -> LoginState:
        args = [
            f"{now:.6f}",
            policy.reset_after,
            policy.lockout_after,
            policy.lockout_duration,
        ]
        async with self._unavailable():
            reply = await self._scripts["login"](self._client, [self._login_key(key)], args)
        return login_state(int(reply), now, now, policy)

    async def login_success(self, key: str) -> None:
        async with self._unavailable():
            await self._client.delete(self._login_key(key))

    async def login_state(self, key: str, now: float, policy: BackoffPolicy) -> LoginState:
        async with self._unavailable():
            raw = await self._client.get(self._login_key(key))
        if raw is None:
            return LoginState()
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            failures, last = text.split(" ", 1)
            return login_state(int(failures), float(last), now, policy)
        except ValueError:
            # Unreadable state must not read as "no failures": fail closed.
            raise ServiceUnavailable(reason="state.corrupt") from None

    # -- shared sets ------------------------------------------------------------------

    async def revoke_token(self, jti: str, expires_at: float) -> None:
        if not jti:
            raise ValueError("revoke_token needs a non-empty jti")
        data = {"jti": jti, "expires_at": float(expires_at)}
        args = [jti, repr(float(expires_at)), repr(PRUNE_GRACE)]
        async with self._unavailable():
            await self._sync.write("revoke_token", self._keys.revoked, data, args)

    async def revoke_subject(self, subject: str, not_before: float) -> None:
        if not subject:
            raise ValueError("revoke_subject needs a non-empty subject")
        data = {"subject": subject, "not_before": float(not_before)}
        async with self._unavailable():
            await self._sync.write(
                "revoke_subject", self._keys.not_before, data, [subject, repr(float(not_before))]
            )

    async def block(self, kind: BlockKind, value: str, until: float | None, reason: str) -> None:
        entry = BlockEntry(
            kind=kind,
            value=normalize_block_value(kind, value),
            until=None if until is None else float(until),
            reason=reason,
            created_at=self._sync.clock(),
        )
        payload = entry.to_json()
        field = SharedKeys.block_field(entry.kind, entry.value)
        async with self._unavailable():
            await self._sync.write("block", self._keys.blocks, payload, [field, dumps(payload)])

    async def unblock(self, kind: BlockKind, value: str) -> None:
        normalized = normalize_block_value(kind, value)
        data = {"kind": kind, "value": normalized}
        field = SharedKeys.block_field(kind, normalized)
        async with self._unavailable():
            await self._sync.write("unblock", self._keys.blocks, data, [field])

    async def list_blocks(self) -> list[BlockEntry]:
        async with self._unavailable():
            raw = await self._client.hgetall(self._keys.blocks)
        now = self._sync.clock()
        entries = [SharedKeys.parse_block(v) for v in raw.values()]
        return [e for e in entries if e is not None and e.active(now)]

    async def publish_event(self, event: Mapping[str, Any]) -> None:
        async with self._unavailable():
            await self._client.publish(self._keys.events_channel, dumps(dict(event)))
