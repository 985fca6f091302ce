"""API1:2023 at list level (CWE-639): a listing that shows a user other users' objects.

A collection listing (``GET /orders``) answered to a low-privilege user is read item by
item: an item whose owner field (``owner``, ``user_id``, ``customer_id``, …) holds a value
that is not the caller's, but another known user's, is an object the caller should not
see. One finding per listing and caller, with the listing as evidence and the foreign
objects named in the details. Privileged identities are not judged (an admin listing
everything is by design); a caller whose own owner values are unknown (no ``owner_values``
in the identities file and no object created during the crawl) is not judged either.
"""

from __future__ import annotations

from typing import Any

from bastion.scanner.context import ScanContext, object_id, owner_value
from bastion.scanner.crawl import list_items
from bastion.scanner.findings import Confidence, Severity
from bastion.scanner.identities import Identity
from bastion.scanner.spec import Operation

__all__ = ["check_listings"]

_SHOWN = 10


def _foreign_items(ctx: ScanContext, who: Identity, items: list[Any]) -> list[tuple[Any, str, str]]:
    """(object id, owner name, owner value) of each item owned by another known user."""
    mine = ctx.owner_values(who)
    if not mine:
        return []
    out = []
    for item in items:
        value = owner_value(item)
        if value is None or str(value) in mine:
            continue
        owner = ctx.owner_of(item)
        if owner is not None and owner != who.name:
            out.append((object_id(item), owner, str(value)))
    return out


def _listing(ctx: ScanContext, op: Operation, who: Identity) -> None:
    ex = ctx.baselines.get((op.label, who.name))
    if ex is None or not ex.ok:
        return
    foreign = _foreign_items(ctx, who, list_items(ex.json()))
    if not foreign:
        return
    owners = sorted({owner for _, owner, _ in foreign})
    shown = ", ".join(f"{oid} ({owner})" for oid, owner, _ in foreign[:_SHOWN])
    more = f" and {len(foreign) - _SHOWN} more" if len(foreign) > _SHOWN else ""
    ctx.report(
        "API1",
        "API1.bola-list",
        "Listing exposes other users' objects",
        Severity.HIGH,
        Confidence.HIGH,
        f"{op.label} answered {who.name} with {len(foreign)} object(s) whose owner field names "
        f"another user ({', '.join(owners)}): {shown}{more}. A listing must be filtered to "
        "the caller's own objects.",
        op=op,
        identities=(who.name, *owners),
        exchanges=(ex,),
        details={
            "key": who.name,
            "objects": [
                {"id": oid, "owner": owner, "owner_value": value} for oid, owner, value in foreign
            ][:50],
        },
    )


def check_listings(ctx: ScanContext) -> None:
    """Judge every collection listing the crawl received as a low-privilege user."""
    for op in ctx.spec.operations:
        if op.method != "GET" or op.path.endswith("}"):
            continue
        for who in ctx.low_privilege():
            _listing(ctx, op, who)
