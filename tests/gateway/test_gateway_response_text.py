"""What a client reads of a filtered answer is what the contract checked.

A real gateway with an OpenAPI contract in front of ``tests.support.upstream``, whose
``/answer/NAME`` paths answer JSON texts byte for byte (``ANSWERS``). Parsers disagree on a
repeated key (first or last occurrence) and on numbers beyond a double; the client must
read the document the gateway validated, each number as the upstream wrote it.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.procs import GatewayProc, dev_config, run_gateway, run_upstream

SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "answers", "version": "1"},
    "paths": {
        "/answer/{name}": {
            "get": {
                "security": [],
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "an answer",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "integer"},
                                        "role": {"type": "string", "enum": ["customer"]},
                                        "balance": {"type": "number"},
                                    },
                                }
                            }
                        },
                    }
                },
            }
        }
    },
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    tmp: Path = tmp_path_factory.mktemp("response-text")
    spec = tmp / "answers.json"
    spec.write_text(json.dumps(SPEC))
    with run_upstream(tmp) as upstream:
        config = dev_config(
            upstream.url,
            api_extra=f'    openapi: "{spec}"',
            routes='\n      - {path: "/answer/{name}", methods: [GET], public: true}',
        )
        with run_gateway(config, tmp) as gw:
            yield gw


def _get(gw: GatewayProc, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _first_wins(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def test_a_repeated_key_reaches_no_client_that_reads_the_first_one(gateway: GatewayProc) -> None:
    """The upstream says role "admin" then "customer"; "customer" was validated."""
    status, body = _get(gateway, "/answer/repeated-role")
    assert status == 200
    assert json.loads(body, object_pairs_hook=_first_wins) == {"id": 1, "role": "customer"}
    assert b"admin" not in body


def test_numbers_beyond_a_double_leave_as_the_upstream_wrote_them(gateway: GatewayProc) -> None:
    status, body = _get(gateway, "/answer/exact-numbers")
    assert status == 200
    assert json.loads(body, parse_float=Decimal) == {
        "id": 123456789012345678901234567890,
        "balance": Decimal("1234567890123456.789"),
        "role": "customer",
    }
