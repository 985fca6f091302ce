"""API4:2023 Unrestricted Resource Consumption (CWE-770).

Always: declared limits (``maximum``, ``maxLength``) tested one step past by a wide margin,
and one oversized (2 MiB) body. Opt-in with ``--burst``: a burst against the login operation
(with a random, non-existent user, so no real account is locked) and against one other
operation, expecting HTTP 429 or RateLimit / X-RateLimit / Retry-After headers.
"""

from __future__ import annotations

import asyncio
import secrets

from bastion.scanner.context import ScanContext
from bastion.scanner.findings import Confidence, Severity
from bastion.scanner.identities import Identity
from bastion.scanner.probe import Exchange
from bastion.scanner.sampling import schema_properties
from bastion.scanner.spec import Operation

BIG_BODY = 2 * 1024 * 1024
LIMIT_HEADERS = (
    "ratelimit",
    "ratelimit-policy",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "retry-after",
    "x-rate-limit-limit",
)


def _who(ctx: ScanContext, op: Operation) -> Identity:
    users = ctx.low_privilege() or ctx.users()
    return users[0] if users and op.secured else ctx.anonymous


def _obj(ctx: ScanContext, op: Operation, who: Identity) -> object:
    if not op.path_params:
        return None
    mine = [o for o in ctx.objects_for(op, owner=who.name) if o.created or not op.is_write]
    return mine[0] if mine else False


async def _limits(ctx: ScanContext, op: Operation) -> None:
    who = _who(ctx, op)
    obj = _obj(ctx, op, who)
    if obj is False:
        return
    for param in op.params:
        if param.location != "query":
            continue
        schema = param.schema
        value: object = None
        if isinstance(schema.get("maximum"), int | float):
            value = int(schema["maximum"]) * 100 + 1
        elif isinstance(schema.get("maxLength"), int):
            value = "A" * min(65536, schema["maxLength"] * 10 + 1)
        if value is None:
            continue
        ex = await ctx.try_call(
            op, who, obj=obj, query={**ctx.default_query(op), param.name: value}
        )
        if ex is not None and ex.ok:
            _report_limit(ctx, op, who, ex, f"query parameter '{param.name}'", schema)
    body = op.sample_body()
    if isinstance(body, dict) and op.method in {"POST", "PUT", "PATCH"}:
        for name, schema in schema_properties(op.body_schema).items():
            if schema.get("readOnly"):
                continue
            if isinstance(schema.get("maximum"), int | float):
                value = int(schema["maximum"]) * 100 + 1
            elif isinstance(schema.get("maxLength"), int):
                value = "A" * min(65536, schema["maxLength"] * 10 + 1)
            else:
                continue
            ex = await ctx.try_call(op, who, obj=obj, body={**body, name: value})
            if ex is not None and ex.ok:
                _report_limit(ctx, op, who, ex, f"body field '{name}'", schema)


def _report_limit(
    ctx: ScanContext,
    op: Operation,
    who: Identity,
    ex: Exchange,
    what: str,
    schema: dict[str, object],
) -> None:
    limit = (
        f"maximum {schema['maximum']}"
        if "maximum" in schema
        else f"maxLength {schema.get('maxLength')}"
    )
    ctx.report(
        "API4",
        "API4.limit-not-enforced",
        "Declared size or range limit not enforced",
        Severity.MEDIUM,
        Confidence.HIGH,
        f"{op.label} accepted a {what} far beyond its declared {limit} (HTTP {ex.status}).",
        op=op,
        identities=(who.name,),
        exchanges=(ex,),
        details={"key": what},
    )


async def _big_body(ctx: ScanContext) -> None:
    for op in ctx.spec.operations:
        if op.method != "POST" or op.path_params or op.body_schema is None:
            continue
        if "login" in op.path.lower():
            continue
        body = op.sample_body()
        props = [
            k
            for k, v in schema_properties(op.body_schema).items()
            if v.get("type", "string") == "string"
            and not v.get("readOnly")
            and not v.get("enum")
            and not v.get("format")
        ]
        if not isinstance(body, dict) or not props:
            continue
        who = _who(ctx, op)
        ex = await ctx.try_call(op, who, body={**body, props[-1]: "B" * BIG_BODY})
        if ex is not None and ex.ok:
            ctx.report(
                "API4",
                "API4.no-body-limit",
                "No request body size limit",
                Severity.LOW,
                Confidence.HIGH,
                f"{op.label} accepted a 2 MiB JSON body (HTTP {ex.status}).",
                op=op,
                identities=(who.name,),
                exchanges=(ex,),
            )
        return


def _limited(exchanges: list[Exchange]) -> bool:
    return any(ex.status == 429 or any(ex.header(h) for h in LIMIT_HEADERS) for ex in exchanges)


async def _burst(ctx: ScanContext, op: Operation, who: Identity | None, body: object) -> None:
    size = ctx.options.burst_size
    results = await asyncio.gather(
        *(
            ctx.try_call(op, who, body=body) if body is not None else ctx.try_call(op, who)
            for _ in range(size)
        )
    )
    exchanges = [ex for ex in results if ex is not None and ex.status is not None]
    if not exchanges or _limited(exchanges):
        return
    login = body is not None
    ctx.report(
        "API4",
        "API4.no-rate-limit-login" if login else "API4.no-rate-limit",
        "No rate limiting on login" if login else "No rate limiting",
        Severity.MEDIUM if login else Severity.LOW,
        Confidence.HIGH,
        f"{len(exchanges)} rapid requests to {op.label} got no HTTP 429 and no "
        "RateLimit/Retry-After headers"
        + (": passwords can be guessed at full speed." if login else "."),
        op=op,
        identities=(who.name if who else "anonymous",),
        exchanges=exchanges[-1:],
        cwe=307 if login else 770,
    )


async def _bursts(ctx: ScanContext) -> None:
    login_paths = {i.login.path for i in ctx.identities if i.login is not None}
    login_op = next(
        (
            op
            for op in ctx.spec.operations
            if op.method == "POST" and (op.path in login_paths or "login" in op.path.lower())
        ),
        None,
    )
    if login_op is not None:
        body = login_op.sample_body()
        if isinstance(body, dict):
            body = {
                k: f"bastion-burst-{secrets.token_hex(4)}" if isinstance(v, str) else v
                for k, v in body.items()
            }
            await _burst(ctx, login_op, None, body)
    users = ctx.users()
    other = next(
        (
            op
            for op in ctx.spec.operations
            if op.method == "GET"
            and not op.path_params
            and users
            and ctx.baselines.get((op.label, users[0].name)) is not None
            and ctx.baselines[(op.label, users[0].name)].ok
        ),
        None,
    )
    if other is not None:
        await _burst(ctx, other, users[0], None)


async def run(ctx: ScanContext) -> None:
    for op in ctx.spec.operations:
        if op.method != "DELETE":
            await _limits(ctx, op)
    await _big_body(ctx)
    if ctx.options.burst:
        await _bursts(ctx)
    else:
        ctx.notes.append("API4: rate-limit bursts are opt-in (--burst); not run")
