"""``bastion scan``: audit an API for the OWASP API Security Top 10 (2023).

Exit codes: 0 no finding at or above ``--fail-on``; 1 findings at or above it; 2 bad
usage or configuration (spec, identities, rules); 3 the scan itself failed (zero operations
exercised, target unreachable).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bastion.errors import ConfigError
from bastion.scanner.context import ScanOptions
from bastion.scanner.engine import ScanError, ScanResult, run_scan
from bastion.scanner.findings import CHECKS, Severity
from bastion.scanner.identities import ANONYMOUS, Identity, load_identities_file
from bastion.scanner.reports import print_summary, render_html, render_junit, to_json, to_sarif
from bastion.scanner.rules import load_rules
from bastion.scanner.spec import ApiSpec, load_spec

__all__ = ["EXIT_CONFIG", "EXIT_FINDINGS", "EXIT_OK", "EXIT_SCAN_ERROR", "scan"]

EXIT_OK, EXIT_FINDINGS, EXIT_CONFIG, EXIT_SCAN_ERROR = 0, 1, 2, 3
_SEVERITIES = ["critical", "high", "medium", "low", "info", "none"]


def _write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")


def _write_reports(
    result: ScanResult,
    spec: ApiSpec,
    json_path: Path | None,
    sarif_path: Path | None,
    junit_path: Path | None,
    html_path: Path | None,
) -> None:
    if json_path:
        _write(json_path, orjson.dumps(to_json(result), option=orjson.OPT_INDENT_2))
    if sarif_path:
        _write(sarif_path, orjson.dumps(to_sarif(result, spec), option=orjson.OPT_INDENT_2))
    if junit_path:
        _write(junit_path, render_junit(result))
    if html_path:
        _write(html_path, render_html(result))


@click.command("scan")
@click.option(
    "--spec",
    "spec_path",
    required=True,
    metavar="FILE|URL",
    help="OpenAPI 3.x document (YAML or JSON), a file or an http(s) URL.",
)
@click.option("--target", required=True, help="Base URL of the API; only its host is in scope.")
@click.option(
    "--identities",
    "identities_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Identities file (users, roles, login flows). Without it: anonymous only.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON report (versioned schema) here.",
)
@click.option(
    "--sarif",
    "sarif_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a SARIF 2.1.0 report here.",
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a JUnit XML report here.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a single-file HTML report here.",
)
@click.option(
    "--fail-on",
    type=click.Choice(_SEVERITIES),
    default="high",
    show_default=True,
    help="Exit 1 when a finding has at least this severity ('none' never fails).",
)
@click.option(
    "--budget",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Time budget in seconds; past it no new request is sent.",
)
@click.option(
    "--unsafe", is_flag=True, help="Allow DELETE and writes to objects the scanner did not create."
)
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rules file: ignore or downgrade checks per operation, with a reason.",
)
@click.option("--burst", is_flag=True, help="Run the API4 rate-limit bursts (opt-in).")
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=50.0,
    show_default=True,
    help="Client-side rate limit, requests per second.",
)
@click.option(
    "--checks",
    "checks_csv",
    default=",".join(CHECKS),
    show_default=True,
    help="Comma-separated checks to run.",
)
@click.option(
    "--callback-host",
    default="127.0.0.1",
    show_default=True,
    help="Address for the SSRF callback listener; must be reachable by the target.",
)
@click.option(
    "--examples",
    type=click.IntRange(0, 50),
    default=2,
    show_default=True,
    help="Schemathesis-generated cases per operation, on top of the crawl.",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, exists=True),
    help="CA bundle to verify an https target (e.g. a private CA).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Do not verify the target's TLS certificate (test environments only).",
)
@click.option("--quiet", is_flag=True, help="No progress bar and no terminal summary.")
def scan(
    spec_path: str,
    target: str,
    identities_path: Path | None,
    json_path: Path | None,
    sarif_path: Path | None,
    junit_path: Path | None,
    html_path: Path | None,
    fail_on: str,
    budget: float,
    unsafe: bool,
    rules_path: Path | None,
    burst: bool,
    rate: float,
    checks_csv: str,
    callback_host: str,
    examples: int,
    ca_file: str | None,
    insecure: bool,
    quiet: bool,
) -> None:
    """Audit an API for the OWASP API Security Top 10 (2023)."""
    err = Console(stderr=True)
    checks = tuple(c.strip().upper() for c in checks_csv.split(",") if c.strip())
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise click.BadParameter(f"unknown check(s) {', '.join(unknown)}", param_hint="--checks")
    try:
        spec = load_spec(spec_path)
        identities = [Identity(ANONYMOUS, ("anonymous",))]
        if identities_path:
            config = load_identities_file(identities_path)
            identities = config.identities
            for pattern in config.admin_operations:
                if not spec.label_admin([pattern]):
                    raise ConfigError(
                        f"admin_operations: {pattern!r} matches no operation of the spec",
                        location=str(identities_path),
                    )
        rules = load_rules(rules_path) if rules_path else []
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise SystemExit(EXIT_CONFIG) from None
    options = ScanOptions(
        unsafe=unsafe,
        budget=budget,
        rate=rate,
        burst=burst,
        checks=checks,
        callback_host=callback_host,
        examples=examples,
        ca_file=ca_file,
        insecure=insecure,
    )
    show = not quiet and err.is_terminal
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=not show,
            transient=True,
        ) as progress:
            task = progress.add_task("starting", total=1)

            def tick(label: str, step: int, steps: int) -> None:
                progress.update(task, description=label, completed=step, total=steps)

            result = asyncio.run(run_scan(spec, target, identities, options, rules, tick))
    except ScanError as exc:
        err.print(f"[red]scan failed:[/red] {exc}")
        raise SystemExit(EXIT_SCAN_ERROR) from None
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise SystemExit(EXIT_CONFIG) from None
    _write_reports(result, spec, json_path, sarif_path, junit_path, html_path)
    if not quiet:
        print_summary(result, Console())
    if fail_on != "none":
        threshold = Severity.parse(fail_on)
        if any(f.severity >= threshold for f in result.findings):
            raise SystemExit(EXIT_FINDINGS)
