"""The checks, one module each, run in :data:`ORDER` after the crawl.

Each module exposes ``async def run(ctx: ScanContext) -> None`` and reports through
``ctx.report``. Injection runs before API8 so that the error pages it provokes are also
judged for verbose errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bastion.scanner.checks import (
    api1_bola,
    api2_authentication,
    api3_properties,
    api4_resources,
    api5_bfla,
    api7_ssrf,
    api8_misconfiguration,
    api9_inventory,
    injection,
)
from bastion.scanner.context import ScanContext

__all__ = ["ORDER", "run"]

_RUNNERS: dict[str, Callable[[ScanContext], Awaitable[None]]] = {
    "API2": api2_authentication.run,
    "API1": api1_bola.run,
    "API5": api5_bfla.run,
    "API3": api3_properties.run,
    "INJ": injection.run,
    "API7": api7_ssrf.run,
    "API8": api8_misconfiguration.run,
    "API9": api9_inventory.run,
    "API4": api4_resources.run,
}
ORDER = tuple(_RUNNERS)


async def run(check_id: str, ctx: ScanContext) -> None:
    await _RUNNERS[check_id](ctx)
