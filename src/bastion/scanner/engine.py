"""Runs a scan: load, log in, crawl, check, judge; returns a :class:`ScanResult`.

A scan that exercised zero operations raises :class:`ScanError` (it proves nothing); an
identity that mostly gets 401 is reported as an auth-setup problem rather than silently
weakening the two-user checks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bastion.scanner import checks as check_modules
from bastion.scanner.callback import CallbackListener
from bastion.scanner.context import ScanContext, ScanOptions
from bastion.scanner.crawl import crawl
from bastion.scanner.findings import Finding
from bastion.scanner.identities import Identity, login_all
from bastion.scanner.probe import BudgetExhausted, Probe
from bastion.scanner.redact import Redactor
from bastion.scanner.rules import Rule, apply_rules
from bastion.scanner.spec import ApiSpec

__all__ = ["ScanError", "ScanResult", "run_scan"]

Progress = Callable[[str, int, int], None]


class ScanError(Exception):
    """The scan could not produce a meaningful result (nothing exercised, target down)."""


@dataclass
class IdentityReport:
    name: str
    roles: tuple[str, ...]
    authenticated: bool
    status_counts: dict[str, int]
    problem: str | None


@dataclass
class ScanResult:
    target: str
    spec: str
    started_at: datetime
    finished_at: datetime
    duration: float
    findings: list[Finding]
    suppressed: list[Finding]
    identities: list[IdentityReport]
    problems: list[str]
    operations_total: int
    operations_exercised: list[str]
    requests: int
    budget: float
    budget_exhausted: bool
    unsafe: bool
    checks_run: list[str]
    checks_skipped: dict[str, str]
    refused_unsafe: int
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.budget_exhausted and not self.checks_skipped


def _identity_reports(ctx: ScanContext) -> tuple[list[IdentityReport], list[str]]:
    reports, problems = [], []
    secured = {op.label for op in ctx.spec.operations if op.secured}
    for ident in ctx.identities:
        counts: dict[str, int] = {}
        for ex in ctx.probe.exchanges:
            if ex.identity == ident.name and ex.status is not None:
                counts[str(ex.status)] = counts.get(str(ex.status), 0) + 1
        problem = ident.problem
        if not ident.anonymous and problem is None:
            on_secured = [
                ex
                for (label, who), ex in ctx.baselines.items()
                if who == ident.name and label in secured and ex.status is not None
            ]
            unauthorized = sum(1 for ex in on_secured if ex.status == 401)
            if on_secured and unauthorized * 2 > len(on_secured):
                problem = (
                    f"got HTTP 401 on {unauthorized} of {len(on_secured)} secured "
                    "operations: its credentials are not accepted (auth-setup problem)"
                )
        if problem:
            problems.append(f"identity {ident.name}: {problem}")
        reports.append(
            IdentityReport(ident.name, ident.roles, bool(ident.headers), counts, problem)
        )
    return reports, problems


@dataclass
class _Ticker:
    """Feeds the progress bar: the phase, and a request count every 10 requests."""

    callback: Progress | None
    steps: int
    step: int = 0
    label: str = "starting"
    requests: int = 0

    def _emit(self) -> None:
        if self.callback is not None:
            self.callback(f"{self.label} · {self.requests} requests", self.step, self.steps)

    def phase(self, step: int, label: str) -> None:
        self.step, self.label = step, label
        self._emit()

    def request(self, _: object) -> None:
        self.requests += 1
        if self.requests % 10 == 0:
            self._emit()


def with_server_path(target: str, spec: ApiSpec) -> str:
    """The target URL, plus the path of the spec's first server when the target has none."""
    parts = urlsplit(target)
    if parts.path.strip("/") or not spec.servers:
        return target
    server_path = urlsplit(spec.servers[0]).path.rstrip("/")
    if not server_path or "{" in server_path:
        return target
    return target.rstrip("/") + server_path


async def run_scan(
    spec: ApiSpec,
    target: str,
    identities: list[Identity],
    options: ScanOptions | None = None,
    rules: list[Rule] | None = None,
    progress: Progress | None = None,
) -> ScanResult:
    options = options or ScanOptions()
    started, t0 = datetime.now(UTC), time.monotonic()
    redactor = Redactor()
    if options.insecure:
        redactor.curl_flags = ["-k"]
    elif options.ca_file:
        redactor.curl_flags = ["--cacert", options.ca_file]
    selected = [c for c in check_modules.ORDER if c in options.checks]
    skipped: dict[str, str] = {}
    budget_exhausted = False
    steps = 2 + len(selected)

    ticker = _Ticker(progress, steps)
    tick = ticker.phase

    async with Probe(
        with_server_path(target, spec),
        rate=options.rate,
        budget=options.budget,
        unsafe=options.unsafe,
        timeout=options.timeout,
        concurrency=options.concurrency,
        ca_file=options.ca_file,
        insecure=options.insecure,
    ) as probe:
        probe.on_exchange = ticker.request
        ctx = ScanContext(spec, probe, identities, options, redactor)
        listener = CallbackListener(options.callback_host) if "API7" in selected else None
        if listener is not None:
            await listener.start()
            ctx.callback_url = listener.base_url
            ctx.listener = listener
        try:
            tick(0, "logging in")
            await login_all(probe, identities, redactor)
            tick(1, "crawling")
            try:
                await crawl(ctx)
            except BudgetExhausted:
                budget_exhausted = True
            if not any(ex.status is not None for ex in probe.exchanges):
                selected = []  # nothing answered: the checks would only repeat the failure
            for index, check_id in enumerate(selected, start=2):
                if budget_exhausted:
                    skipped[check_id] = "time budget exhausted"
                    continue
                tick(index, f"check {check_id}")
                try:
                    await check_modules.run(check_id, ctx)
                except BudgetExhausted:
                    budget_exhausted = True
                    skipped[check_id] = "time budget exhausted (partial)"
                except Exception as exc:  # one broken check must not lose the others' results
                    skipped[check_id] = f"internal error: {type(exc).__name__}: {exc}"[:300]
            tick(steps, "done")
        finally:
            if listener is not None:
                await listener.stop()
    labels = {op.label for op in spec.operations}
    exercised = sorted(
        {ex.operation for ex in probe.exchanges if ex.operation in labels and ex.status is not None}
    )
    if not exercised:
        errors = {ex.error for ex in probe.exchanges if ex.error}
        why = f" (network errors: {', '.join(sorted(errors))})" if errors else ""
        raise ScanError(
            f"the scan exercised zero operations of {len(labels)}{why}: "
            "is the target URL right and reachable?"
        )
    identity_reports, problems = _identity_reports(ctx)
    kept, suppressed = apply_rules(ctx.findings, rules or [])
    kept.sort(key=lambda f: (-f.severity, f.check, f.operation or ""))
    for check_id in options.checks:
        if check_id not in selected:
            skipped.setdefault(check_id, "not selected")
    return ScanResult(
        target=target,
        spec=spec.source,
        started_at=started,
        finished_at=datetime.now(UTC),
        duration=time.monotonic() - t0,
        findings=kept,
        suppressed=suppressed,
        identities=identity_reports,
        problems=problems,
        operations_total=len(labels),
        operations_exercised=exercised,
        requests=len(probe.exchanges),
        budget=options.budget,
        budget_exhausted=budget_exhausted,
        unsafe=options.unsafe,
        checks_run=selected,
        checks_skipped=skipped,
        refused_unsafe=len(probe.refused),
        notes=ctx.notes,
    )


def run_scan_sync(*args: Any, **kwargs: Any) -> ScanResult:
    return asyncio.run(run_scan(*args, **kwargs))
