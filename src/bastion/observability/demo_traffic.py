"""Background traffic for ``bastion demo``: normal users plus an object-enumeration attack,
so the dashboard shows live numbers, an alert and an automatic block within a minute.

The demo owner calls :func:`run_traffic` in its event loop with the demo's tokens and
paths; it stops when ``stop`` is set. Sleeping is injectable (tests run without waiting).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

__all__ = ["Actor", "TrafficReport", "run_traffic"]


@dataclass(frozen=True)
class Actor:
    """One client: a bearer token (or None) and the paths it requests, in turn."""

    token: str | None
    paths: Sequence[str]


@dataclass
class TrafficReport:
    statuses: dict[int, int] = field(default_factory=dict)
    attack_statuses: list[int] = field(default_factory=list)

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


async def run_traffic(
    base_url: str,
    users: Sequence[Actor],
    attacker: Actor | None,
    stop: asyncio.Event,
    *,
    interval: float = 0.2,
    attack_after: int = 25,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    max_rounds: int | None = None,
) -> TrafficReport:
    """Every ``interval`` each user requests its next path; after ``attack_after`` rounds
    the attacker also requests its next path (e.g. other customers' orders) every round."""
    report = TrafficReport()
    cycles = [itertools.cycle(user.paths) for user in users]
    probes = iter(attacker.paths) if attacker is not None else iter(())
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for round_number in itertools.count():
            if stop.is_set() or (max_rounds is not None and round_number >= max_rounds):
                break
            for user, paths in zip(users, cycles, strict=True):
                report.count(await _get(session, base_url + next(paths), user.token))
            if attacker is not None and round_number >= attack_after:
                path = next(probes, None)
                if path is not None:
                    status = await _get(session, base_url + path, attacker.token)
                    report.count(status)
                    report.attack_statuses.append(status)
            await sleep(interval)
    return report


async def _get(session: aiohttp.ClientSession, url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0
