"""What the contract policy puts in the audit event for a filtered response."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from bastion.policies.contract import MAX_AUDITED_REMOVALS, ContractPolicy
from bastion.types import RequestContext, UpstreamResponse
from tests.contract.contract_helpers import contract, minimal, write_spec
from tests.support.context import request_context

ITEM = {"type": "object", "properties": {"id": {"type": "integer"}}}
SPEC = minimal(
    {
        "/items": {
            "get": {
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {
                            "application/json": {"schema": {"type": "array", "items": ITEM}}
                        },
                    }
                }
            }
        }
    }
)


def _filtered(tmp_path: Path, count: int) -> tuple[RequestContext, UpstreamResponse]:
    policy = ContractPolicy(contract(write_spec(tmp_path, SPEC), "GET", "/items"))
    ctx = request_context(path="/items", client_ip="127.0.0.1")
    body = orjson.dumps([{"id": i, "cost": 1.5} for i in range(count)])
    response = UpstreamResponse(200, [("content-type", "application/json")], body)
    asyncio.run(policy.on_response(ctx, response))
    return ctx, response


def test_every_removed_field_is_named_when_there_are_few(tmp_path: Path) -> None:
    ctx, response = _filtered(tmp_path, 3)
    assert ctx.audit["fields_removed"] == ["/0/cost", "/1/cost", "/2/cost"]
    assert "fields_removed_total" not in ctx.audit
    assert orjson.loads(response.body or b"") == [{"id": 0}, {"id": 1}, {"id": 2}]


def test_a_long_leaky_array_names_the_first_removals_and_counts_them_all(tmp_path: Path) -> None:
    count = MAX_AUDITED_REMOVALS * 50
    ctx, response = _filtered(tmp_path, count)
    assert len(ctx.audit["fields_removed"]) == MAX_AUDITED_REMOVALS
    assert ctx.audit["fields_removed"][0] == "/0/cost"
    assert ctx.audit["fields_removed_total"] == count
    assert b"cost" not in (response.body or b"")  # every one of them is still removed
