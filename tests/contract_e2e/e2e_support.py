"""Shared helpers for the end-to-end contract tests: a small HTTP client and the shop setup.

Everything goes through real sockets: the demo shop (naive on purpose) runs under granian,
the gateway runs as ``bastion gateway`` in front of it, configured with the shop's OpenAPI
document. Gateway refusals are told from upstream answers by their body: the gateway answers
``application/problem+json`` with a ``code``; the shop answers ``{"error": ..., "message": ...}``.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from bastion.demo import SHOP_OPENAPI_PATH
from tests.support.procs import GatewayProc

PROBLEM = "application/problem+json"
CONTRACT_CODES = frozenset({"validation_failed", "unsupported_media_type"})
_ips = itertools.count(1)
_ip_lock = threading.Lock()


def next_client_ip() -> str:
    """A fresh client address (10.x.y.z) for X-Forwarded-For: per-IP limits never mix tests."""
    with _ip_lock:
        n = next(_ips)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def shop_config(shop_url: str, issuer_config: str) -> str:
    """The gateway config used by these tests: the shop behind its own spec.

    The login route keeps its contract but gets generous brute-force settings (base delay 0,
    1 s lockout after 100 failures): the property tests send many logins with generated
    usernames, and a lockout answer (429) comes before the contract, which would hide it.
    The loopback peer is a trusted proxy so each test request can carry its own client IP.
    """
    return f"""version: 1
mode: development
trusted_proxies: ["127.0.0.1/32"]
audit: {{sink: file, path: "{{AUDIT}}"}}
{issuer_config}
upstreams:
  shop:
    url: {shop_url}
    timeout: {{connect: 2, read: 10, total: 15}}
apis:
  - name: shop-v2
    upstream: shop
    openapi: "{SHOP_OPENAPI_PATH}"
    paths: ["/v2/*", "/health"]
    routes:
      - path: /v2/login
        methods: [POST]
        public: true
        rate_limit: [{{key: ip, limit: 100000/minute}}]
        login: {{max_failures: 100, base_delay: 0, max_delay: 0, lockout: 1}}
  - name: shop-v1
    upstream: shop
    openapi: "{SHOP_OPENAPI_PATH}"
    paths: ["/v1/*"]
"""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None

    @property
    def problem_code(self) -> str | None:
        """The gateway's machine code when this is a gateway problem document, else None."""
        if not self.content_type.startswith(PROBLEM):
            return None
        code = self.json.get("code")
        return str(code) if code is not None else None

    @property
    def contract_refusal(self) -> bool:
        """A 400/415 from the gateway's contract (not an answer of the upstream)."""
        return self.status in (400, 415) and self.problem_code in CONTRACT_CODES

    @property
    def from_upstream(self) -> bool:
        """The shop's own answers are plain JSON (or empty for 204), never problem+json."""
        return not self.content_type.startswith(PROBLEM)

    def describe(self) -> str:
        return f"{self.status} {self.content_type} {self.raw[:600]!r}"


class Client:
    """One keep-alive HTTP/1.1 connection to the gateway (not thread-safe: one per thread)."""

    def __init__(self, port: int, token: str | None = None, timeout: float = 10.0) -> None:
        self.port, self.token, self.timeout = port, token, timeout
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Answer:
        all_headers = {"X-Forwarded-For": next_client_ip()}
        bearer = token or self.token
        if bearer:
            all_headers["Authorization"] = f"Bearer {bearer}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            content_type = content_type or "application/json"
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        all_headers.update(headers or {})
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout
                )
            try:
                self._conn.request(method, path, body=body, headers=all_headers)
                response = self._conn.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A keep-alive connection the server closed between requests: reconnect once.
                self.close()
                if attempt == 2:
                    raise
                continue
            except BaseException:
                self.close()  # never leave a half-used socket behind (ResourceWarning)
                raise
            answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, raw)
            if response.will_close:
                self.close()
            return answer
        raise AssertionError("unreachable")


def read_audit(gw: GatewayProc) -> list[dict[str, Any]]:
    """Every complete audit event so far.

    Lines are split on ``\n`` only: an event may carry U+2028, U+2029 or U+0085 unescaped
    (valid JSON, e.g. a naughty path), which ``str.splitlines`` would also split on.
    """
    if not gw.audit.exists():
        return []
    lines = gw.audit.read_bytes().split(b"\n")
    return [json.loads(line) for line in lines if line.endswith(b"}")]


def audit_event(gw: GatewayProc, answer: Answer, timeout: float = 5.0) -> dict[str, Any]:
    """The audit event of the request that got ``answer`` (written just after the answer)."""
    request_id = answer.headers.get("x-request-id") or (answer.json or {}).get("request_id")
    assert request_id, answer.describe()
    deadline = time.monotonic() + timeout
    while True:
        for event in reversed(read_audit(gw)):
            if event.get("request_id") == request_id:
                return dict(event)
        if time.monotonic() > deadline:
            raise AssertionError(f"no audit event for request {request_id}")
        time.sleep(0.02)
