"""The spec model and evidence redaction, on the demo shop's real spec (regressions).

Schemathesis 4 bundles nested ``$ref``s into the schema it hands over; admin labels follow
the roles an operation allows; only credential headers are secrets.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

import jsonschema_rs
import pytest
from click.testing import CliRunner

from bastion.scanner.cli import EXIT_CONFIG, scan
from bastion.scanner.identities import Identity, load_identities_file, login_all
from bastion.scanner.pattern_sample import matching_string
from bastion.scanner.redact import Redactor
from bastion.scanner.sampling import BUNDLE_KEY, resolve, sample
from bastion.scanner.spec import _is_admin, load_spec

ROOT = Path(__file__).resolve().parents[2]
SHOP_SPEC = ROOT / "src" / "bastion" / "demo" / "shop_openapi.yaml"


def _contains_key(node: Any, key: str) -> bool:
    if isinstance(node, dict):
        return key in node or any(_contains_key(v, key) for v in node.values())
    if isinstance(node, list):
        return any(_contains_key(v, key) for v in node)
    return False


def test_bundled_request_bodies_resolve_and_samples_are_valid() -> None:
    spec = load_spec(SHOP_SPEC)
    bodies = [op for op in spec.operations if op.body_schema is not None]
    assert {op.label for op in bodies} >= {
        "POST /v2/users",
        "PATCH /v2/users/{user_id}",
        "POST /v2/orders",
        "PATCH /v2/orders/{order_id}",
    }
    for op in bodies:
        assert op.body_schema is not None
        # schemathesis handed these over as {$ref: "#/x-bundled/...", x-bundled: {...}}
        assert not _contains_key(op.body_schema, "$ref"), op.label
        assert not _contains_key(op.body_schema, BUNDLE_KEY), op.label
        body = op.sample_body("-t1")
        assert isinstance(body, dict), op.label
        errors = [e.message for e in jsonschema_rs.validator_for(op.body_schema).iter_errors(body)]
        assert errors == [], (op.label, body)
    orders = spec.operation("POST /v2/orders")
    assert orders is not None
    item = orders.sample_body()["items"][0]
    assert set(item) == {"sku", "quantity", "unit_price"}  # nested $ref inside an array
    users = spec.operation("POST /v2/users")
    assert users is not None
    assert "role" not in users.sample_body()  # readOnly, from a $ref with siblings
    one, two = users.sample_body("-a"), users.sample_body("-b")
    assert one["username"] != two["username"]
    assert one["email"] != two["email"]


def test_bundles_resolve_per_schema_and_cycles_stop() -> None:
    bundled = {
        "$ref": "#/x-bundled/schema1",
        BUNDLE_KEY: {
            "schema1": {
                "type": "object",
                "properties": {
                    "name": {"$ref": "#/x-bundled/schema2"},
                    "child": {"$ref": "#/x-bundled/schema1"},
                },
            },
            "schema2": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"},
        },
    }
    # the document root has no x-bundled at all: resolving against it gave {} before
    resolved = resolve(bundled, {"openapi": "3.1.0"})
    assert resolved["properties"]["name"]["pattern"] == "^[A-Z]{2}-[0-9]{3}$"
    assert resolved["properties"]["child"] == {}  # the cycle back to schema1 stops
    assert sample(resolved)["name"] == "AA-000"
    root = {"components": {"schemas": {"A": {"type": "integer", "minimum": 3}}}}
    assert resolve({"$ref": "#/components/schemas/A", "readOnly": True}, root) == {
        "type": "integer",
        "minimum": 3,
        "readOnly": True,
    }


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"^[A-Z0-9-]{3,32}$", "AAA"),
        (r"^u-[a-z0-9-]{1,40}$", "u-a"),
        (r"^(ab|cd)\d{2}[^x]$", "ab00a"),
        (r"(a)\1", None),
        (r"[", None),
    ],
)
def test_strings_are_built_from_patterns(pattern: str, expected: str | None) -> None:
    assert matching_string(pattern) == expected


def test_patterns_keep_the_tagged_text_when_it_fits() -> None:
    schema = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{3,32}$"}
    assert sample(schema, tag="-x1") == "bastion-x1"
    assert sample({"type": "string", "pattern": "^[A-Z]{3}$"}, tag="-x1") == "AAA"


@pytest.mark.parametrize(
    ("raw_op", "path", "admin"),
    [
        ({"x-bastion-roles": ["customer", "admin"]}, "/v2/orders/{id}", False),
        ({"x-bastion-roles": ["customer", "admin"], "tags": ["admin"]}, "/v2/admin/x", False),
        ({"x-bastion-roles": ["admin"]}, "/v2/reports", True),
        ({"x-bastion-roles": ["Admin", "superuser"]}, "/v2/reports", True),
        ({"x-roles": ["root"]}, "/v2/reports", True),
        ({"tags": ["admin"]}, "/v2/reports", True),
        ({}, "/v2/admin/reports", True),
        ({}, "/v2/orders", False),
        # x-bastion-allow, as the gateway reads it
        ({"x-bastion-allow": {"roles": ["admin"]}}, "/v2/reports", True),
        ({"x-bastion-allow": {"roles": ["customer", "admin"]}}, "/v2/reports", False),
        ({"x-bastion-allow": {"roles": ["customer", "admin"], "match": "all"}}, "/r", True),
        ({"x-bastion-allow": {"scopes": ["reports:read"]}}, "/v2/reports", False),
        ({"x-bastion-allow": "authenticated"}, "/v2/admin/reports", False),
        ({"x-bastion-roles": "admin"}, "/v2/reports", True),
        ({"tags": "admin"}, "/v2/reports", False),  # not a list: no tags
    ],
)
def test_admin_label_needs_every_allowed_role_privileged(
    raw_op: dict[str, Any], path: str, admin: bool
) -> None:
    assert _is_admin(raw_op, path) is admin


@pytest.mark.parametrize(
    ("item", "raw_op", "admin"),
    [
        ({"x-bastion-allow": {"roles": ["admin"]}}, {}, True),
        ({"x-bastion-roles": ["admin"]}, {}, True),
        ({"x-bastion-roles": ["admin"]}, {"x-bastion-roles": ["customer"]}, False),
        (
            {"x-bastion-allow": {"roles": ["customer"]}},
            {"x-bastion-allow": {"roles": ["root"]}},
            True,
        ),
    ],
)
def test_roles_declared_on_the_path_item_count_under_the_operations(
    item: dict[str, Any], raw_op: dict[str, Any], admin: bool
) -> None:
    """The gateway merges a path item's x-bastion-* extensions under its operations'; the
    scanner labels operations from the same merge."""
    assert _is_admin(raw_op, "/v2/reports", item) is admin


def test_a_spec_declaring_admin_roles_on_a_path_item_labels_its_operations(
    tmp_path: Path,
) -> None:
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/reports": {
                "x-bastion-allow": {"roles": ["admin"]},
                "get": {"responses": {"200": {"description": "ok"}}},
            },
            "/orders": {"get": {"responses": {"200": {"description": "ok"}}}},
        },
    }
    path = tmp_path / "api.json"
    path.write_text(json.dumps(doc))
    spec = load_spec(path)
    assert {op.label: op.admin for op in spec.operations} == {
        "GET /reports": True,
        "GET /orders": False,
    }


def test_shop_has_exactly_one_admin_operation() -> None:
    spec = load_spec(SHOP_SPEC)
    assert [op.label for op in spec.operations if op.admin] == ["GET /v2/admin/reports"]


def test_identities_file_labels_admin_operations(tmp_path: Path) -> None:
    ids = tmp_path / "ids.yaml"
    ids.write_text(
        "version: 1\nidentities:\n  - {name: alice, roles: [customer]}\n"
        "admin_operations: ['PATCH /v2/orders/*', 'GET /v2/users/{user_id}']\n",
        encoding="utf-8",
    )
    config = load_identities_file(ids)
    assert config.admin_operations == ("PATCH /v2/orders/*", "GET /v2/users/{user_id}")
    spec = load_spec(SHOP_SPEC)
    labelled = spec.label_admin(config.admin_operations)
    assert sorted(labelled) == ["GET /v2/users/{user_id}", "PATCH /v2/orders/{order_id}"]
    assert sorted(op.label for op in spec.operations if op.admin) == [
        "GET /v2/admin/reports",
        "GET /v2/users/{user_id}",
        "PATCH /v2/orders/{order_id}",
    ]


def test_an_admin_operations_glob_matching_nothing_is_a_config_error(tmp_path: Path) -> None:
    ids = tmp_path / "ids.yaml"
    ids.write_text(
        "version: 1\nidentities:\n  - {name: alice}\nadmin_operations: ['GET /nope/*']\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        scan,
        ["--spec", str(SHOP_SPEC), "--target", "http://127.0.0.1:9", "--identities", str(ids)],
    )
    assert result.exit_code == EXIT_CONFIG
    assert "GET /nope/*" in result.output


def test_only_credential_headers_are_secrets_and_paths_are_never_rewritten() -> None:
    redactor = Redactor()
    who = Identity(
        "alice",
        ("customer",),
        static_headers={
            "X-Bastion-Subject": "u-alice",
            "X-Bastion-Roles": "admin",
            "Authorization": "Bearer tok-abcdef123456",
            "X-Session-Id": "s-0123456789",
        },
    )
    asyncio.run(login_all(cast(Any, None), [who], redactor))
    headers = redactor.headers(dict(who.headers))
    assert headers["X-Bastion-Subject"] == "u-alice"
    assert headers["X-Bastion-Roles"] == "admin"
    assert headers["Authorization"] == "${BASTION_ALICE_AUTHORIZATION}"
    assert headers["X-Session-Id"] == "${BASTION_ALICE_X_SESSION_ID}"
    url = "http://h/v2/admin/reports/u-alice?token=tok-abcdef123456&q=admin"
    assert redactor.url(url) == (
        "http://h/v2/admin/reports/u-alice?token=${BASTION_ALICE_TOKEN}&q=admin"
    )
    curl = redactor.curl("GET", url, who.headers, None)
    assert "tok-abcdef123456" not in curl
    assert "s-0123456789" not in curl
    assert "/v2/admin/reports/u-alice" in curl
    assert "X-Bastion-Subject: u-alice" in curl
    # a credential that also spells a path segment stays in the path, hidden elsewhere
    redactor.add_secret("reports", "BASTION_BOB_X_API_KEY")
    assert redactor.url("http://h/v2/reports?k=1") == "http://h/v2/reports?k=1"
