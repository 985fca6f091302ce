"""API7:2023 Server Side Request Forgery (CWE-918).

URL-like parameters (by name or ``format: uri``) are pointed at the scanner's own callback
listener, each with a unique token; a hit proves the server fetched an attacker-chosen URL,
here a loopback one. Judged out of band, so there are no false positives from reflection.
"""

from __future__ import annotations

import re

from bastion.scanner.context import ScanContext
from bastion.scanner.findings import Confidence, Severity
from bastion.scanner.probe import Exchange
from bastion.scanner.sampling import schema_properties
from bastion.scanner.spec import Operation

URL_NAME = re.compile(
    r"(^|[_-])(url|uri|link|href|src|callback|webhook|redirect|endpoint|feed|image|avatar)s?($|[_-])",
    re.IGNORECASE,
)
WAIT_SECONDS = 2.0


def _url_like(name: str, schema: dict[str, object]) -> bool:
    return bool(URL_NAME.search(name)) or str(schema.get("format", "")) in {"uri", "url"}


async def run(ctx: ScanContext) -> None:
    listener = ctx.listener
    users = ctx.low_privilege() or ctx.users()
    if listener is None:
        return
    sent: dict[str, tuple[Operation, str, Exchange]] = {}
    for op in ctx.spec.operations:
        if op.method == "DELETE":
            continue
        who = users[0] if users and op.secured else ctx.anonymous
        obj = None
        if op.path_params:
            mine = [o for o in ctx.objects_for(op, owner=who.name) if o.created or not op.is_write]
            obj = mine[0] if mine else None
        for param in op.params:
            if param.location == "query" and _url_like(param.name, param.schema):
                token, url = listener.new_url()
                ex = await ctx.try_call(
                    op, who, obj=obj, query={**ctx.default_query(op), param.name: url}
                )
                if ex is not None:
                    sent[token] = (op, param.name, ex)
        body = op.sample_body()
        if isinstance(body, dict):
            for name, schema in schema_properties(op.body_schema).items():
                if _url_like(name, schema) and not schema.get("readOnly"):
                    token, url = listener.new_url()
                    ex = await ctx.try_call(op, who, obj=obj, body={**body, name: url})
                    if ex is not None:
                        sent[token] = (op, name, ex)
    if not sent:
        return
    hit = await listener.wait(set(sent), WAIT_SECONDS)
    for token in sorted(hit):
        op, name, ex = sent[token]
        ctx.report(
            "API7",
            "API7.ssrf",
            "Server fetches attacker-supplied URLs",
            Severity.HIGH,
            Confidence.HIGH,
            f"{op.label} fetched the scanner's callback URL given in '{name}' "
            f"({'; '.join(listener.hits[token][:3])}): the server can be made to reach "
            "internal addresses.",
            op=op,
            identities=(ex.identity or "?",),
            exchanges=(ex,),
            details={"key": name},
        )
