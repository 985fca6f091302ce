"""`bastion revoke`, `bastion block`, `bastion unblock`, `bastion blocks`: incident response
from the shell, through the gateway's admin API (the address and credential come from the
gateway config, so the CLI never needs its own)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

import click

from bastion.config import load_config
from bastion.errors import ConfigError

__all__ = ["block", "blocks", "revoke", "unblock"]

_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def _admin(config_path: str) -> tuple[str, str]:
    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    admin = loaded.config.admin
    if admin is None:
        raise click.ClickException("the config has no admin: section (host, port, token)")
    host = f"[{admin.host}]" if ":" in admin.host else admin.host
    return f"http://{host}:{admin.port}", admin.token


def _call(config_path: str, method: str, path: str, body: dict[str, Any] | None) -> Any:
    base, token = _admin(config_path)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the URL is built from the config
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise click.ClickException(f"admin API answered {exc.code}: {exc.read()[:200]!r}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"cannot reach the admin API at {base}: {exc}") from None


def _seconds(text: str) -> float:
    unit = text[-1:].lower()
    try:
        return float(text[:-1]) * _DURATIONS[unit] if unit in _DURATIONS else float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration like 90s, 15m, 2h, 7d") from None


_config = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Gateway config (YAML).",
)
_reason = click.option("--reason", default="", help="Why (recorded in the audit log).")


@click.group()
def revoke() -> None:
    """Revoke a token, everything a subject holds, or an API key, on every gateway."""


@revoke.command("token")
@_config
@_reason
@click.argument("jti")
@click.option(
    "--expires-at",
    type=float,
    default=None,
    help="The token's exp, so the entry is dropped once the token expires "
    "(without it the revocation is kept ten years).",
)
def revoke_token(config_path: str, reason: str, jti: str, expires_at: float | None) -> None:
    body: dict[str, Any] = {"jti": jti, "reason": reason}
    if expires_at is not None:
        body["expires_at"] = expires_at
    _print(_call(config_path, "POST", "/revoke/token", body))


@revoke.command("subject")
@_config
@_reason
@click.argument("subject")
def revoke_subject(config_path: str, reason: str, subject: str) -> None:
    """Every token the subject holds that was issued before now stops working."""
    _print(_call(config_path, "POST", "/revoke/subject", {"subject": subject, "reason": reason}))


@revoke.command("api-key")
@_config
@_reason
@click.argument("key_id")
def revoke_api_key(config_path: str, reason: str, key_id: str) -> None:
    _print(_call(config_path, "POST", "/revoke/api-key", {"key_id": key_id, "reason": reason}))


@click.command()
@_config
@_reason
@click.argument("kind", type=click.Choice(["ip", "principal", "api_key"]))
@click.argument("value")
@click.option(
    "--ttl", default=None, help="Block for this long (90s, 15m, 2h, 7d); default: until unblocked."
)
def block(config_path: str, reason: str, kind: str, value: str, ttl: str | None) -> None:
    """Block an IP (or CIDR), a principal or an API key on every gateway."""
    body: dict[str, Any] = {"kind": kind, "value": value, "reason": reason}
    if ttl is not None:
        body["ttl"] = _seconds(ttl)
    _print(_call(config_path, "POST", "/blocks", body))


@click.command()
@_config
@click.argument("kind", type=click.Choice(["ip", "principal", "api_key"]))
@click.argument("value")
def unblock(config_path: str, kind: str, value: str) -> None:
    """Lift a block."""
    _print(_call(config_path, "DELETE", "/blocks", {"kind": kind, "value": value}))


@click.command()
@_config
def blocks(config_path: str) -> None:
    """List active blocks."""
    _print(_call(config_path, "GET", "/blocks", None))


def _print(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
