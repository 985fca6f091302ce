"""Shared helpers for the contract tests: spec files, headers, compiled operations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from bastion.contract import ContractLimits, OperationContract, compile_operation, load_spec
from bastion.types import Headers

SPECS = Path(__file__).parent / "specs"
SHOP = SPECS / "shop.yaml"
PETS = SPECS / "pets.json"
UUID = "123e4567-e89b-12d3-a456-426614174000"


def headers(*pairs: tuple[str, str]) -> Headers:
    return Headers((k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs)


JSON = headers(("content-type", "application/json"))


def write_spec(tmp_path: Path, document: dict[str, Any], name: str = "api.yaml") -> Path:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(document))
    else:
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def minimal(paths: dict[str, Any], version: str = "3.0.3", **extra: Any) -> dict[str, Any]:
    return {"openapi": version, "info": {"title": "t", "version": "1"}, "paths": paths, **extra}


def contract(
    path: Path, method: str, template: str, limits: ContractLimits | None = None
) -> OperationContract:
    spec = load_spec(path)
    return compile_operation(spec, spec.operation(method, template), limits or ContractLimits())
