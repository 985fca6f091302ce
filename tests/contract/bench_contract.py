"""Per-call cost of validate_request + filter_response on a realistic ~2 KB JSON body.

Run: .venv/bin/python -m tests.contract.bench_contract
Not a test (no timing assertions): it prints microseconds per call.
"""

from __future__ import annotations

import json
import tempfile
import timeit
from pathlib import Path

import orjson

from bastion.contract import ContractLimits, compile_operation, load_spec
from tests.contract.contract_helpers import JSON, write_spec

LINE = {
    "type": "object",
    "required": ["sku", "qty", "price"],
    "properties": {
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
        "qty": {"type": "integer", "minimum": 1, "maximum": 99},
        "price": {"type": "number", "minimum": 0},
        "title": {"type": "string", "maxLength": 80},
        "gift": {"type": "boolean"},
    },
}
ORDER = {
    "type": "object",
    "required": ["customer", "lines", "currency"],
    "properties": {
        "id": {"type": "string", "format": "uuid", "readOnly": True},
        "customer": {"type": "string", "format": "uuid"},
        "currency": {"type": "string", "enum": ["EUR", "USD", "NOK"]},
        "lines": {"type": "array", "maxItems": 50, "items": LINE},
        "note": {"type": "string", "nullable": True},
        "deliver_at": {"type": "string", "format": "date-time"},
        "contact": {
            "type": "object",
            "properties": {
                "email": {"type": "string", "format": "email"},
                "phone": {"type": "string", "maxLength": 20},
                "address": {
                    "type": "object",
                    "properties": {
                        "street": {"type": "string"},
                        "city": {"type": "string"},
                        "zip": {"type": "string", "maxLength": 10},
                    },
                },
            },
        },
    },
}
DOC = {
    "openapi": "3.0.3",
    "info": {"title": "bench", "version": "1"},
    "paths": {
        "/shops/{shop_id}/orders": {
            "post": {
                "parameters": [
                    {
                        "name": "shop_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    },
                    {"name": "dry_run", "in": "query", "schema": {"type": "boolean"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ORDER}},
                },
                "responses": {
                    "201": {"description": "ok", "content": {"application/json": {"schema": ORDER}}}
                },
            }
        }
    },
}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec = load_spec(write_spec(Path(tmp), DOC))
    op = compile_operation(spec, spec.operations[0], ContractLimits())
    lines = [
        {
            "sku": f"ABC-{i:04d}",
            "qty": i % 9 + 1,
            "price": 9.99 + i,
            "title": f"Widget number {i} deluxe edition",
            "gift": i % 2 == 0,
        }
        for i in range(14)
    ]
    order = {
        "customer": "123e4567-e89b-12d3-a456-426614174000",
        "currency": "EUR",
        "lines": lines,
        "note": "leave at the door",
        "deliver_at": "2025-01-02T10:00:00Z",
        "contact": {
            "email": "ada@example.com",
            "phone": "+47 555 0100",
            "address": {"street": "1 Main St", "city": "Oslo", "zip": "0150"},
        },
    }
    body = json.dumps(order).encode()
    response = {**order, "id": "123e4567-e89b-12d3-a456-426614174001"}
    clean = json.dumps(response).encode()
    dirty = json.dumps(
        {**response, "internal_margin": 0.3, "lines": [{**line, "cost": 1.0} for line in lines]}
    ).encode()

    def request() -> None:
        op.validate_request(
            path_params={"shop_id": "42"}, query_string=b"dry_run=false", headers=JSON, body=body
        )

    runs = {
        "baseline: orjson.loads + orjson.dumps": lambda: orjson.dumps(orjson.loads(dirty)),
        "baseline: json.loads (stdlib)": lambda: json.loads(body),
        "validate_request": request,
        "filter_response (clean, passthrough)": lambda: op.filter_response(
            201, "application/json", clean
        ),
        "filter_response (15 fields removed)": lambda: op.filter_response(
            201, "application/json", dirty
        ),
    }
    print(f"request body {len(body)} B, clean response {len(clean)} B, dirty {len(dirty)} B")
    # Interleaved rounds, best of each: on a shared machine every call sees the same load.
    best = dict.fromkeys(runs, float("inf"))
    number = 300
    for _ in range(30):
        for name, fn in runs.items():
            best[name] = min(best[name], timeit.timeit(fn, number=number) / number)
    for name, seconds in best.items():
        print(f"{name:40s} {seconds * 1e6:8.1f} µs/call")
    _bench_row_bodies()


def _bench_row_bodies() -> None:
    """The same two calls on the bodies of the bench's validation row (bench/fixtures.py)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import fixtures  # the bench's module: spec, 2 KB request, answer with 13 extra fields

    with tempfile.TemporaryDirectory() as tmp:
        spec = load_spec(write_spec(Path(tmp), fixtures.openapi_spec("http://127.0.0.1:1")))
    op = compile_operation(spec, spec.operations[0], ContractLimits())
    body = orjson.dumps(fixtures.order_request())
    answer = orjson.dumps(fixtures.order_response())
    runs = {
        "bench row: validate_request": lambda: op.validate_request(
            path_params={}, query_string=b"", headers=JSON, body=body
        ),
        "bench row: filter_response (13 removed)": lambda: op.filter_response(
            200, "application/json", answer
        ),
    }
    print(f"bench row bodies: request {len(body)} B, answer {len(answer)} B")
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(20):
        for name, fn in runs.items():
            best[name] = min(best[name], timeit.timeit(fn, number=300) / 300)
    for name, seconds in best.items():
        print(f"{name:40s} {seconds * 1e6:8.1f} µs/call")


if __name__ == "__main__":
    main()
