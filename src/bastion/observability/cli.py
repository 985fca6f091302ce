"""``bastion incidents`` and ``bastion audit search``.

``incidents`` lists recent alerts and incidents (with the playbook actions taken) through
the gateway's admin API (address and credential from the gateway config, like ``bastion
block``). ``audit search`` reads the audit file (and its rotated siblings) or the audit
database and prints matching events as JSON lines, or a table with ``--table``.

Every value shown comes from audit events or alerts, hence partly from remote clients: the
text outputs pass each through :func:`printable` and the JSON outputs through
:func:`json_line`, so no control or format character ever reaches the terminal raw.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import click

from bastion.observability.audit_search import Query, parse_time, search_file
from bastion.observability.safetext import json_line, printable

__all__ = ["audit", "incidents"]


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Gateway config (YAML) with an admin: section.",
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def incidents(config_path: str, limit: int, as_json: bool) -> None:
    """Recent alerts and incidents (newest first), with the actions taken."""
    from bastion.admin_client import _call

    listing = _call(config_path, "GET", f"/incidents?limit={limit}", None)
    rows: list[dict[str, Any]] = listing.get("incidents", []) if isinstance(listing, dict) else []
    if as_json:
        for row in rows:
            click.echo(json_line(row))
        return
    if not rows:
        click.echo("no incidents")
        return
    for row in rows:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(row.get("time", 0))))
        actions = ", ".join(
            f"{printable(a.get('action'))}:{printable(a.get('outcome'))}"
            for a in row.get("actions", [])
            if isinstance(a, dict)
        )
        click.echo(
            f"{at}  {printable(row.get('severity', '')):8}  "
            f"{printable(row.get('detector', '')):22}  "
            f"{printable(row.get('subject', ''))}  {printable(row.get('summary', ''))}"
            + (f"  [{actions}]" if actions else "")
        )


@click.group()
def audit() -> None:
    """Audit log tools."""


def _time(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@audit.command("search")
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Audit file (rotated siblings file.1, file.2, ... are read too).",
)
@click.option("--db", default=None, help="Audit database URL (SQLAlchemy async URL).")
@click.option("--table", default="bastion_audit", show_default=True, help="Database table.")
@click.option("--principal", default=None, help="Exact principal (subject).")
@click.option("--route", default=None, help="Route template, or a prefix ending in '*'.")
@click.option("--status", default=None, help="Status code (404) or class (4xx).")
@click.option("--event", "event", default=None, help="Event type (request, alert, ...).")
@click.option("--since", default=None, help="ISO-8601, unix seconds, or 15m/2h/7d ago.")
@click.option("--until", default=None, help="ISO-8601, unix seconds, or 15m/2h/7d ago.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--table-output", "table_output", is_flag=True, help="A table, not JSON lines.")
def search(
    file: Path | None,
    db: str | None,
    table: str,
    principal: str | None,
    route: str | None,
    status: str | None,
    event: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    table_output: bool,
) -> None:
    """Find audit events by principal, route, status and time range."""  # fmt: skip
    if (file is None) == (db is None):
        raise click.UsageError("give exactly one of --file or --db")
    query = Query(
        principal=principal,
        route=route,
        status=status,
        event=event,
        since=_time(since),
        until=_time(until),
        limit=limit,
    )
    try:
        query.status_range()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if file is not None:
        if not file.exists():
            raise click.ClickException(f"no audit file at {file}")
        events = list(search_file(file, query))
    else:
        from bastion.observability.audit_db import search_db

        assert db is not None
        try:
            events = asyncio.run(search_db(db, query, table))
        except Exception as exc:
            # The type only: a driver message may quote the URL and its credentials.
            raise click.ClickException(
                f"audit database query failed: {type(exc).__name__}"
            ) from None
    for item in events:
        if table_output:
            click.echo(
                f"{printable(item.get('time', ''))}  {printable(item.get('status', '')):>3}  "
                f"{printable(item.get('principal') or '-'):20}  "
                f"{printable(item.get('method', ''))} "
                f"{printable(item.get('path', ''))}  {printable(item.get('reason', ''))}"
            )
        else:
            click.echo(json_line(item))
