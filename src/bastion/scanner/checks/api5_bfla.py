"""API5:2023 Broken Function Level Authorization (CWE-285).

Admin-labelled operations (``x-bastion-roles: [admin]``, an ``admin`` tag, or an
``/admin/`` path segment) are called as every low-privilege identity; and every documented
path is tried with the methods it does not document (method swap). Writes stay within safe
mode: only on objects the scanner created, DELETE only with ``--unsafe``.
"""

from __future__ import annotations

from bastion.scanner.context import ObjectRef, ScanContext
from bastion.scanner.findings import Confidence, Severity
from bastion.scanner.probe import OutOfScope, UnsafeRequest
from bastion.scanner.spec import Operation

from ._common import random_path

SWAP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


async def _admin_ops(ctx: ScanContext, op: Operation) -> None:
    privileged = [u for u in ctx.users() if u.privileged]
    reference = next(
        (
            ctx.baselines.get((op.label, p.name))
            for p in privileged
            if ctx.baselines.get((op.label, p.name)) is not None
        ),
        None,
    )
    for who in ctx.low_privilege():
        obj: ObjectRef | None = None
        if op.path_params:
            mine = ctx.objects_for(op, owner=who.name)
            ranked = [o for o in mine if o.created] or ([] if op.is_write else mine)
            if not ranked:
                continue
            obj = ranked[0]
        ex = await ctx.try_call(op, who, obj=obj)
        if ex is None or not ex.ok:
            continue
        ctx.report(
            "API5",
            "API5.admin-function",
            "Admin operation allowed to a low-privilege user",
            Severity.HIGH,
            Confidence.HIGH if reference is not None and reference.ok else Confidence.MEDIUM,
            f"{op.label} is labelled for administrators, but {who.name} (roles: "
            f"{', '.join(who.roles) or 'none'}) got HTTP {ex.status}.",
            op=op,
            identities=(who.name,),
            exchanges=(ex,),
            details={"key": who.name},
        )


async def _method_swaps(ctx: ScanContext) -> None:
    users = ctx.low_privilege() or ctx.users()
    if not users:
        return
    who = users[0]
    try:
        unknown = await ctx.probe.send("GET", random_path(), headers=who.headers, identity=who.name)
    except (UnsafeRequest, OutOfScope):
        return
    if unknown.ok:
        ctx.notes.append("API5: the target answers 2xx on unknown paths; method swaps skipped")
        return
    for path, ops in ctx.spec.paths().items():
        documented = {op.method for op in ops}
        template = ops[0]
        obj = None
        if template.path_params:
            mine = [o for o in ctx.objects_for(template, owner=who.name) if o.created]
            obj = mine[0] if mine else None
            if obj is None:
                continue
        concrete = ctx.concrete_path(template, obj)
        body_op = next((op for op in ops if op.body_schema is not None), None)
        for method in SWAP_METHODS:
            if method in documented:
                continue
            body = (
                (body_op.sample_body() if body_op else {})
                if method in {"POST", "PUT", "PATCH"}
                else None
            )
            try:
                ex = await ctx.probe.send(
                    method,
                    concrete,
                    headers=dict(who.headers),
                    json=body,
                    identity=who.name,
                    operation=f"{method} {path}",
                    template=path,
                )
            except (UnsafeRequest, OutOfScope):
                continue
            if not ex.ok:
                continue
            admin = any(op.admin for op in ops)
            ctx.report(
                "API5",
                "API5.method-swap",
                "Undocumented method accepted",
                Severity.HIGH if admin else Severity.MEDIUM,
                Confidence.MEDIUM,
                f"{path} documents only {', '.join(sorted(documented))}, but {method} as "
                f"{who.name} got HTTP {ex.status}: a function without a documented (or "
                "enforced) authorization rule.",
                operation=f"{method} {path}",
                identities=(who.name,),
                exchanges=(ex,),
                spec_pointer=template.pointer.rsplit("/", 1)[0],
            )


async def run(ctx: ScanContext) -> None:
    for op in ctx.spec.operations:
        if op.admin:
            await _admin_ops(ctx, op)
    await _method_swaps(ctx)
