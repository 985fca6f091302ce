"""API9:2023 Improper Inventory Management (CWE-1059).

Older API versions still answering (``/v2/`` paths retried as ``/v1/``), common
undocumented paths (debug consoles, actuators, dotfiles, spec files), and spec-vs-reality
drift: documented operations that the server does not implement. "Answering" is judged
against how the target answers a random unknown path, so catch-all servers do not count.
"""

from __future__ import annotations

import re

from bastion.scanner.context import ScanContext
from bastion.scanner.findings import Confidence, Severity
from bastion.scanner.probe import Exchange, OutOfScope, UnsafeRequest

from ._common import random_path, similarity

VERSION = re.compile(r"/v(\d+)(?=/|$)")
COMMON_PATHS: tuple[tuple[str, Severity], ...] = (
    ("/.env", Severity.HIGH),
    ("/.git/config", Severity.HIGH),
    ("/debug", Severity.HIGH),
    ("/_debug", Severity.HIGH),
    ("/actuator/env", Severity.HIGH),
    ("/actuator", Severity.MEDIUM),
    ("/admin", Severity.MEDIUM),
    ("/server-status", Severity.MEDIUM),
    ("/phpinfo.php", Severity.MEDIUM),
    ("/console", Severity.MEDIUM),
    ("/metrics", Severity.LOW),
    ("/openapi.json", Severity.INFO),
    ("/openapi.yaml", Severity.INFO),
    ("/swagger.json", Severity.INFO),
    ("/v2/api-docs", Severity.INFO),
    ("/swagger-ui.html", Severity.INFO),
)


async def _get(
    ctx: ScanContext, path: str, headers: dict[str, str] | None = None, identity: str | None = None
) -> Exchange | None:
    try:
        return await ctx.probe.send("GET", path, headers=headers, identity=identity)
    except (UnsafeRequest, OutOfScope):
        return None


def _answers(ex: Exchange | None, unknown: Exchange | None) -> bool:
    if ex is None or not ex.ok:
        return False
    return unknown is None or not unknown.ok or similarity(ex, unknown) < 0.9


def _prefix(ctx: ScanContext) -> str:
    paths = [op.path for op in ctx.spec.operations]
    if not paths:
        return ""
    parts = paths[0].split("/")
    common: list[str] = []
    for index, part in enumerate(parts[:-1]):
        if "{" in part or not all(p.split("/")[index : index + 1] == [part] for p in paths):
            break
        common.append(part)
    return ctx.probe.base_path + "/".join(common)


async def _old_versions(ctx: ScanContext) -> None:
    users = ctx.low_privilege() or ctx.users()
    who = users[0] if users else ctx.anonymous
    done: set[str] = set()
    for op in ctx.spec.operations:
        match = VERSION.search(op.path)
        if op.method != "GET" or op.path_params or match is None:
            continue
        current = int(match.group(1))
        for older in range(current - 1, max(-1, current - 3), -1):
            prefix = ctx.probe.base_path + op.path[: match.start()] + f"/v{older}"
            if prefix in done:
                continue
            path = prefix + op.path[match.end() :]
            unknown = await _get(ctx, random_path(prefix), who.headers, who.name)
            ex = await _get(ctx, path, who.headers, who.name)
            if not _answers(ex, unknown):
                anon = await _get(ctx, path)
                ex = anon if _answers(anon, unknown) else None
            if ex is None:
                continue
            done.add(prefix)
            ctx.report(
                "API9",
                "API9.old-version",
                f"Older API version v{older} still reachable",
                Severity.MEDIUM,
                Confidence.HIGH,
                f"{path} answers HTTP {ex.status} although the spec documents v{current}: "
                "retired versions keep their old, unfixed behaviour.",
                operation=f"GET {path}",
                identities=(ex.identity or "anonymous",),
                exchanges=(ex,),
                details={"key": prefix},
            )


async def _common_paths(ctx: ScanContext) -> None:
    documented = {ctx.probe.base_path + op.path for op in ctx.spec.operations}
    prefixes = list(dict.fromkeys(["", ctx.probe.base_path, _prefix(ctx)]))
    for prefix in prefixes:
        unknown = await _get(ctx, random_path(prefix))
        for suffix, severity in COMMON_PATHS:
            path = f"{prefix.rstrip('/')}{suffix}"
            if path in documented:
                continue
            ex = await _get(ctx, path)
            if not _answers(ex, unknown):
                continue
            assert ex is not None
            ctx.report(
                "API9",
                "API9.undocumented-path",
                f"Undocumented endpoint {path} reachable",
                severity,
                Confidence.HIGH,
                f"GET {path} answers HTTP {ex.status} without credentials and is not in the spec.",
                operation=f"GET {path}",
                identities=("anonymous",),
                exchanges=(ex,),
                details={"key": path},
            )


async def _not_implemented(ctx: ScanContext) -> None:
    unknown = await _get(ctx, random_path(_prefix(ctx)))
    for op in ctx.spec.operations:
        seen = [
            ex
            for (label, _), ex in ctx.baselines.items()
            if label == op.label and ex.status is not None
        ]
        if not seen or any(ex.status not in {404, 405, 501} for ex in seen):
            continue
        generic = unknown is not None and all(
            ex.status in {405, 501}
            or (ex.status == unknown.status and similarity(ex, unknown) > 0.9)
            for ex in seen
        )
        if not generic:
            continue
        ctx.report(
            "API9",
            "API9.spec-drift",
            "Documented operation not implemented",
            Severity.LOW,
            Confidence.MEDIUM,
            f"{op.label} is in the spec, but every call got the server's generic "
            f"'no such route' answer (HTTP {seen[0].status}): the spec and the API have drifted.",
            op=op,
            identities=tuple(ex.identity or "?" for ex in seen[:3]),
            exchanges=seen[:1],
        )


async def run(ctx: ScanContext) -> None:
    await _old_versions(ctx)
    await _common_paths(ctx)
    await _not_implemented(ctx)
