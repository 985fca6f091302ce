"""Authorization never decides on something the upstream reads differently.

A real gateway (owner rules, roles) in front of ``tests.support.framework_upstream``, which
reads requests the way common frameworks do. Each case is a way to make the gateway
authorize one thing while the upstream acts on another; each is refused, and a refused
request never reaches the upstream.
"""

from __future__ import annotations

import http.client
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.keys import KeyIssuer, make_issuer
from tests.support.procs import free_port, run_gateway, serving

ROUTES = """
      - path: /orders/{order_id}
        methods: [GET]
        allow: {roles: [customer]}
        owner: {response: body.owner, equals: principal.sub}
      - path: /orders
        methods: [GET]
        allow: {roles: [customer]}
        owner_list: {items: body, field: owner, equals: principal.sub, mode: deny}
      - {path: "/orders/{order_id}", methods: [POST], allow: {roles: [customer]}}
      - {path: "/orders/{order_id}", methods: [DELETE], allow: {roles: [admin]}}
      - path: /transfers
        methods: [POST]
        allow: {roles: [customer]}
        owner: {request: body.account, equals: principal.sub}
      - path: /statements
        methods: [GET]
        allow: {roles: [customer]}
        owner: {request: query.account, equals: principal.sub}"""


@dataclass
class Env:
    port: int
    bob: str
    log: Path

    def call(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> tuple[int, str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            sent = {"Authorization": f"Bearer {self.bob}"}
            sent.update({k.replace("_", "-"): v for k, v in headers.items()})
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return (
                response.status,
                response.getheader("content-type") or "",
                response.read().decode(),
            )
        finally:
            conn.close()

    def received(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("authz-diff")
    issuer: KeyIssuer = make_issuer(tmp)
    port, log = free_port(), tmp / "upstream.jsonl"
    log.write_text("")
    argv = [sys.executable, "-m", "tests.support.framework_upstream", str(port), str(log)]
    with serving(argv, port, tmp / "upstream.stderr"):
        config = f"""version: 1
mode: development
audit: {{sink: file, path: "{{AUDIT}}"}}
{issuer.config()}
upstreams:
  app:
    url: http://127.0.0.1:{port}
apis:
  - name: app
    upstream: app
    routes:{ROUTES}
"""
        with run_gateway(config, tmp) as gw:
            yield Env(gw.port, issuer.token("u-bob", ["customer"]), log)


def test_controls_the_owner_rules_hold_in_the_plain_case(env: Env) -> None:
    assert env.call("GET", "/orders/2")[0] == 200
    assert env.call("GET", "/orders/1")[0] == 404
    assert env.call("GET", "/orders")[0] == 403


@pytest.mark.parametrize(("path", "accept"), [("/orders/1", "text/html"), ("/orders", "text/csv")])
def test_an_answer_the_owner_rule_cannot_read_is_refused(env: Env, path: str, accept: str) -> None:
    """The upstream negotiates HTML or CSV: the object inside was never checked."""
    status, content_type, body = env.call("GET", path, Accept=accept)
    assert status == 502
    assert content_type == "application/problem+json"
    assert "ALICE" not in body


def test_a_foreign_object_and_a_missing_one_answer_alike(env: Env) -> None:
    foreign = env.call("GET", "/orders/1", x_request_id="same-answer-0001")
    missing = env.call("GET", "/orders/404", x_request_id="same-answer-0001")
    assert foreign[0] == missing[0] == 404
    assert foreign == missing  # status, media type and body, byte for byte


def test_head_is_refused_where_the_owner_is_checked_on_the_answer(env: Env) -> None:
    before = len(env.received())
    status, _, _ = env.call("HEAD", "/orders/1")
    assert status == 405
    assert len(env.received()) == before  # never forwarded


def test_a_form_body_is_read_as_a_form(env: Env) -> None:
    """A body that is both JSON and a form, sent as a form: the gateway reads what the
    upstream reads (account=alice), and refuses."""
    before = len(env.received())
    polyglot = b'{"account":"u-bob","memo":"&account=u-alice&"}'
    status, _, _ = env.call(
        "POST", "/transfers", polyglot, content_type="application/x-www-form-urlencoded"
    )
    assert status == 404
    assert len(env.received()) == before


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"account":"u-bob","Account":"u-alice"}', "application/json", 400),
        (b'{"account":"u-bob","account":"u-alice"}', "application/json", 400),
        (b"account=u-bob&account=u-alice", "application/x-www-form-urlencoded", 400),
        (b'{"account":"u-bob"}', "text/plain", 415),
        (b'{"account":"u-bob",}', "application/json", 400),
    ],
)
def test_a_body_field_the_upstream_could_read_differently_is_refused(
    env: Env, body: bytes, content_type: str, status: int
) -> None:
    before = len(env.received())
    assert env.call("POST", "/transfers", body, content_type=content_type)[0] == status
    assert len(env.received()) == before


def test_own_transfer_passes_as_json_and_as_a_form(env: Env) -> None:
    ok = env.call("POST", "/transfers", b'{"account":"u-bob"}', content_type="application/json")
    assert ok[0] == 200
    form = env.call(
        "POST", "/transfers", b"account=u-bob", content_type="application/x-www-form-urlencoded"
    )
    assert form[0] == 200
    assert [r["account"] for r in env.received()[-2:]] == ["u-bob", "u-bob"]


@pytest.mark.parametrize(
    "query", ["account=u-bob&x=1;account=u-alice", "account=u-bob;account=u-alice"]
)
def test_a_query_field_split_differently_on_semicolons_is_refused(env: Env, query: str) -> None:
    before = len(env.received())
    assert env.call("GET", f"/statements?{query}")[0] == 400
    assert len(env.received()) == before
    assert env.call("GET", "/statements?account=u-bob")[0] == 200


def test_method_override_headers_never_reach_the_upstream(env: Env) -> None:
    """POST is allowed for customers, DELETE only for admins: a POST saying it is a DELETE
    stays a POST upstream."""
    for header in ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"):
        status, _, body = env.call("POST", "/orders/1", b"", **{header.replace("-", "_"): "DELETE"})
        assert status == 200
        assert json.loads(body) == {"effective_method": "POST"}
