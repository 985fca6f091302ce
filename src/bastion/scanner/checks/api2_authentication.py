"""API2:2023 Broken Authentication (CWE-287).

On operations the spec declares secured: a request without credentials, a malformed token,
``alg: none``, a stripped signature, an expired token, and the token moved to the query
string. A variant counts when it succeeds where the anonymous request failed and returns what
the real token returns. HS256 tokens are also attacked offline with a shipped wordlist; a
cracked key is critical (anyone can mint any token) and lets the scanner mint the expired one.
"""

from __future__ import annotations

from bastion.scanner import jwt_forge
from bastion.scanner.context import ScanContext
from bastion.scanner.findings import Confidence, Severity
from bastion.scanner.identities import Identity
from bastion.scanner.probe import Exchange
from bastion.scanner.spec import Operation

from ._common import similarity

MAX_TARGETS = 3


def _mask(secret: bytes) -> str:
    text = secret.decode("utf-8", "replace")
    return text[:2] + "*" * max(1, len(text) - 2)


async def _missing_auth(ctx: ScanContext) -> None:
    for op in ctx.spec.operations:
        if not op.secured:
            continue
        anon = ctx.baselines.get((op.label, ctx.anonymous.name))
        if anon is None or not anon.ok:
            continue
        ctx.report(
            "API2",
            "API2.no-authentication",
            "Secured operation answers without credentials",
            Severity.HIGH,
            Confidence.HIGH,
            f"The spec requires authentication for {op.label}, but a request without any "
            f"credentials got HTTP {anon.status}.",
            op=op,
            identities=(ctx.anonymous.name,),
            exchanges=(anon,),
        )


def _token_holder(ctx: ScanContext) -> Identity | None:
    for who in [*ctx.low_privilege(), *ctx.users()]:
        if who.token and jwt_forge.decode(who.token) is not None and who.login is not None:
            return who
    for who in ctx.users():
        if who.token and jwt_forge.decode(who.token) is not None:
            return who
    return None


def _targets(ctx: ScanContext, who: Identity) -> list[tuple[Operation, Exchange]]:
    out = []
    for op in ctx.spec.operations:
        if op.method != "GET" or not op.secured:
            continue
        mine = ctx.baselines.get((op.label, who.name))
        anon = ctx.baselines.get((op.label, ctx.anonymous.name))
        if mine is not None and mine.ok and anon is not None and anon.status in {401, 403}:
            out.append((op, mine))
    out.sort(key=lambda pair: len(pair[0].path_params))
    return out[:MAX_TARGETS]


def _auth_header(who: Identity) -> tuple[str, str]:
    if who.login is not None:
        return who.login.apply.header, who.login.apply.format
    return "Authorization", "Bearer {token}"


async def _try_variants(ctx: ScanContext, who: Identity, token: str) -> None:
    header, fmt = _auth_header(who)
    variants: list[tuple[str, str, str, Severity, str | None]] = [
        (
            "API2.malformed-token",
            "Malformed token accepted",
            "bastion.not-a.token",
            Severity.HIGH,
            None,
        ),
        (
            "API2.alg-none",
            "Token with alg:none accepted",
            jwt_forge.forge_none(token),
            Severity.CRITICAL,
            None,
        ),
        (
            "API2.stripped-signature",
            "Token without signature accepted",
            jwt_forge.strip_signature(token),
            Severity.CRITICAL,
            None,
        ),
    ]
    expired = who.expired_token
    if expired is None and ctx.cracked_secret is not None:
        expired = jwt_forge.expired_copy(ctx.cracked_secret, token)
    if expired is not None:
        ctx.redactor.add_secret(expired, f"BASTION_{who.name}_EXPIRED")
        variants.append(
            ("API2.expired-token", "Expired token accepted", expired, Severity.HIGH, None)
        )
    for _, _, value, _, _ in variants:
        if value != expired:
            ctx.redactor.allow(value)
    for op, base in _targets(ctx, who):
        for rule, title, value, severity, _ in variants:
            headers = {k: v for k, v in who.headers.items() if k.lower() != header.lower()}
            headers[header] = fmt.format(token=value)
            ex = await ctx.try_call(op, None, headers=headers)
            if ex is not None and ex.ok and similarity(base, ex) >= 0.7:
                ctx.report(
                    "API2",
                    rule,
                    title,
                    severity,
                    Confidence.HIGH,
                    f"{op.label} accepted a forged or invalid token derived from "
                    f"{who.name}'s token and answered HTTP {ex.status}, as for the real one.",
                    op=op,
                    identities=(who.name,),
                    exchanges=(ex,),
                )
        headers = {k: v for k, v in who.headers.items() if k.lower() != header.lower()}
        query = {**ctx.default_query(op), "access_token": token}
        ex = await ctx.try_call(op, None, headers=headers, query=query)
        if ex is not None and ex.ok and similarity(base, ex) >= 0.7:
            ctx.report(
                "API2",
                "API2.token-in-query",
                "Token accepted from the query string",
                Severity.MEDIUM,
                Confidence.HIGH,
                f"{op.label} accepted {who.name}'s token as ?access_token=; query strings "
                "end up in logs, browser history and Referer headers (RFC 6750 §5.3).",
                op=op,
                identities=(who.name,),
                exchanges=(ex,),
                cwe=598,
            )


async def run(ctx: ScanContext) -> None:
    await _missing_auth(ctx)
    who = _token_holder(ctx)
    if who is None or who.token is None:
        ctx.notes.append("API2: no identity holds a JWT; token forgery checks skipped")
        return
    token = who.token
    secret = jwt_forge.crack_hs256(token, jwt_forge.wordlist())
    if secret is not None:
        ctx.cracked_secret = secret
        login = next(
            (e for e in ctx.probe.exchanges if e.operation == "login" and e.identity == who.name),
            None,
        )
        ctx.report(
            "API2",
            "API2.weak-jwt-secret",
            "JWT signed with a guessable HMAC secret",
            Severity.CRITICAL,
            Confidence.HIGH,
            f"{who.name}'s HS256 token verifies with the secret {_mask(secret)!r} from the "
            "scanner's wordlist of weak secrets: anyone can mint tokens for any user and role.",
            identities=(who.name,),
            exchanges=(login,) if login else (),
            cwe=1391,
            operation=None,
            details={"key": "weak-secret"},
        )
    await _try_variants(ctx, who, token)
