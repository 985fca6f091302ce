"""An OpenAPI security requirement is enforced as written, or the gateway does not start.

Three requirements used to be weakened in silence: an operation whose security also lists
``{}`` (anyone) became public and dropped its ``x-bastion-roles``; ``{bearer, apiKey}``
(both credentials) became "either one"; the scopes an oauth2 requirement lists were never
checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.config import load_config
from bastion.config.models import AllowConfig
from bastion.errors import ConfigError
from bastion.gateway.assembly import RouteSpec, route_specs
from tests.support.keys import make_issuer

SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "key": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "oauth": {
        "type": "oauth2",
        "flows": {
            "clientCredentials": {
                "tokenUrl": "https://id.example/token",
                "scopes": {"reports:read": "read", "reports:write": "write"},
            }
        },
    },
}


def _routes(tmp_path: Path, operation: dict[str, Any], api_extra: str = "") -> list[RouteSpec]:
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": SCHEMES},
        "paths": {"/reports": {"post": {**operation, "responses": {"200": {"description": "ok"}}}}},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    issuer = make_issuer(tmp_path)
    (tmp_path / "bastion.yaml").write_text(
        f"""version: 1
mode: development
{issuer.config()}  api_keys: {{store: "sqlite:///{tmp_path}/keys.sqlite3"}}
upstreams:
  up: {{url: "http://127.0.0.1:9", timeout: {{connect: 1, read: 1, total: 1}}}}
apis:
  - name: reports
    upstream: up
    openapi: spec.json
{api_extra}"""
    )
    loaded = load_config(tmp_path / "bastion.yaml")
    return route_specs(loaded, loaded.config.apis[0], 0)[0]


def _refused(tmp_path: Path, operation: dict[str, Any], api_extra: str = "") -> str:
    with pytest.raises(ConfigError) as info:
        _routes(tmp_path, operation, api_extra)
    return str(info.value)


def test_roles_on_an_operation_anyone_may_call_stop_the_gateway(tmp_path: Path) -> None:
    message = _refused(tmp_path, {"security": [{"bearer": []}, {}], "x-bastion-roles": ["admin"]})
    assert "public" in message
    assert "allow rule" in message
    # Public without a rule stays public.
    [route] = _routes(tmp_path, {"security": [{"bearer": []}, {}]})
    assert route.public


def test_two_credentials_at_once_stop_the_gateway(tmp_path: Path) -> None:
    message = _refused(tmp_path, {"security": [{"bearer": [], "key": []}]})
    assert "requires bearer and key at once" in message


def test_the_scopes_a_requirement_lists_become_the_rule(tmp_path: Path) -> None:
    [route] = _routes(
        tmp_path,
        {"security": [{"oauth": ["reports:write", "reports:read"]}]},
        api_extra="    allow: authenticated\n",
    )
    assert route.allow == AllowConfig(scopes=["reports:read", "reports:write"], match="all")


@pytest.mark.parametrize(
    ("rule", "accepted"),
    [
        ({"x-bastion-scopes": ["reports:write"]}, True),
        ({"x-bastion-allow": {"scopes": ["reports:write", "x"], "match": "all"}}, True),
        ({"x-bastion-scopes": ["reports:read"]}, False),
        ({"x-bastion-allow": "authenticated"}, False),
        ({"x-bastion-allow": {"scopes": ["reports:write", "x"], "match": "any"}}, False),
        ({"x-bastion-roles": ["admin"]}, False),
    ],
)
def test_a_rule_of_its_own_must_require_the_specs_scopes(
    tmp_path: Path, rule: dict[str, Any], accepted: bool
) -> None:
    operation = {"security": [{"oauth": ["reports:write"]}], **rule}
    if accepted:
        _routes(tmp_path, operation)
    else:
        assert "requires the scopes reports:write" in _refused(tmp_path, operation)


def test_alternatives_needing_different_scopes_stop_the_gateway(tmp_path: Path) -> None:
    message = _refused(tmp_path, {"security": [{"oauth": ["reports:write"]}, {"key": []}]})
    assert "need different scopes" in message
