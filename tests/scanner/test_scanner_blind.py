"""Blind injection, judged by timing alone (no error text, no output in the response)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.scanner.context import ScanOptions
from bastion.scanner.engine import run_scan
from bastion.scanner.identities import ANONYMOUS, Identity
from bastion.scanner.spec import load_spec
from tests.scanner.servers import serve

SPEC = """
openapi: 3.0.3
info: {title: blind, version: "1"}
paths:
  /lookup:
    get:
      parameters:
        - {name: host, in: query, required: true, schema: {type: string, example: example.com}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: object, properties: {ok: {type: boolean}}}
"""


async def lookup(request: Request) -> Response:
    host = request.query_params.get("host", "")
    if ";sleep " in host:  # a blind command injection: the shell output is discarded
        await asyncio.sleep(float(host.rsplit(" ", 1)[-1]))
    return JSONResponse({"ok": True})


def test_blind_command_injection_is_found_by_timing(tmp_path: Path) -> None:
    spec_path = tmp_path / "blind.yaml"
    spec_path.write_text(SPEC, encoding="utf-8")
    with serve(Starlette(routes=[Route("/lookup", lookup)])) as url:
        result = asyncio.run(
            run_scan(
                load_spec(spec_path),
                url,
                [Identity(ANONYMOUS, ("anonymous",))],
                ScanOptions(checks=("INJ",), examples=0, timing_delay=1.0),
            )
        )
    found = [f for f in result.findings if f.rule == "INJ.command"]
    assert len(found) == 1
    assert "delayed the response" in found[0].description
    assert found[0].confidence.label == "medium"
    assert len(found[0].evidence) == 3  # the slow payload twice and the fast benign control
    assert [f.rule for f in result.findings] == ["INJ.command"]  # SQL payloads did not delay
