"""API8:2023 Security Misconfiguration.

Missing security headers (OWASP REST Security Cheat Sheet), CORS that reflects any origin,
accepts ``null`` or combines ``*`` with credentials, stack traces and framework internals in
error responses (provoked with malformed JSON and also collected from every earlier
exchange), TRACE enabled, plain-HTTP server URLs in the spec, and TLS below 1.2 when the
target is HTTPS.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

from bastion.scanner.context import ScanContext
from bastion.scanner.findings import Confidence, Severity
from bastion.scanner.probe import Exchange, OutOfScope, UnsafeRequest

STACK_TRACE = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+|"
    r"\bat [\w$.]+\([\w$]+\.(java|kt|scala):\d+\)|Exception in thread \"|"
    r"System\.[\w.]+Exception|\bat [\w.<>]+ in [\w/\\.]+:line \d+|"
    r"node_modules/|\bgoroutine \d+ \[|\bpanic: |Stack trace:|"
    r"(Fatal error|Warning)</b>: .* on line <b>\d+|django\.\w+\.\w+|"
    r"sqlalchemy\.exc\.|werkzeug\.exceptions"
)
EVIL_ORIGIN = "https://evil.bastion-scan.invalid"
_HEADER_OK: dict[str, Callable[[str], bool]] = {
    "x-content-type-options": lambda v: v == "nosniff",
    "cache-control": lambda v: "no-store" in v,
    "strict-transport-security": lambda v: "max-age" in v,
}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _reference(ctx: ScanContext) -> list[tuple[str, Exchange]]:
    out = []
    for (label, who), ex in ctx.baselines.items():
        if ex.ok and who != ctx.anonymous.name:
            out.append((label, ex))
    if not out:
        out = [(label, ex) for (label, _), ex in ctx.baselines.items() if ex.ok]
    return out


def _headers(ctx: ScanContext) -> None:
    reference = _reference(ctx)
    if not reference:
        return
    secured = {op.label for op in ctx.spec.operations if op.secured}
    https = ctx.probe.scheme == "https"
    rules: list[tuple[str, str, Severity, str, bool]] = [
        (
            "API8.header-nosniff",
            "X-Content-Type-Options: nosniff missing",
            Severity.LOW,
            "x-content-type-options",
            False,
        ),
        (
            "API8.header-cache-control",
            "Cache-Control: no-store missing on authenticated responses",
            Severity.LOW,
            "cache-control",
            True,
        ),
    ]
    if https:
        rules.append(
            (
                "API8.header-hsts",
                "Strict-Transport-Security missing",
                Severity.MEDIUM,
                "strict-transport-security",
                False,
            )
        )
    for rule, title, severity, header, secured_only in rules:
        missing: list[tuple[str, Exchange]] = []
        for label, ex in reference:
            if secured_only and label not in secured:
                continue
            value = (ex.header(header) or "").lower()
            if not _HEADER_OK[header](value):
                missing.append((label, ex))
        labels = sorted({label for label, _ in missing})
        if labels:
            ctx.report(
                "API8",
                rule,
                title,
                severity,
                Confidence.HIGH,
                f"{len(labels)} operation(s) answer without a proper {header} header: "
                f"{', '.join(labels[:10])}{' …' if len(labels) > 10 else ''}.",
                exchanges=(missing[0][1],),
                details={"operations": labels},
            )
    for _label, ex in reference:
        server = " ".join(filter(None, (ex.header("server"), ex.header("x-powered-by"))))
        if re.search(r"\d+\.\d+", server):
            ctx.report(
                "API8",
                "API8.version-disclosure",
                "Server software version disclosed",
                Severity.LOW,
                Confidence.HIGH,
                f"Responses name the server software and version: {server!r}.",
                exchanges=(ex,),
                cwe=200,
            )
            break


async def _cors(ctx: ScanContext) -> None:
    reference = _reference(ctx)
    if not reference:
        return
    reads = [(label, ex) for label, ex in reference if ex.method == "GET"]
    label, base = (reads or reference)[0]
    op = ctx.spec.operation(label)
    if op is None:
        return
    who = ctx.identity(base.identity) if base.identity else ctx.anonymous
    for origin in (EVIL_ORIGIN, "null"):
        ex = await ctx.try_call(
            op,
            who,
            path=urlsplit(base.url).path,
            query=dict(_query(base.url)),
            headers={"Origin": origin},
        )
        if ex is None:
            continue
        allowed = ex.header("access-control-allow-origin")
        credentials = (ex.header("access-control-allow-credentials") or "").lower() == "true"
        if allowed == origin:
            ctx.report(
                "API8",
                "API8.cors-reflected-origin" if origin != "null" else "API8.cors-null-origin",
                f"CORS allows {'any reflected' if origin != 'null' else 'the null'} origin"
                + (" with credentials" if credentials else ""),
                Severity.HIGH if credentials else Severity.MEDIUM,
                Confidence.HIGH,
                f"A request with Origin: {origin} got Access-Control-Allow-Origin: {allowed}"
                + (
                    " and Access-Control-Allow-Credentials: true, so any web page can read "
                    "authenticated responses."
                    if credentials
                    else "."
                ),
                op=op,
                identities=(who.name,),
                exchanges=(ex,),
                cwe=942,
            )
        elif allowed == "*" and credentials:
            ctx.report(
                "API8",
                "API8.cors-wildcard-credentials",
                "CORS wildcard combined with credentials",
                Severity.MEDIUM,
                Confidence.HIGH,
                "Access-Control-Allow-Origin: * is sent together with "
                "Access-Control-Allow-Credentials: true.",
                op=op,
                identities=(who.name,),
                exchanges=(ex,),
                cwe=942,
            )


def _query(url: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


async def _provoke_errors(ctx: ScanContext) -> None:
    users = ctx.low_privilege() or ctx.users()
    for op in ctx.spec.operations:
        if op.method not in {"POST", "PUT", "PATCH"} or op.body_schema is None:
            continue
        who = users[0] if users and op.secured else ctx.anonymous
        obj = None
        if op.path_params:
            mine = [o for o in ctx.objects_for(op, owner=who.name) if o.created]
            if not mine:
                continue
            obj = mine[0]
        try:
            await ctx.probe.send(
                op.method,
                ctx.concrete_path(op, obj),
                headers={**who.headers, "Content-Type": "application/json"},
                data=b'{"bastion": ',
                identity=who.name,
                operation=op.label,
                template=op.path,
            )
        except (UnsafeRequest, OutOfScope):
            continue


def _verbose_errors(ctx: ScanContext) -> None:
    reported: set[str] = set()
    for ex in list(ctx.probe.exchanges):
        where = ex.operation or urlsplit(ex.url).path
        if where in reported or where == "login" or ex.status is None:
            continue
        match = STACK_TRACE.search(ex.text[:65536])
        if match is None:
            continue
        reported.add(where)
        op = ctx.spec.operation(where)
        ctx.report(
            "API8",
            "API8.verbose-errors",
            "Stack trace or internals in an error response",
            Severity.MEDIUM,
            Confidence.HIGH,
            f"HTTP {ex.status} from {where} exposes internals ({match.group(0)[:60]!r}): "
            "file paths, code and library versions help attackers.",
            op=op,
            operation=where,
            identities=(ex.identity or "?",),
            exchanges=(ex,),
            cwe=209,
        )


async def _trace(ctx: ScanContext) -> None:
    marker = "bastion-trace-probe"
    try:
        ex = await ctx.probe.send(
            "TRACE", ctx.probe.base_path or "/", headers={"X-Bastion-Trace": marker}
        )
    except (UnsafeRequest, OutOfScope):
        return
    if ex.ok and marker in ex.text:
        ctx.report(
            "API8",
            "API8.trace-enabled",
            "HTTP TRACE enabled",
            Severity.MEDIUM,
            Confidence.HIGH,
            "TRACE echoes the request, headers included (cross-site tracing).",
            exchanges=(ex,),
            cwe=693,
        )


def _servers(ctx: ScanContext) -> None:
    for index, url in enumerate(ctx.spec.servers):
        parts = urlsplit(url)
        if parts.scheme == "http" and (parts.hostname or "") not in LOCAL_HOSTS:
            ctx.report(
                "API8",
                "API8.http-server-url",
                "Plain-HTTP server URL in the spec",
                Severity.MEDIUM,
                Confidence.HIGH,
                f"The spec lists {url} as a server: clients following it send tokens unencrypted.",
                spec_pointer=f"/servers/{index}/url",
                cwe=319,
                details={"key": url},
            )


async def _tls(ctx: ScanContext) -> None:
    if ctx.probe.scheme != "https":
        return
    parts = urlsplit(ctx.probe.target)
    host, port = parts.hostname or "", parts.port or 443
    for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            context.minimum_version = version
            context.maximum_version = version
            context.set_ciphers("ALL:@SECLEVEL=0")
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context), timeout=5
            )
        except (OSError, ssl.SSLError, ValueError, TimeoutError):
            continue
        writer.close()
        ctx.report(
            "API8",
            "API8.weak-tls",
            f"{version.name} accepted",
            Severity.MEDIUM,
            Confidence.HIGH,
            f"The target completes a {version.name} handshake; only TLS "
            "1.2 and 1.3 should be offered.",
            cwe=326,
            details={"key": version.name},
        )


async def run(ctx: ScanContext) -> None:
    _headers(ctx)
    await _cors(ctx)
    await _provoke_errors(ctx)
    _verbose_errors(ctx)
    await _trace(ctx)
    _servers(ctx)
    await _tls(ctx)
