"""The rich terminal summary."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bastion.scanner.engine import ScanResult
from bastion.scanner.findings import Severity

__all__ = ["print_summary"]

_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def print_summary(result: ScanResult, console: Console) -> None:
    console.print(
        f"[bold]bastion scan[/bold] {result.target}  spec {result.spec}  "
        f"{len(result.operations_exercised)}/{result.operations_total} operations, "
        f"{result.requests} requests, {result.duration:.1f}s"
        + ("  [red]budget exhausted: incomplete[/red]" if result.budget_exhausted else "")
    )
    for problem in result.problems:
        console.print(f"[bold yellow]auth-setup problem[/bold yellow] {problem}")
    if result.findings:
        table = Table(show_lines=False, expand=False)
        for column in ("severity", "check", "operation", "finding", "identities"):
            table.add_column(column)
        for f in result.findings:
            table.add_row(
                f"[{_STYLE[f.severity]}]{f.severity.label}[/]",
                f.owasp if f.check != "INJ" else "injection",
                f.operation or "(API-wide)",
                f.title,
                ", ".join(f.identities),
            )
        console.print(table)
    counts = ", ".join(
        f"{sum(1 for f in result.findings if f.severity == s)} {s.label}"
        for s in reversed(Severity)
    )
    console.print(f"findings: {counts}; suppressed by rules: {len(result.suppressed)}")
    for check_id, reason in result.checks_skipped.items():
        if reason != "not selected":
            console.print(f"[yellow]check {check_id} skipped:[/yellow] {reason}")
    for note in result.notes:
        console.print(f"[dim]note: {note}[/dim]")
