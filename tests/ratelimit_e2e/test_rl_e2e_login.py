"""Password brute force against the demo shop's login behind a real gateway.

The shop's OpenAPI document marks ``POST /v2/login`` with ``x-bastion-login`` (and per-IP
and per-username rate limits); the gateway config tightens the login policy for the test
(3 failures, no backoff before the lockout) through a YAML route override. The shop itself
knows nothing about brute force: every protection seen here is the gateway's.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from bastion.demo import SHOP_OPENAPI_PATH
from tests.ratelimit_e2e.rl_support import Answer, traced
from tests.support.keys import make_issuer
from tests.support.procs import GatewayProc, run_gateway, run_shop

ALICE_PASSWORD = "alice-demo-password-2026"
BOB_PASSWORD = "bob-demo-password-2026"
MAX_FAILURES = 3


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    tmp = tmp_path_factory.mktemp("rl-login")
    issuer = make_issuer(tmp)
    with run_shop(tmp) as shop_url:
        config = f"""version: 1
mode: development
audit: {{sink: file, path: "{{AUDIT}}"}}
{issuer.config()}
upstreams:
  shop:
    url: {shop_url}
    timeout: {{connect: 5, read: 30, total: 30}}
apis:
  - name: shop-v2
    upstream: shop
    openapi: "{SHOP_OPENAPI_PATH}"
    paths: ["/v2/*"]
    routes:
      - path: /v2/login
        methods: [POST]
        login: {{max_failures: {MAX_FAILURES}, base_delay: 0, lockout: 900}}
"""
        with run_gateway(config, tmp) as gw:
            yield gw


def login(gw: GatewayProc, username: str, password: str) -> tuple[Answer, dict[str, Any]]:
    return traced(gw, "/v2/login", method="POST", body={"username": username, "password": password})


def wrong() -> str:
    return "wrong-" + secrets.token_hex(6)


def test_lockout_refuses_even_the_right_password(gateway: GatewayProc) -> None:
    # bob is unaffected by alice's lockout, before and after.
    assert login(gateway, "bob", BOB_PASSWORD)[0].status == 200
    for attempt in range(1, MAX_FAILURES + 1):
        answer, event = login(gateway, "alice", wrong())
        assert answer.status == 401
        assert event["login_failures"] == attempt
        assert event["login"] == ("lockout" if attempt == MAX_FAILURES else "failure")
    locked, event = login(gateway, "alice", ALICE_PASSWORD)
    assert locked.status == 429
    assert locked.headers["content-type"] == "application/problem+json"
    retry_after = int(locked.headers["retry-after"])
    assert 800 < retry_after <= 900  # the lockout window, not a short backoff
    assert event["login"] == "locked"
    assert event["reason"] == "login.locked"
    assert event["upstream"] is None  # the password never reached the shop
    # The username is case-folded: "ALICE " is the same account.
    assert login(gateway, "ALICE ", ALICE_PASSWORD)[0].status == 429
    assert login(gateway, "bob", BOB_PASSWORD)[0].status == 200
    audit = gateway.audit.read_text()
    assert ALICE_PASSWORD not in audit
    assert BOB_PASSWORD not in audit


def test_unknown_username_gets_the_same_answers(gateway: GatewayProc) -> None:
    """Lockout does not reveal which accounts exist: same statuses, same bodies."""

    def sequence(username: str, right: str) -> list[tuple[int, dict[str, Any], str]]:
        answers = [login(gateway, username, wrong())[0] for _ in range(MAX_FAILURES)]
        answers.append(login(gateway, username, right)[0])
        return [(a.status, _body(a), a.headers["content-type"]) for a in answers]

    known = sequence("admin", "admin-demo-password-2026")
    unknown = sequence("nobody-" + secrets.token_hex(4), "admin-demo-password-2026")
    assert known == unknown
    assert [status for status, _, _ in known] == [401] * MAX_FAILURES + [429]


def _body(answer: Answer) -> dict[str, Any]:
    body = answer.json()
    assert isinstance(body, dict)
    body.pop("request_id", None)
    return body
