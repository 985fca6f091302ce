"""A differently shaped API: OpenAPI 3.1, a relative server path, uuid ids, top-level arrays,
an ``ownerId`` field and API-key auth. BOLA must still be found, and only where it exists."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from bastion.scanner.context import ScanOptions
from bastion.scanner.engine import run_scan
from bastion.scanner.identities import load_identities
from bastion.scanner.spec import load_spec
from tests.scanner.servers import serve

SPEC = """
openapi: 3.1.0
info: {title: pets, version: "1"}
servers: [{url: /v1}]
security: [{key: []}]
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
  schemas:
    PetIn:
      type: object
      required: [name]
      properties: {name: {type: string, example: Rex}}
    Pet:
      allOf:
        - $ref: "#/components/schemas/PetIn"
        - type: object
          properties:
            id: {type: string, format: uuid, readOnly: true}
            ownerId: {type: string, readOnly: true}
paths:
  /pets:
    get:
      responses:
        "200":
          description: mine
          content:
            application/json:
              schema: {type: array, items: {$ref: "#/components/schemas/Pet"}}
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/PetIn"}
      responses:
        "201":
          description: created
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Pet"}
  /pets/{petId}:
    get:
      parameters:
        - {name: petId, in: path, required: true, schema: {type: string, format: uuid}}
      responses:
        "200":
          description: one
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Pet"}
        "404": {description: not found}
  /pets/{petId}/vet-notes:
    get:
      parameters:
        - {name: petId, in: path, required: true, schema: {type: string, format: uuid}}
      responses:
        "200":
          description: notes
          content:
            application/json:
              schema: {type: object, properties: {notes: {type: string}}}
        "404": {description: not found}
"""

IDENTITIES = """
version: 1
identities:
  - {name: ann, roles: [user], headers: {X-API-Key: key-ann-0001}}
  - {name: ben, roles: [user], headers: {X-API-Key: key-ben-0002}}
"""

KEYS = {"key-ann-0001": "ann", "key-ben-0002": "ben"}


def app() -> Starlette:
    pets: dict[str, dict[str, Any]] = {}

    def who(request: Request) -> str | None:
        return KEYS.get(request.headers.get("x-api-key", ""))

    async def pets_endpoint(request: Request) -> Response:
        owner = who(request)
        if owner is None:
            return JSONResponse({"error": "key"}, 401)
        if request.method == "POST":
            body = await request.json()
            pet = {"id": str(uuid.uuid4()), "name": str(body.get("name")), "ownerId": owner}
            pets[pet["id"]] = pet
            return JSONResponse(pet, 201)
        return JSONResponse([p for p in pets.values() if p["ownerId"] == owner])

    async def pet(request: Request) -> Response:  # vulnerable: no owner check
        if who(request) is None:
            return JSONResponse({"error": "key"}, 401)
        found = pets.get(request.path_params["pet_id"])
        return JSONResponse(found) if found else JSONResponse({"error": "no pet"}, 404)

    async def notes(request: Request) -> Response:  # correct: owner checked
        owner = who(request)
        if owner is None:
            return JSONResponse({"error": "key"}, 401)
        found = pets.get(request.path_params["pet_id"])
        if not found or found["ownerId"] != owner:
            return JSONResponse({"error": "no pet"}, 404)
        return JSONResponse({"notes": "healthy"})

    v1 = [
        Route("/pets", pets_endpoint, methods=["GET", "POST"]),
        Route("/pets/{pet_id}", pet),
        Route("/pets/{pet_id}/vet-notes", notes),
    ]
    return Starlette(routes=[Mount("/v1", routes=v1)])


def test_bola_on_uuid_objects_behind_a_relative_server_path(tmp_path: Path) -> None:
    (tmp_path / "pets.yaml").write_text(SPEC, encoding="utf-8")
    (tmp_path / "ids.yaml").write_text(IDENTITIES, encoding="utf-8")
    spec = load_spec(tmp_path / "pets.yaml")
    with serve(app()) as url:
        result = asyncio.run(
            run_scan(
                spec,
                url,
                load_identities(tmp_path / "ids.yaml"),
                ScanOptions(checks=("API1", "API3"), examples=0, rate=400),
            )
        )
    assert len(result.operations_exercised) == 4
    assert result.problems == []
    bola = [f for f in result.findings if f.rule == "API1.bola-read"]
    assert [f.operation for f in bola] == ["GET /pets/{petId}", "GET /pets/{petId}"]
    assert {f.identities for f in bola} == {("ann", "ben"), ("ben", "ann")}
    assert all("as the owner" in f.description for f in bola)  # judged by ownerId too
    assert [f for f in result.findings if f.check == "API3"] == []
    assert "key-ann-0001" not in "".join(f.curl or "" for f in bola)
