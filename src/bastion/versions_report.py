"""`bastion versions`: who still calls deprecated API versions, from the audit log.

Every request to a deprecated API or operation is marked ``"deprecated": true`` in its
audit event; this report groups them per API, route and caller (principal, else client
IP), so API owners know whom to warn before the sunset date.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from bastion.contract.versioning import to_datetime
from bastion.errors import ConfigError

__all__ = ["DeprecatedUsage", "deprecated_usage", "versions"]


@dataclass
class DeprecatedUsage:
    api: str
    route: str
    caller: str
    calls: int
    last_seen: str


def _events(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        # A torn or foreign line must not end the report: it fails to parse and is skipped.
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    yield event


def _instant(text: str) -> datetime | None:
    try:
        return to_datetime(text)
    except ConfigError:
        return None


def deprecated_usage(
    events: Iterable[dict[str, Any]], since: str | None = None
) -> list[DeprecatedUsage]:
    """Aggregate deprecated calls, most frequent first. ``since`` is any date the config
    takes (ISO 8601 with or without a zone, which means UTC; an HTTP-date; ``@epoch``);
    ValueError when it is none of them."""
    start = None
    if since is not None:
        start = _instant(since)
        if start is None:
            raise ValueError(f"not a date: {since!r} (ISO 8601, e.g. 2026-11-28T20:00:00Z)")
    table: dict[tuple[str, str, str], DeprecatedUsage] = {}
    for event in events:
        if event.get("event") != "request" or not event.get("deprecated"):
            continue
        when = str(event.get("time", ""))
        if start is not None:
            moment = _instant(when)
            if moment is None or moment < start:  # compared as instants, not as text
                continue
        caller = event.get("principal") or f"ip:{event.get('client_ip')}"
        key = (str(event.get("api")), str(event.get("route")), str(caller))
        usage = table.get(key)
        if usage is None:
            table[key] = DeprecatedUsage(*key, calls=1, last_seen=when)
        else:
            usage.calls += 1
            usage.last_seen = max(usage.last_seen, when)
    return sorted(table.values(), key=lambda u: (-u.calls, u.api, u.route, u.caller))


@click.command()
@click.option(
    "--audit",
    "audit_files",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Audit log file(s) (rotated files too).",
)
@click.option("--since", default=None, help="Only events at or after this ISO time.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def versions(audit_files: tuple[Path, ...], since: str | None, as_json: bool) -> None:
    """Show who still calls deprecated API versions."""
    try:
        usage = deprecated_usage(_events(audit_files), since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    if as_json:
        click.echo(json.dumps([u.__dict__ for u in usage], indent=2))
        return
    table = Table(title="Calls to deprecated versions")
    for column in ("api", "route", "caller", "calls", "last seen"):
        table.add_column(column)
    for u in usage:
        table.add_row(u.api, u.route, u.caller, str(u.calls), u.last_seen)
    Console().print(table)
