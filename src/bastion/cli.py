"""The ``bastion`` command line."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from bastion import __version__
from bastion.errors import ConfigError

__all__ = ["main"]


#: Subcommands living in their own modules, imported only when used (the scanner and the
#: token service pull in large libraries; `bastion revoke` should start fast).
LAZY_COMMANDS = {
    "identity": "bastion.identity.cli:identity",
    "scan": "bastion.scanner.cli:scan",
    "keys": "bastion.apikeys.cli:keys",
    "revoke": "bastion.admin_client:revoke",
    "block": "bastion.admin_client:block",
    "unblock": "bastion.admin_client:unblock",
    "blocks": "bastion.admin_client:blocks",
    "versions": "bastion.versions_report:versions",
    "incidents": "bastion.observability.cli:incidents",
    "audit": "bastion.observability.cli:audit",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bastion")
def main() -> None:
    """Bastion: an API security gateway for HTTP/JSON APIs."""


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Gateway config (YAML).",
)
@click.option(
    "--server",
    type=click.Choice(["granian", "uvicorn"]),
    default=None,
    help="Override listen.server.",
)
@click.option("--port", type=int, default=None, help="Override listen.port.")
def gateway(config_path: str, server: str | None, port: int | None) -> None:
    """Run the gateway. SIGHUP reloads the config (a bad one keeps the old serving)."""
    from bastion.gateway.server import serve

    try:
        serve(config_path, server=server, port=port)
    except ConfigError as exc:
        click.echo(f"bastion: {exc}", err=True)
        sys.exit(2)


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Gateway config (YAML).",
)
def check(config_path: str) -> None:
    """Lint a config for insecure settings and load every API's OpenAPI document as the
    gateway does at startup. Exits 2 when the config or a document is invalid, 1 on errors
    in production mode."""
    from bastion.config import load_config
    from bastion.config.lint import lint
    from bastion.gateway.assembly import route_specs, route_warnings

    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        click.echo(f"bastion: {exc}", err=True)
        sys.exit(2)
    findings = lint(loaded)
    for finding in findings:
        click.echo(str(finding))
    invalid: list[ConfigError] = []
    notes: list[str] = []
    for index, api in enumerate(loaded.config.apis):
        if api.openapi is None:
            continue  # its routes are what the findings above looked at
        try:
            routes, spec = route_specs(loaded, api, index)
        except ConfigError as refused:
            invalid.append(refused)
            continue
        notes += route_warnings(api, routes, spec)
    for note in notes:
        click.echo(note)
    for problem in invalid:
        click.echo(f"bastion: {problem}", err=True)
    errors = [f for f in findings if f.severity == "error"]
    mode = loaded.config.mode
    warnings = len(findings) - len(errors) + len(notes)
    click.echo(
        f"{len(errors) + len(invalid)} error(s), {warnings} warning(s) in {mode} mode", err=True
    )
    if invalid:
        sys.exit(2)
    if errors and mode == "production":
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line, then serve.")
@click.option(
    "--port", type=int, default=8080, show_default=True, help="Gateway port (0: any free port)."
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where demo keys and state go (default: ~/.local/state/bastion/demo).",
)
@click.option(
    "--no-traffic",
    is_flag=True,
    help="Do not run the background traffic (customers and an enumeration attack).",
)
def demo(as_json: bool, port: int, state_dir: Path | None, no_traffic: bool) -> None:
    """Run a demo shop API behind the gateway, with example calls."""
    from bastion.demo.runner import run_demo

    run_demo(as_json=as_json, port=port, state_dir=state_dir, traffic=not no_traffic)
