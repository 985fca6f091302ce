"""x-bastion-* extensions of an OpenAPI operation: a value of the wrong type stops the
gateway at startup with a ConfigError naming the operation and the extension, instead of
being coerced (``x-bastion-roles: admin`` used to become the roles a, d, m, i, n)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.config import load_config
from bastion.decisions import AllowRule, decide_allow
from bastion.errors import ConfigError
from bastion.gateway.assembly import RouteSpec, route_specs
from bastion.types import Principal


def _routes(
    tmp_path: Path, extensions: dict[str, Any], item: dict[str, Any] | None = None
) -> list[RouteSpec]:
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/items": {
                **(item or {}),
                "get": {**extensions, "responses": {"200": {"description": "ok"}}},
            }
        },
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "bastion.yaml").write_text(
        """version: 1
mode: development
authentication:
  mtls: {principal_from: subject_cn}
upstreams:
  up: {url: "http://127.0.0.1:9", timeout: {connect: 1, read: 1, total: 1}}
apis:
  - name: items
    upstream: up
    openapi: spec.json
"""
    )
    loaded = load_config(tmp_path / "bastion.yaml")
    return route_specs(loaded, loaded.config.apis[0], 0)[0]


def _error(tmp_path: Path, extensions: dict[str, Any], item: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        _routes(tmp_path, extensions, item)
    message = str(info.value)
    assert "spec.json#/paths/~1items/get" in message  # where: the operation's pointer
    assert "operation GET /items" in message
    return message


@pytest.mark.parametrize(
    ("extensions", "named"),
    [
        ({"x-bastion-roles": "admin"}, "x-bastion-roles"),
        ({"x-bastion-scopes": "orders:read"}, "x-bastion-scopes"),
        ({"x-bastion-roles": None}, "x-bastion-roles"),
        ({"x-bastion-roles": ["admin", 1]}, "x-bastion-roles"),
        ({"x-bastion-roles": ["admin", ""]}, "x-bastion-roles"),
        ({"x-bastion-roles": {"admin": True}}, "x-bastion-roles"),
        ({"x-bastion-roles": ["admin"], "x-bastion-scopes": "read"}, "x-bastion-scopes"),
        ({"x-bastion-roles": []}, "x-bastion-roles"),
        ({"x-bastion-allow": "admin"}, "x-bastion-allow"),
        ({"x-bastion-allow": ["admin"]}, "x-bastion-allow"),
        ({"x-bastion-allow": {"roles": "admin"}}, "x-bastion-allow.roles"),
        ({"x-bastion-allow": {"scopes": [""]}}, "x-bastion-allow.scopes"),
        ({"x-bastion-owner": "principal.sub"}, "x-bastion-owner"),
        ({"x-bastion-owner-list": ["x"]}, "x-bastion-owner-list"),
        ({"x-bastion-login": "yes"}, "x-bastion-login"),
        ({"x-bastion-rate-limit": "100/minute"}, "x-bastion-rate-limit"),
        ({"x-bastion-rate-limit": [{"key": "principal", "limit": 5}]}, "x-bastion-rate-limit[0]"),
        # A key of several forms is named as written, not by pydantic's name for the form.
        (
            {"x-bastion-rate-limit": [{"key": ["ip", 5], "limit": "1/second"}]},
            "x-bastion-rate-limit[0].key[1] of operation",
        ),
        (
            {"x-bastion-rate-limit": {"key": 5, "limit": "1/second"}},
            "x-bastion-rate-limit.key of operation GET /items: expected a key",
        ),
    ],
)
def test_wrong_extension_type_is_a_config_error_naming_operation_and_extension(
    tmp_path: Path, extensions: dict[str, Any], named: str
) -> None:
    message = _error(tmp_path, extensions)
    assert named in message


def test_string_roles_are_refused_not_split_into_characters(tmp_path: Path) -> None:
    message = _error(tmp_path, {"x-bastion-roles": "admin"})
    assert "must be a list of non-empty strings" in message
    assert "'admin'" in message


def test_allow_next_to_roles_is_refused_rather_than_one_silently_winning(
    tmp_path: Path,
) -> None:
    # Path item says "any authenticated caller", the operation narrows to admins: the
    # merged extensions hold both, and x-bastion-allow used to win (wider than meant).
    message = _error(
        tmp_path, {"x-bastion-roles": ["admin"]}, item={"x-bastion-allow": "authenticated"}
    )
    assert "x-bastion-allow" in message
    assert "x-bastion-roles" in message


def test_lists_of_strings_still_build_the_allow_rule(tmp_path: Path) -> None:
    (route,) = _routes(tmp_path, {"x-bastion-roles": ["admin"], "x-bastion-scopes": ["a:b"]})
    allow = route.allow
    assert allow is not None
    assert allow != "authenticated"
    assert allow.roles == ["admin"]
    assert allow.scopes == ["a:b"]
    rule = AllowRule(frozenset(allow.roles), frozenset(allow.scopes), allow.match)
    assert decide_allow(
        Principal(subject="u", kind="mtls", roles=frozenset({"admin"})), rule
    ).allowed
    assert not decide_allow(
        Principal(subject="u", kind="mtls", roles=frozenset({"d"})), rule
    ).allowed


def test_allow_authenticated_and_mapping_still_accepted(tmp_path: Path) -> None:
    (route,) = _routes(tmp_path, {"x-bastion-allow": "authenticated"})
    assert route.allow == "authenticated"
    (route,) = _routes(tmp_path, {"x-bastion-allow": {"scopes": ["items:read"], "match": "all"}})
    assert route.allow is not None
    assert route.allow != "authenticated"
    assert route.allow.scopes == ["items:read"]
    assert route.allow.match == "all"


@pytest.mark.parametrize("name", ["x-bastion-role", "x-bastion-owners", "x-bastion-ratelimit"])
def test_a_misspelt_extension_stops_startup(tmp_path: Path, name: str) -> None:
    """It would leave the operation to the API's defaults, often wider than meant."""
    message = _error(tmp_path, {name: ["admin"]})
    assert f"unknown extension {name}" in message
    assert "x-bastion-roles" in message  # the ones Bastion reads are listed
