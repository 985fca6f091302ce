"""The JWT attack matrix (RFC 8725, jwt_tool classes) through a real gateway process.

Every attack must be refused with one 401 invalid_token, the upstream must receive nothing,
no outbound fetch may happen (jku/x5u), and each refusal leaves an audit event with the
precise reason.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.keys import AUDIENCE, ISSUER, KeyIssuer, make_issuer
from tests.support.procs import GatewayProc, Upstream, dev_config, free_port, run_gateway
from tests.vectors.jwt_attacks import attack_tokens, expected_reason


class HitCounter:
    """A listener that counts connections: jku/x5u must never make the gateway connect."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hits = 0
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self._sock.close()


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> KeyIssuer:
    return make_issuer(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def listener() -> Iterator[HitCounter]:
    counter = HitCounter()
    yield counter
    counter.close()


@pytest.fixture(scope="module")
def jwt_gateway(
    upstream: Upstream, issuer: KeyIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProc]:
    routes = """
      - {path: /echo, methods: [GET, POST], allow: authenticated}
"""
    config = dev_config(upstream.url, extra=issuer.config(), routes=routes)
    with run_gateway(config, tmp_path_factory.mktemp("jwtgw")) as gw:
        yield gw


def call(
    gw: GatewayProc, headers: dict[str, str], path: str = "/echo"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_valid_token_passes(
    jwt_gateway: GatewayProc, issuer: KeyIssuer, upstream: Upstream
) -> None:
    status, _, body = call(jwt_gateway, {"Authorization": f"Bearer {issuer.token('u-1', [])}"})
    assert status == 200
    received = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert received["x-bastion-subject"] == "u-1"


def test_every_attack_is_refused_and_never_reaches_upstream(
    jwt_gateway: GatewayProc, issuer: KeyIssuer, upstream: Upstream, listener: HitCounter
) -> None:
    cases = attack_tokens(
        issuer.key,
        issuer.public_pem,
        issuer.public_jwk,
        ISSUER,
        AUDIENCE,
        issuer.kid,
        time.time(),
        attacker_url=f"http://127.0.0.1:{listener.port}/jwks.json",
    )
    assert len(cases) >= 40
    request_ids = []
    for name, token in cases:
        status, headers, body = call(jwt_gateway, {"Authorization": f"Bearer {token}"})
        assert status == 401, name
        assert headers["www-authenticate"] == 'Bearer error="invalid_token"', name
        problem = json.loads(body)
        assert problem["code"] == "invalid_token", name
        assert "detail" not in problem, name  # the precise reason never reaches the client
        request_ids.append(headers["x-request-id"])
    assert upstream.received() == []
    assert listener.hits == 0
    for (name, _), request_id in zip(cases, request_ids, strict=True):
        event = jwt_gateway.event_for(request_id)
        assert event["status"] == 401
        assert event["reason"] == expected_reason(name, issuer.key), name
        assert event["decision"] == "deny"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "auth.missing"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "auth.unsupported_scheme"),
        ({"Authorization": "Bearer"}, "auth.empty_credential"),
    ],
)
def test_missing_or_wrong_scheme_is_401(
    jwt_gateway: GatewayProc, upstream: Upstream, headers: dict[str, str], reason: str
) -> None:
    status, response_headers, _ = call(jwt_gateway, headers)
    assert status == 401
    assert response_headers["www-authenticate"].startswith("Bearer")
    assert jwt_gateway.event_for(response_headers["x-request-id"])["reason"] == reason
    assert upstream.received() == []


def test_token_in_query_string_is_never_accepted(
    jwt_gateway: GatewayProc, issuer: KeyIssuer, upstream: Upstream
) -> None:
    token = issuer.token("u-1", [])
    status, _, _ = call(jwt_gateway, {}, path=f"/echo?access_token={token}")
    assert status == 401
    assert upstream.received() == []
    assert token not in jwt_gateway.audit.read_text()


def test_two_authorization_headers_refused(
    jwt_gateway: GatewayProc, issuer: KeyIssuer, upstream: Upstream
) -> None:
    from tests.support.rawhttp import raw_request

    token = issuer.token("u-1", [])
    raw = (
        f"GET /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    ).encode()
    response = raw_request(jwt_gateway.port, raw)
    assert response is not None
    assert response.status == 401
    assert upstream.received() == []


def test_scheme_is_case_insensitive(jwt_gateway: GatewayProc, issuer: KeyIssuer) -> None:
    status, _, _ = call(jwt_gateway, {"Authorization": f"bEaReR {issuer.token('u-1', [])}"})
    assert status == 200
