"""Admin labels and list-level BOLA end to end, through the CLI over real sockets.

A small API where every caller gets every answer: the admin-only report (``[admin]``) and
the audit log (labelled by the identities file) are BFLA; the profile, allowed to
``[user, admin]``, is not. The notes listing shows everyone's notes (a list-level leak);
the product listing has no owner field and is public by nature.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bastion.scanner.cli import EXIT_FINDINGS, scan
from tests.scanner.servers import serve

SPEC = """
openapi: 3.1.0
info: {title: roles, version: "1"}
security: [{key: []}]
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
  schemas:
    Any: {type: object}
    List: {type: array, items: {$ref: "#/components/schemas/Any"}}
  responses:
    One:
      description: one object
      content: {application/json: {schema: {$ref: "#/components/schemas/Any"}}}
    Many:
      description: a listing
      content: {application/json: {schema: {$ref: "#/components/schemas/List"}}}
paths:
  /v1/reports:
    get:
      x-bastion-roles: [admin]
      responses: {"200": {$ref: "#/components/responses/One"}}
  /v1/profile:
    get:
      x-bastion-roles: [user, admin]
      tags: [admin]
      responses: {"200": {$ref: "#/components/responses/One"}}
  /v1/audit:
    get:
      responses: {"200": {$ref: "#/components/responses/One"}}
  /v1/notes:
    get:
      x-bastion-roles: [user, admin]
      responses: {"200": {$ref: "#/components/responses/Many"}}
  /v1/products:
    get:
      responses: {"200": {$ref: "#/components/responses/Many"}}
"""

IDENTITIES = """
version: 1
identities:
  - {name: ann, roles: [user], headers: {X-API-Key: key-ann-0001}, owner_values: [u-ann]}
  - {name: ben, roles: [user], headers: {X-API-Key: key-ben-0002}, owner_values: [u-ben]}
  - {name: boss, roles: [admin], headers: {X-API-Key: key-boss-0003}, owner_values: [u-boss]}
admin_operations: ["GET /v1/audit"]
"""

KEYS = {"key-ann-0001": "u-ann", "key-ben-0002": "u-ben", "key-boss-0003": "u-boss"}
NOTES = [
    {"id": "n-1", "owner": "u-ann", "text": "ann's"},
    {"id": "n-2", "owner": "u-ben", "text": "ben's"},
    {"id": "n-3", "owner": "u-boss", "text": "boss's"},
]


def app() -> Starlette:
    def authed(request: Request) -> str | None:
        return KEYS.get(request.headers.get("x-api-key", ""))

    async def anything(request: Request) -> JSONResponse:
        user = authed(request)
        if user is None:
            return JSONResponse({"error": "key"}, 401)
        return JSONResponse({"for": user, "path": request.url.path})

    async def notes(request: Request) -> JSONResponse:
        if authed(request) is None:
            return JSONResponse({"error": "key"}, 401)
        return JSONResponse(NOTES)  # naive: everybody's notes

    async def products(request: Request) -> JSONResponse:
        return JSONResponse([{"id": "p-1", "name": "mug"}, {"id": "p-2", "name": "book"}])

    return Starlette(
        routes=[
            Route("/v1/reports", anything),
            Route("/v1/profile", anything),
            Route("/v1/audit", anything),
            Route("/v1/notes", notes),
            Route("/v1/products", products),
        ]
    )


def _scan(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    (tmp_path / "ids.yaml").write_text(IDENTITIES, encoding="utf-8")
    with serve(app()) as url:
        result = CliRunner().invoke(
            scan,
            [
                *("--spec", str(tmp_path / "spec.yaml"), "--target", url),
                *("--identities", str(tmp_path / "ids.yaml"), "--checks", "API1,API5"),
                *("--examples", "0", "--rate", "400", "--quiet"),
                *("--json", str(tmp_path / "scan.json")),
            ],
        )
    assert result.exit_code == EXIT_FINDINGS, result.output
    report: dict[str, Any] = orjson.loads((tmp_path / "scan.json").read_bytes())
    return report


def test_admin_labels_and_list_level_bola(tmp_path: Path) -> None:
    report = _scan(tmp_path)
    found = {(f["rule"], f["operation"], f["identities"][0]) for f in report["findings"]}
    bfla = {(op, who) for rule, op, who in found if rule == "API5.admin-function"}
    # [admin] from the spec, GET /v1/audit from the identities file; not [user, admin]
    assert bfla == {
        ("GET /v1/reports", "ann"),
        ("GET /v1/reports", "ben"),
        ("GET /v1/audit", "ann"),
        ("GET /v1/audit", "ben"),
    }
    lists = [f for f in report["findings"] if f["rule"] == "API1.bola-list"]
    assert {(f["operation"], f["identities"][0]) for f in lists} == {
        ("GET /v1/notes", "ann"),
        ("GET /v1/notes", "ben"),
    }
    ann = next(f for f in lists if f["identities"][0] == "ann")
    assert ann["details"]["objects"] == [
        {"id": "n-2", "owner": "ben", "owner_value": "u-ben"},
        {"id": "n-3", "owner": "boss", "owner_value": "u-boss"},
    ]
    assert ann["evidence"][0]["request"]["identity"] == "ann"
    assert "key-ann-0001" not in orjson.dumps(report).decode()  # credentials stay hidden
