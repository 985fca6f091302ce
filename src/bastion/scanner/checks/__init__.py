"""The checks, one module each, run in :data:`ORDER` after the crawl.

Each module exposes ``async def run(ctx: ScanContext) -> None`` and reports through
``ctx.report``. Injection runs before API8 so that the error pages it provokes are also
judged for verbose errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bastion.scanner.checks.api1_bola import run as api1_bola_run
from bastion.scanner.checks.api2_authentication import run as api2_authentication_run
from bastion.scanner.checks.api3_properties import run as api3_properties_run
from bastion.scanner.checks.api4_resources import run as api4_resources_run
from bastion.scanner.checks.api5_bfla import run as api5_bfla_run
from bastion.scanner.checks.api7_ssrf import run as api7_ssrf_run
from bastion.scanner.checks.api8_misconfiguration import run as api8_misconfiguration_run
from bastion.scanner.checks.api9_inventory import run as api9_inventory_run
from bastion.scanner.checks.injection import run as injection_run
from bastion.scanner.context import ScanContext

__all__ = ["ORDER", "run"]

_RUNNERS: dict[str, Callable[[ScanContext], Awaitable[None]]] = {
    "API2": api2_authentication_run,
    "API1": api1_bola_run,
    "API5": api5_bfla_run,
    "API3": api3_properties_run,
    "INJ": injection_run,
    "API7": api7_ssrf_run,
    "API8": api8_misconfiguration_run,
    "API9": api9_inventory_run,
    "API4": api4_resources_run,
}
ORDER = tuple(_RUNNERS)


async def run(check_id: str, ctx: ScanContext) -> None:
    await _RUNNERS[check_id](ctx)
