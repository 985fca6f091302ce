"""API1:2023 Broken Object Level Authorization (CWE-639), with two real users.

Objects of user A (created by A, or seen by A; an owner field such as ``customer_id``
naming a user makes the object that user's) are replayed as user B and as anonymous, even
when B's own listing showed them (that listing is reported by ``api1_lists``): reads, updates
(only on objects the scanner created) and deletes (only with ``--unsafe``, on a fresh object
made for the purpose). A replay counts when it succeeds and either returns what A sees
(response similarity) or names A as the owner (owner-field comparison). Privileged
identities are never the attacker: an admin reading everything is by design.
"""

from __future__ import annotations

from typing import Any

from bastion.scanner.context import ObjectRef, ScanContext, owner_value
from bastion.scanner.findings import Confidence, Severity
from bastion.scanner.identities import Identity
from bastion.scanner.pattern_sample import matching_string
from bastion.scanner.probe import Exchange
from bastion.scanner.sampling import schema_properties
from bastion.scanner.spec import Operation

from ._common import similarity
from .api1_lists import check_listings

SIMILAR = 0.8
_CONSTRAINED = ("enum", "const", "format")
PER_OWNER = 2


def _read_op(ctx: ScanContext, obj: ObjectRef) -> Operation | None:
    return next(
        (
            op
            for op in ctx.spec.operations
            if op.method == "GET"
            and op.path_params
            and op.path.endswith("}")
            and ctx.objects_for(op)
            and obj in ctx.objects_for(op)
        ),
        None,
    )


def _foreign(ctx: ScanContext, obj: ObjectRef, attacker: Identity) -> bool:
    """Whether ``obj`` is someone else's, so ``attacker`` reading it would be a leak.

    An object the owner created, or whose owner field names its owner, is the owner's even
    when the attacker's own listing showed it (that listing is the leak, see
    ``api1_lists``). An object without either, seen by the attacker itself, may be public
    (a product, a post): it is not replayed.
    """
    if obj.created or ctx.owner_of(obj.data) == obj.owner:
        return True
    return attacker.name not in obj.seen_by


def _targets(ctx: ScanContext, op: Operation) -> list[ObjectRef]:
    chosen: list[ObjectRef] = []
    for owner in ctx.users():
        mine = list(ctx.objects_for(op, owner=owner.name))
        mine.sort(key=lambda o: not o.created)
        chosen += mine[:PER_OWNER]
    return chosen


async def _reads(ctx: ScanContext, op: Operation) -> None:
    for obj in _targets(ctx, op):
        owner = ctx.identity(obj.owner)
        base = await ctx.try_call(op, owner, obj=obj)
        if base is None or not base.ok:
            continue
        for attacker in [*ctx.low_privilege(), ctx.anonymous]:
            if attacker.name == obj.owner or not _foreign(ctx, obj, attacker):
                continue
            ex = await ctx.try_call(op, attacker, obj=obj)
            if ex is None or not ex.ok:
                continue
            score = similarity(base, ex)
            seen_owner = owner_value(ex.json())
            owner_match = seen_owner is not None and str(seen_owner) in ctx.owner_values(owner)
            if score < SIMILAR and not owner_match:
                continue
            how = []
            if owner_match:
                how.append(f"the response names {owner.name} as the owner ({seen_owner!r})")
            if score >= SIMILAR:
                how.append(f"it matches {owner.name}'s own view ({score:.0%} similar)")
            ctx.report(
                "API1",
                "API1.bola-read",
                "Object readable by another user"
                if not attacker.anonymous
                else "Object readable without credentials",
                Severity.HIGH,
                Confidence.HIGH if owner_match or score > 0.95 else Confidence.MEDIUM,
                f"{attacker.name} read {obj.path}, an object of {owner.name}: "
                + " and ".join(how)
                + ".",
                op=op,
                identities=(owner.name, attacker.name),
                exchanges=(ex, base),
                details={"key": attacker.name, "object": obj.path, "similarity": round(score, 3)},
            )
            break


def _marked_body(op: Operation, attacker: str) -> object:
    """A valid body whose free-text fields carry ``bola-<attacker>`` (read back to confirm).

    Fields with an enum, a format or a pattern the marker does not fit keep their sample
    value: an invalid value would only be refused (or, stored, break the owner's own reads).
    """
    body = op.sample_body()
    marker = f"bola-{attacker}"
    props = schema_properties(op.body_schema)
    if isinstance(body, dict):
        for key, value in body.items():
            schema = props.get(key, {})
            if not isinstance(value, str) or any(k in schema for k in _CONSTRAINED):
                continue
            pattern = schema.get("pattern")
            if isinstance(pattern, str) and matching_string(pattern, marker) != marker:
                continue
            if not schema.get("minLength", 0) <= len(marker) <= schema.get("maxLength", 1 << 30):
                continue
            body[key] = marker
    return body


def _took_effect(body: object, before: dict[str, Any], after: Any) -> bool:
    """Every field written reads back as written, and one of them read otherwise before.

    For bodies without a free-text field to mark (only enums, formats, patterns).
    """
    if not isinstance(body, dict) or not body or not isinstance(after, dict):
        return False
    if any(after.get(k) != v for k, v in body.items()):
        return False
    return any(k in before and before[k] != v for k, v in body.items())


async def _writes(ctx: ScanContext, op: Operation) -> None:
    for owner in ctx.users():
        objs = [o for o in ctx.objects_for(op, owner=owner.name) if o.created]
        if not objs:
            continue
        obj = objs[0]
        for attacker in [*ctx.low_privilege(), ctx.anonymous]:
            if attacker.name == owner.name:
                continue
            body = _marked_body(op, attacker.name)
            reader = _read_op(ctx, obj)
            before = await ctx.try_call(reader, owner, obj=obj) if reader is not None else None
            seen = before.json() if before is not None and before.ok else None
            ex = await ctx.try_call(op, attacker, obj=obj, body=body)
            if ex is None or not ex.ok:
                continue
            evidence: list[Exchange] = [ex]
            confirmed = False
            if reader is not None:
                back = await ctx.try_call(reader, owner, obj=obj)
                if back is not None and back.ok:
                    evidence.append(back)
                    confirmed = f"bola-{attacker.name}" in back.text or (
                        isinstance(seen, dict) and _took_effect(body, seen, back.json())
                    )
            ctx.report(
                "API1",
                "API1.bola-write",
                "Object modifiable by another user",
                Severity.HIGH,
                Confidence.HIGH if confirmed else Confidence.MEDIUM,
                f"{attacker.name} changed {obj.path}, an object of {owner.name} (HTTP {ex.status})"
                + ("; reading it back as the owner shows the change." if confirmed else "."),
                op=op,
                identities=(owner.name, attacker.name),
                exchanges=evidence,
                details={"key": attacker.name, "object": obj.path},
            )
            return


async def _deletes(ctx: ScanContext, op: Operation) -> None:
    """Only with --unsafe: the owner creates a fresh object, another user deletes it."""
    params = op.path_params
    creator = next(
        (
            c
            for c in ctx.spec.operations
            if c.method == "POST" and c.path == op.path.rsplit("/{" + params[-1].name + "}", 1)[0]
        ),
        None,
    )
    users = ctx.users()
    if creator is None or len(users) < 2:
        return
    for attacker in [*ctx.low_privilege(), ctx.anonymous]:
        owner = next((u for u in users if u.name != attacker.name), None)
        if owner is None:
            continue
        made = await ctx.try_call(creator, owner)
        if made is None or not made.ok:
            return
        concrete = "/" + made.url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
        obj = ctx.add_object(
            creator.path, concrete, made.json(), owner.name, created=True, param=params[-1].name
        )
        if obj is None:
            return
        ex = await ctx.try_call(op, attacker, obj=obj)
        if ex is None or not ex.ok:
            continue
        ctx.report(
            "API1",
            "API1.bola-delete",
            "Object deletable by another user",
            Severity.CRITICAL,
            Confidence.HIGH,
            f"{attacker.name} deleted {obj.path}, created for this test by "
            f"{owner.name} (HTTP {ex.status}).",
            op=op,
            identities=(owner.name, attacker.name),
            exchanges=(ex, made),
            details={"key": attacker.name},
        )


def _protected(ctx: ScanContext, op: Operation) -> bool:
    """Declared secured, or observed so: anonymous refused where a user got through."""
    if op.secured:
        return True
    anon = ctx.baselines.get((op.label, ctx.anonymous.name))
    users = [ctx.baselines.get((op.label, u.name)) for u in ctx.users()]
    return (
        anon is not None
        and anon.status in {401, 403}
        and any(ex is not None and ex.ok for ex in users)
    )


async def run(ctx: ScanContext) -> None:
    check_listings(ctx)
    if len(ctx.users()) < 2:
        ctx.notes.append(
            "API1: fewer than two working user identities; objects are replayed as anonymous only"
        )
    for op in ctx.spec.operations:
        if not op.path_params or not _protected(ctx, op):
            continue
        if op.method == "GET":
            await _reads(ctx, op)
        elif op.method in {"PUT", "PATCH"}:
            await _writes(ctx, op)
        elif op.method == "DELETE" and ctx.options.unsafe:
            await _deletes(ctx, op)
