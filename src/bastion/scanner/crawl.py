"""The baseline crawl: every operation once per identity, with real objects.

Order matters: creations first (each user creates one object per collection, which the
scanner then owns and may write to), then listings (objects each user can see), then every
other operation with the caller's own objects, then a few schemathesis-generated cases per
operation. DELETE is left to the checks, and only with ``--unsafe``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bastion.scanner.context import ObjectRef, ScanContext, collection_of
from bastion.scanner.identities import Identity
from bastion.scanner.probe import Exchange
from bastion.scanner.spec import Operation, generate_cases

__all__ = ["crawl", "list_items"]


def list_items(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("items", "data", "results", "records", "content", "value"):
            if isinstance(data.get(key), list):
                return list(data[key])
    return []


def _is_login(ctx: ScanContext, op: Operation) -> bool:
    paths = {i.login.path for i in ctx.identities if i.login is not None}
    return op.path in paths or any(w in op.path.lower() for w in ("/login", "/token", "/signin"))


async def _record(ctx: ScanContext, op: Operation, who: Identity, ex: Exchange | None) -> None:
    if ex is None:
        return
    ctx.baselines.setdefault((op.label, who.name), ex)
    if not ex.ok or who.anonymous:
        return
    concrete = ex.url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
    concrete = "/" + concrete
    if op.method == "POST" and not _is_login(ctx, op):
        ctx.add_object(op.path, concrete, ex.json(), who.name, created=True)
    if op.method == "GET":
        if not op.path_params:
            for item in list_items(ex.json()):
                ctx.add_object(op.path, concrete, item, who.name, created=False)
        elif op.path.endswith("}"):
            name = op.path_params[-1].name
            parent = concrete.rsplit("/", 1)[0]
            ctx.add_object(
                collection_of(op.path, name), parent, ex.json(), who.name, created=False, param=name
            )


async def _call_as(ctx: ScanContext, op: Operation, who: Identity) -> None:
    obj: ObjectRef | None = None
    if op.path_params:
        mine = ctx.objects_for(op, owner=who.name)
        created = [o for o in mine if o.created]
        ranked = created or mine
        obj = ranked[0] if ranked else None
        if op.is_write and (obj is None or not obj.created) and not ctx.options.unsafe:
            return
        if obj is None and who.anonymous:
            anyone = ctx.objects_for(op)
            obj = anyone[0] if anyone else None
    await _record(ctx, op, who, await ctx.try_call(op, who, obj=obj))


async def crawl(ctx: ScanContext) -> None:
    users = ctx.users()
    everyone = [*users, ctx.anonymous]
    ops = [op for op in ctx.spec.operations if op.method != "DELETE"]
    creations = [
        op for op in ops if op.method == "POST" and not op.path_params and not _is_login(ctx, op)
    ]
    listings = [op for op in ops if op.method == "GET" and not op.path_params]
    for op in creations:
        await asyncio.gather(*(_call_as(ctx, op, who) for who in everyone))
    for op in listings:
        await asyncio.gather(*(_call_as(ctx, op, who) for who in everyone))
    rest = [op for op in ops if op not in creations and op not in listings]
    reads = [op for op in rest if not op.is_write]
    writes = [op for op in rest if op.is_write]
    await asyncio.gather(*(_call_as(ctx, op, who) for op in reads for who in everyone))
    for op in writes:
        await asyncio.gather(*(_call_as(ctx, op, who) for who in everyone))
    await _fuzz(ctx, users[0] if users else ctx.anonymous)


async def _fuzz(ctx: ScanContext, who: Identity) -> None:
    """A few schemathesis-generated positive cases per operation, sent as one user."""
    jobs = []
    for op in ctx.spec.operations:
        if op.method == "DELETE":
            continue
        for case in generate_cases(op, ctx.options.examples):
            path: str | None
            if op.path_params and op.is_write:
                mine = [o for o in ctx.objects_for(op, owner=who.name) if o.created]
                if not mine:
                    continue
                path = ctx.concrete_path(op, mine[0])
            else:
                path = ctx.concrete_path(op, values=case["path"]) if op.path_params else None
            body = case["body"] if op.method in {"POST", "PUT", "PATCH"} else None
            jobs.append(
                ctx.try_call(
                    op,
                    who,
                    path=path,
                    query=case["query"] or None,
                    body=body,
                    headers=case["headers"],
                )
            )
    await asyncio.gather(*jobs)
