"""``bastion identity …``: serve the token service and administer it.

Secrets are never taken as arguments: passwords are prompted (hidden) or read from stdin,
client secrets are printed once. Commands exit 1 with a clear message on bad input.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from bastion.errors import ConfigError
from bastion.identity.check import failed, run_checks
from bastion.identity.passwords import PasswordRejected
from bastion.identity.service import IdentityService
from bastion.identity.settings import IdentitySettings, load_identity_settings
from bastion.jsonutil import loads_strict

__all__ = ["identity"]

T = TypeVar("T")
_console = Console()

config_option = click.option(
    "--config",
    "config_path",
    envvar="BASTION_IDENTITY_CONFIG",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="identity.yaml (or BASTION_IDENTITY_CONFIG).",
)


def _settings(path: Path) -> IdentitySettings:
    try:
        return load_identity_settings(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _run(path: Path, action: Callable[[IdentityService], Awaitable[T]]) -> T:
    async def main() -> T:
        service = IdentityService(_settings(path))
        try:
            await service.start()
            return await action(service)
        finally:
            await service.close()

    try:
        return asyncio.run(main())
    except PasswordRejected as exc:
        raise click.ClickException("password refused: " + "; ".join(exc.reasons)) from None
    except (KeyError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@click.group()
def identity() -> None:
    """The token service: OAuth 2.0 authorization server (RFC 9700)."""


@identity.command()
@config_option
@click.option("--server", type=click.Choice(["granian", "uvicorn"]), default=None)
@click.option("--port", type=int, default=None, help="Override listen.port.")
@click.option("--workers", type=int, default=1, show_default=True, help="granian workers.")
def serve(config_path: Path, server: str | None, port: int | None, workers: int) -> None:
    """Serve the token service."""
    from bastion.identity.server import serve as run_server

    try:
        run_server(config_path, server=server, port=port, workers=workers)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@identity.command()
@config_option
def migrate(config_path: Path) -> None:
    """Apply the database migrations and create signing keys if missing."""
    from bastion.identity.server import prepare

    asyncio.run(prepare(_settings(config_path)))
    click.echo("database is at the latest revision")


@identity.command()
@config_option
def check(config_path: Path) -> None:
    """List every RFC 9700 / NIST rule with its setting; exit 1 on a failure."""
    settings = _settings(config_path)
    findings = run_checks(settings)
    table = Table(title=f"bastion identity check ({settings.mode} mode)")
    for column in ("status", "rule", "setting"):
        table.add_column(column)
    colours = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    for f in findings:
        table.add_row(f"[{colours[f.status]}]{f.status}[/]", f.rule, f.setting)
    _console.print(table)
    if failed(findings):
        raise click.ClickException("insecure settings (see the rows marked fail)")


# -- users -----------------------------------------------------------------------------
@identity.group()
def users() -> None:
    """Manage user accounts."""


@users.command("add")
@config_option
@click.argument("username")
@click.option("--email", default=None)
@click.option("--role", "roles", multiple=True, help="Repeat for several roles.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--mfa", is_flag=True, help="Enrol TOTP now and print the provisioning URI.")
def users_add(
    config_path: Path,
    username: str,
    email: str | None,
    roles: tuple[str, ...],
    password_stdin: bool,
    mfa: bool,
) -> None:
    """Create a user (the password must pass the NIST rules)."""
    password = _read_password(password_stdin)

    async def action(service: IdentityService) -> None:
        user = await service.users.add(
            username, password, roles=roles, email=email, now=service.clock()
        )
        click.echo(f"created {user.username} ({user.id})")
        if mfa:
            enrolment = await service.totp.enroll(user.id, user.username)
            service.audit.emit("mfa.enrolled", user=user.id)
            click.echo(f"TOTP: {enrolment.provisioning_uri}")
            click.echo("recovery codes (shown once): " + " ".join(enrolment.recovery_codes))

    _run(config_path, action)


async def _user_id(service: IdentityService, username: str) -> str:
    user = await service.users.by_username(username)
    if user is None:
        raise KeyError(f"no such user: {username}")
    return user.id


@users.command("disable")
@config_option
@click.argument("username")
def users_disable(config_path: Path, username: str) -> None:
    """Disable a user and revoke every token and session they have."""

    async def action(service: IdentityService) -> None:
        await service.disable_user(await _user_id(service, username))

    _run(config_path, action)
    click.echo(f"disabled {username}; its tokens are revoked")


@users.command("reset-mfa")
@config_option
@click.argument("username")
def users_reset_mfa(config_path: Path, username: str) -> None:
    """Remove a user's TOTP enrolment and recovery codes."""

    async def action(service: IdentityService) -> None:
        user_id = await _user_id(service, username)
        await service.totp.reset(user_id)
        service.audit.emit("mfa.reset", user=user_id)

    _run(config_path, action)
    click.echo(f"MFA reset for {username}")


@users.command("enroll-mfa")
@config_option
@click.argument("username")
def users_enroll_mfa(config_path: Path, username: str) -> None:
    """Enrol (or re-enrol) TOTP; prints the provisioning URI and recovery codes once."""

    async def action(service: IdentityService) -> None:
        user_id = await _user_id(service, username)
        enrolment = await service.totp.enroll(user_id, username)
        service.audit.emit("mfa.enrolled", user=user_id)
        click.echo(f"TOTP: {enrolment.provisioning_uri}")
        click.echo("recovery codes (shown once): " + " ".join(enrolment.recovery_codes))

    _run(config_path, action)


@users.command("set-password")
@config_option
@click.argument("username")
@click.option("--password-stdin", is_flag=True)
def users_set_password(config_path: Path, username: str, password_stdin: bool) -> None:
    """Change a password: revokes every refresh family and sets a not-before."""
    password = _read_password(password_stdin)

    async def action(service: IdentityService) -> None:
        user = await service.users.by_username(username)
        if user is None:
            raise KeyError(f"no such user: {username}")
        await service.change_password(user, password)

    _run(config_path, action)
    click.echo(f"password changed for {username}; earlier tokens are revoked")


# -- clients ---------------------------------------------------------------------------
@identity.group()
def clients() -> None:
    """Manage OAuth clients."""


@clients.command("add")
@config_option
@click.option("--name", required=True)
@click.option("--client-id", default=None, help="Default: random.")
@click.option(
    "--auth-method",
    type=click.Choice(["client_secret_basic", "private_key_jwt", "none"]),
    default="client_secret_basic",
    show_default=True,
)
@click.option(
    "--grant",
    "grants",
    multiple=True,
    type=click.Choice(["authorization_code", "client_credentials", "refresh_token"]),
)
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--scope", "scopes", multiple=True)
@click.option("--audience", "audiences", multiple=True, help="Allowed RFC 8707 resources.")
@click.option("--role", "roles", multiple=True, help="Roles of client-credentials tokens.")
@click.option("--jwks-file", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--jwt-alg", default=None, help="Pinned assertion algorithm (private_key_jwt).")
@click.option("--require-mfa", is_flag=True)
def clients_add(config_path: Path, jwks_file: Path | None, **options: Any) -> None:
    """Register a client; a secret is printed once (only its hash is stored)."""
    jwks = loads_strict(jwks_file.read_bytes()) if jwks_file else None
    grants = options.pop("grants") or ("client_credentials",)

    async def action(service: IdentityService) -> None:
        client, secret = await service.clients.create(
            name=options["name"],
            client_id=options["client_id"],
            auth_method=options["auth_method"],
            grant_types=grants,
            redirect_uris=options["redirect_uris"],
            scopes=options["scopes"],
            audiences=options["audiences"],
            roles=options["roles"],
            jwks=jwks,
            jwt_alg=options["jwt_alg"],
            require_mfa=options["require_mfa"],
        )
        click.echo(f"client_id: {client.client_id}")
        if secret:
            click.echo(f"client_secret (shown once): {secret}")

    _run(config_path, action)


@clients.command("list")
@config_option
def clients_list(config_path: Path) -> None:
    """List registered clients (never their secrets)."""
    rows = _run(config_path, lambda service: service.clients.all())
    table = Table(title="clients")
    for column in ("client_id", "name", "auth", "grants", "scopes", "redirect URIs", "status"):
        table.add_column(column)
    for c in rows:
        table.add_row(
            c.client_id,
            c.name,
            c.auth_method,
            " ".join(sorted(c.grant_types)),
            " ".join(sorted(c.scopes)),
            " ".join(c.redirect_uris),
            "disabled" if c.disabled else "active",
        )
    _console.print(table)


@clients.command("rotate-secret")
@config_option
@click.argument("client_id")
def clients_rotate_secret(config_path: Path, client_id: str) -> None:
    """Replace a client's secret; the old one stops working at once."""

    async def action(service: IdentityService) -> str:
        try:
            return await service.clients.rotate_secret(client_id)
        except KeyError:
            raise KeyError(f"no client_secret_basic client {client_id}") from None

    secret = _run(config_path, action)
    click.echo(f"client_secret (shown once): {secret}")


# -- keys ------------------------------------------------------------------------------
@identity.group()
def keys() -> None:
    """Manage ES256 signing keys."""


@keys.command("rotate")
@config_option
@click.option("--force", is_flag=True, help="Do not wait for publish_ahead.")
def keys_rotate(config_path: Path, force: bool) -> None:
    """Sign with the published next key, retire the current one, publish a new next key."""

    async def action(service: IdentityService) -> str:
        result = await service.keys.rotate(force=force)
        service.audit.emit("key.rotated", kid=result.active_kid, next_kid=result.next_kid)
        return f"signing with {result.active_kid}; next key {result.next_kid} published"

    click.echo(_run(config_path, action))


@keys.command("list")
@config_option
def keys_list(config_path: Path) -> None:
    """Show the published keys (public parts only)."""

    async def action(service: IdentityService) -> list[str]:
        await service.keys.reload()
        return [str(k["kid"]) for k in service.keys.jwks()["keys"]]

    for kid in _run(config_path, action):
        click.echo(kid)
