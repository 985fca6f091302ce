"""The contract policy runs after every policy that reads request fields.

It does not hand its parsed body on (``ctx.json_body``): a document of every request in
flight, kept until its answer, cost CPU in cache misses and late frees. That is only free
of a second parse because the readers (rate limit, login, owner rules) come before it.
"""

from __future__ import annotations

import json
from pathlib import Path

from bastion.gateway.server import create_gateway
from bastion.policies.contract import ContractPolicy
from bastion.policies.request_fields import json_body
from tests.support.context import request_context
from tests.support.keys import make_issuer

SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/orders": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "customer": {"type": "string"},
                                    "username": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {"200": {"description": "ok"}},
            }
        }
    },
}


def _config(tmp_path: Path) -> Path:
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    issuer = make_issuer(tmp_path)
    path = tmp_path / "bastion.yaml"
    path.write_text(
        f"""version: 1
mode: development
{issuer.config()}upstreams:
  up: {{url: "http://127.0.0.1:9", timeout: {{connect: 1, read: 1, total: 1}}}}
apis:
  - name: shop
    upstream: up
    openapi: spec.json
    routes:
      - path: /orders
        methods: [POST]
        allow: authenticated
        rate_limit: [{{key: body.customer, limit: 10/second}}]
        login: {{username: body.username}}
        owner: {{request: body.customer, equals: principal.sub}}
"""
    )
    return path


def test_every_request_field_reader_comes_before_the_contract(tmp_path: Path) -> None:
    gateway = create_gateway(_config(tmp_path))
    policies = list(gateway.runtime.router.match("POST", "/orders").target.request_policies)
    contract = next(i for i, p in enumerate(policies) if isinstance(p, ContractPolicy))
    readers = [
        i
        for i, p in enumerate(policies)
        if p.needs_request_body and not isinstance(p, ContractPolicy)
    ]
    assert len(readers) == 3  # rate limit, login and owner rule, each reading the body
    assert max(readers) < contract


def test_a_reader_after_the_contract_still_gets_the_body(tmp_path: Path) -> None:
    gateway = create_gateway(_config(tmp_path))
    target = gateway.runtime.router.match("POST", "/orders").target
    contract = next(p for p in target.request_policies if isinstance(p, ContractPolicy))
    body = b'{"customer": "u-1", "username": "ada"}'
    ctx = request_context(
        method="POST", path="/orders", headers=[("content-type", "application/json")], body=body
    )
    assert contract.on_request_now(ctx) is None  # valid: nothing to answer
    assert not ctx.json_parsed  # not handed on...
    assert json_body(ctx) == {"customer": "u-1", "username": "ada"}  # ...read when asked
