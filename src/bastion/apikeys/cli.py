"""``bastion keys``: create, list, revoke and rotate API keys.

A key is printed once, by ``create`` or ``rotate``, and can never be shown again: only its
hash is stored. ``--store`` defaults to ``$BASTION_KEYS_STORE`` or
``sqlite:///./bastion-keys.sqlite3``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import click
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from bastion.apikeys.model import ApiKeyRecord
from bastion.apikeys.store import ApiKeyError, ApiKeyStore, open_store
from bastion.jsonutil import dumps

__all__ = ["DEFAULT_STORE", "keys", "parse_duration", "parse_expiry"]

DEFAULT_STORE = "sqlite:///./bastion-keys.sqlite3"
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:\d+[wdhms])+", re.ASCII)
T = TypeVar("T")


def parse_duration(text: str) -> float:
    """Seconds in ``30d``, ``24h``, ``1h30m``, ``2w`` (units w, d, h, m, s)."""
    value = text.strip().lower()
    if not _DURATION.fullmatch(value):
        raise ValueError(f"invalid duration {text!r} (examples: 30d, 24h, 1h30m)")
    return float(sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([wdhms])", value)))


def parse_expiry(text: str, now: float) -> float:
    """An absolute expiry from a duration (``30d``) or an ISO 8601 date or date-time.

    A date means midnight UTC; a date-time without offset is taken as UTC.
    """
    value = text.strip()
    if _DURATION.fullmatch(value.lower()):
        seconds = parse_duration(value)
        if seconds > _LONGEST:
            # 999999999w was stored, and every later `keys list` failed on its year.
            raise ValueError(f"expiry {text!r} is more than 100 years away")
        return now + seconds
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(
            f"invalid expiry {text!r} (use 30d, 2027-01-31 or an ISO date-time)"
        ) from None
    return moment.timestamp()


_LONGEST = 100 * 366 * 86400.0


def _split(values: str | None) -> list[str]:
    return [v.strip() for v in (values or "").split(",") if v.strip()]


def _when(moment: float | None) -> str:
    if moment is None:
        return "never"
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%MZ")


def _with_store(url: str, action: Callable[[ApiKeyStore], Awaitable[T]]) -> T:
    async def run() -> T:
        store = open_store(url)
        try:
            await store.start()
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (ApiKeyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except (OSError, SQLAlchemyError, RedisError) as exc:
        # Never echo the URL or the driver's message: either may carry a password.
        raise click.ClickException(f"key store failed ({type(exc).__name__})") from None


store_option = click.option(
    "--store",
    envvar="BASTION_KEYS_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    show_envvar=True,
    help="Key store URL: sqlite:///file, postgresql://… or redis://…",
)


@click.group()
def keys() -> None:
    """Manage API keys (shown once, stored hashed)."""


@keys.command()
@click.option("--name", required=True, help="Who or what the key is for.")
@click.option("--roles", default="", help="Comma-separated roles, e.g. reader,billing.")
@click.option("--scopes", default="", help="Comma-separated scopes, e.g. orders:read.")
@click.option("--expires", default=None, help="30d, 12h, 2027-01-31 or an ISO date-time.")
@click.option("--network", "networks", multiple=True, help="Allowed CIDR (repeatable).")
@click.option("--env", type=click.Choice(["live", "test"]), default="live", show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="Print only the key.")
@store_option
def create(
    name: str,
    roles: str,
    scopes: str,
    expires: str | None,
    networks: Sequence[str],
    env: str,
    quiet: bool,
    store: str,
) -> None:
    """Create a key and print it ONCE."""
    now = time.time()
    try:
        expires_at = None if expires is None else parse_expiry(expires, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from None

    async def action(s: ApiKeyStore) -> tuple[str, ApiKeyRecord]:
        return await s.create(
            name=name,
            roles=_split(roles),
            scopes=_split(scopes),
            expires_at=expires_at,
            allowed_networks=list(networks),
            now=now,
            env=env,
        )

    key, record = _with_store(store, action)
    if quiet:
        click.echo(key)
        return
    click.echo(f"Created {record.key_id} ({record.name}), expires {_when(record.expires_at)}")
    click.echo(f"  {key}")
    click.echo("This key is shown only once: store it in your secret manager now.")


@keys.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@store_option
def list_keys(as_json: bool, store: str) -> None:
    """List keys (never the keys themselves)."""
    records = _with_store(store, lambda s: s.list())
    now = time.time()
    if as_json:
        rows: list[dict[str, Any]] = [
            {
                "id": r.key_id,
                "name": r.name,
                "prefix": r.prefix,
                "roles": list(r.roles),
                "scopes": list(r.scopes),
                "networks": list(r.allowed_networks),
                "created_at": r.created_at,
                "expires_at": r.expires_at,
                "revoked_at": r.revoked_at,
                "rotated_from": r.rotated_from,
                "status": r.status(now),
            }
            for r in records
        ]
        click.echo(dumps(rows).decode())
        return
    header = ("ID", "NAME", "PREFIX", "ROLES", "SCOPES", "CREATED", "EXPIRES", "STATUS")
    table = [header] + [
        (
            r.key_id,
            r.name,
            r.prefix + "…",
            ",".join(r.roles) or "-",
            ",".join(r.scopes) or "-",
            _when(r.created_at),
            _when(r.expires_at),
            r.status(now),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@keys.command()
@click.argument("key_id")
@store_option
def revoke(key_id: str, store: str) -> None:
    """Revoke a key at once (gateways stop accepting it within their cache TTL)."""
    revoked = _with_store(store, lambda s: s.revoke(key_id, time.time()))
    if not revoked:
        raise click.ClickException(f"{key_id} is unknown or already revoked")
    click.echo(f"Revoked {key_id}")


@keys.command()
@click.argument("key_id")
@click.option(
    "--overlap", default="24h", show_default=True, help="How long the old key keeps working."
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the new key.")
@store_option
def rotate(key_id: str, overlap: str, quiet: bool, store: str) -> None:
    """Issue a successor key (printed ONCE); the old one expires after the overlap."""
    try:
        overlap_seconds = parse_duration(overlap) if overlap.strip() not in ("0", "") else 0.0
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--overlap") from None
    key, record = _with_store(
        store, lambda s: s.rotate(key_id, overlap_seconds=overlap_seconds, now=time.time())
    )
    if quiet:
        click.echo(key)
        return
    click.echo(f"Rotated {key_id} -> {record.key_id}; {key_id} keeps working for {overlap} at most")
    click.echo(f"  {key}")
    click.echo("This key is shown only once: store it in your secret manager now.")
