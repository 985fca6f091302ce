"""Configuration: YAML with line numbers -> frozen, typed models -> lint findings.

``load_config`` is the only entry point. It raises :class:`bastion.errors.ConfigError` with
every problem listed, each naming file, line and key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bastion.config.loader import SourceMap, load_yaml_document, written_path
from bastion.config.models import GatewayConfig
from bastion.errors import ConfigError

__all__ = ["LoadedConfig", "load_config", "parse_config"]


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus where it came from (for lint locations and relative paths)."""

    config: GatewayConfig
    source: SourceMap
    base_dir: Path

    def resolve(self, path: Path | str) -> Path:
        """Resolve a path from the config relative to the config file's directory."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() else (self.base_dir / candidate)


def load_config(
    path: str | Path, *, text: str | None = None, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    data, source = load_yaml_document(path, text=text, environ=environ)
    return parse_config(data, source, Path(path).resolve().parent)


def parse_config(data: Any, source: SourceMap, base_dir: Path) -> LoadedConfig:
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping", location=source.location(()))
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, data)) from None
    return LoadedConfig(config=config, source=source, base_dir=base_dir)


def _describe(exc: ValidationError, source: SourceMap, data: Any) -> str:
    lines = [f"{exc.error_count()} problem(s) in the configuration:"]
    for error in exc.errors(include_url=False):
        kind = error["type"]
        loc = written_path(error["loc"], data, missing=kind == "missing")
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {source.location(loc)}: {message}")
    return "\n".join(lines)
