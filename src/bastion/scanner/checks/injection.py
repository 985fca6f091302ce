"""Injection (OWASP API8:2023 / API10-adjacent; CWE-89, CWE-943, CWE-78).

Every string parameter (query, path, top-level JSON body field) gets SQL, NoSQL and OS
command payloads. Judged two ways: error or output signatures that the benign value did not
produce, and timing, where a sleep payload must delay the answer by about its length twice
while a benign request stays fast.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from bastion.scanner.context import ScanContext
from bastion.scanner.findings import Confidence, Severity
from bastion.scanner.identities import Identity
from bastion.scanner.probe import Exchange
from bastion.scanner.sampling import schema_properties, unique_tag
from bastion.scanner.spec import Operation

SIGNATURES = {
    "sql": re.compile(
        r"SQL syntax|sqlite3?[._]|OperationalError|unrecognized token|syntax error at or near|"
        r"unterminated quoted string|quoted string not properly terminated|ORA-\d{5}|SQLSTATE|"
        r"PG::\w+Error|psycopg2?\.|mysql_fetch|MySQLSyntaxErrorException|near \"[^\"]*\": syntax"
        r" error|Microsoft OLE DB|ODBC SQL Server Driver|SQLite3::",
        re.IGNORECASE,
    ),
    "nosql": re.compile(
        r"MongoServerError|MongoError|unknown (top level )?operator|BSONError|CastError|"
        r"\$where is not allowed|Mongo(DB)?\s*Exception",
        re.IGNORECASE,
    ),
    "command": re.compile(r"bastion42|uid=\d+\([\w-]+\) gid=\d+"),
}
PAYLOADS: tuple[tuple[str, str], ...] = (
    ("sql", "'"),
    ("sql", '"'),
    ("sql", "1' OR '1'='1' -- "),
    ("nosql", '{"$bastion": 1}'),
    ("nosql", '{"$gt": ""}'),
    ("command", ";echo bastion$((6*7))"),
    ("command", "|echo bastion$((6*7))"),
    ("command", "$(echo bastion$((6*7)))"),
)
TIMING: tuple[tuple[str, str], ...] = (
    ("command", ";sleep {delay}"),
    ("sql", "'||pg_sleep({delay})||'"),
    ("sql", "' AND SLEEP({delay})-- -"),
)
META = {
    "sql": ("INJ.sql", "SQL injection", 89),
    "nosql": ("INJ.nosql", "NoSQL injection", 943),
    "command": ("INJ.command", "OS command injection", 78),
}


def _targets(op: Operation) -> list[tuple[str, str]]:
    out = []
    for param in op.params:
        kind = param.schema.get("type", "string")
        if (
            param.location in {"query", "path"}
            and kind == "string"
            and not param.schema.get("enum")
        ):
            out.append((param.location, param.name))
    for name, schema in schema_properties(op.body_schema).items():
        if (
            schema.get("type", "string") == "string"
            and not schema.get("readOnly")
            and not schema.get("enum")
            and not schema.get("format")
        ):
            out.append(("body", name))
    return out


class _Target:
    def __init__(
        self, ctx: ScanContext, op: Operation, who: Identity, obj: Any, location: str, name: str
    ) -> None:
        self.ctx, self.op, self.who, self.obj = ctx, op, who, obj
        self.location, self.name = location, name

    async def send(self, value: str) -> Exchange | None:
        ctx, op = self.ctx, self.op
        if self.location == "query":
            return await ctx.try_call(
                op, self.who, obj=self.obj, query={**ctx.default_query(op), self.name: value}
            )
        if self.location == "path":
            return await ctx.try_call(
                op, self.who, path=ctx.concrete_path(op, self.obj, values={self.name: value})
            )
        # a POST creates: a fresh username/e-mail per probe, or every probe is a 409
        body = op.sample_body(unique_tag() if op.method == "POST" else "")
        body = {**body, self.name: value} if isinstance(body, dict) else {self.name: value}
        return await ctx.try_call(op, self.who, obj=self.obj, body=body)

    def report(
        self,
        kind: str,
        payload: str,
        ex: Exchange,
        how: str,
        confidence: Confidence,
        extra: tuple[Exchange, ...] = (),
    ) -> None:
        rule, title, cwe = META[kind]
        self.ctx.report(
            "INJ",
            rule,
            title,
            Severity.CRITICAL if kind == "command" else Severity.HIGH,
            confidence,
            f"{self.location} parameter '{self.name}' of {self.op.label}: the payload "
            f"{payload!r} {how}.",
            op=self.op,
            identities=(self.who.name,),
            exchanges=(ex, *extra),
            cwe=cwe,
            details={"key": f"{self.location}:{self.name}", "payload": payload},
        )


async def _probe_target(t: _Target, delay: float) -> None:
    benign_value = "bastion"
    baseline = await t.send(benign_value)
    if baseline is None:
        return
    found: set[str] = set()
    for kind, payload in PAYLOADS:
        if kind in found:
            continue
        ex = await t.send(payload)
        if ex is None:
            continue
        match = SIGNATURES[kind].search(ex.text[:65536])
        if match is None:
            other = next(
                (
                    k
                    for k, rx in SIGNATURES.items()
                    if k != kind
                    and k not in found
                    and rx.search(ex.text[:65536])
                    and not rx.search(baseline.text)
                ),
                None,
            )
            if other is None:
                continue
            kind, match = other, SIGNATURES[other].search(ex.text[:65536])
            assert match is not None
        if SIGNATURES[kind].search(baseline.text):
            continue
        found.add(kind)
        t.report(
            kind,
            payload,
            ex,
            f"produced {match.group(0)[:50]!r} in the response, which the benign value did not",
            Confidence.HIGH,
        )
    slowest_benign = baseline.elapsed
    for kind, template in TIMING:
        if kind in found:
            continue
        payload = template.format(delay=int(delay) if delay == int(delay) else delay)
        first = await t.send(payload)
        if first is None or first.elapsed < max(0.9 * delay, slowest_benign + 0.8 * delay):
            continue
        again = await t.send(payload)
        control = await t.send(benign_value)
        if again is None or control is None or again.elapsed < 0.9 * delay:
            continue
        if control.elapsed > slowest_benign + 0.5 * delay:
            continue
        found.add(kind)
        t.report(
            kind,
            payload,
            first,
            f"delayed the response by {first.elapsed:.1f}s and "
            f"{again.elapsed:.1f}s (benign: {control.elapsed:.2f}s)",
            Confidence.MEDIUM,
            (again, control),
        )


async def run(ctx: ScanContext) -> None:
    users = ctx.low_privilege() or ctx.users()
    jobs = []
    for op in ctx.spec.operations:
        if op.method == "DELETE":
            continue
        who = users[0] if users and op.secured else ctx.anonymous
        obj = None
        if op.path_params:
            mine = [o for o in ctx.objects_for(op, owner=who.name) if o.created or not op.is_write]
            if op.is_write and not mine:
                continue
            obj = mine[0] if mine else None
        for location, name in _targets(op):
            jobs.append(
                _probe_target(_Target(ctx, op, who, obj, location, name), ctx.options.timing_delay)
            )
    await asyncio.gather(*jobs)
