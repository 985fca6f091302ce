"""Helpers for the end-to-end rate-limiting tests: configs, calls, audit events by request
id, a private redis-server, starting processes in parallel."""

from __future__ import annotations

import http.client
import json
import secrets
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import services_required
from tests.support.procs import GatewayProc, free_port, stop, wait_for_port

REDIS_SERVER = "/usr/bin/redis-server"
T = TypeVar("T")


def config(
    upstream_url: str, routes: str, *, extra: str = "", api_extra: str = "", read: float = 30
) -> str:
    """A development-mode gateway config (plain HTTP on loopback) for the test upstream.

    Timeouts are generous: hundreds of concurrent requests on a loaded 2-core machine must
    not turn into 504s, which would blur what these tests count.
    """
    return f"""version: 1
mode: development
audit: {{sink: file, path: "{{AUDIT}}"}}
{extra}
upstreams:
  echo:
    url: {upstream_url}
    timeout: {{connect: 5, read: {read}, total: {read}}}
apis:
  - name: echo
    upstream: echo
{api_extra}
    routes:{routes}
"""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: Any = None,
    timeout: float = 10.0,
    source: str | None = None,
) -> Answer:
    """One request on its own connection; header names come back lower-cased.

    ``source`` binds the client socket to another loopback address (127.0.0.0/8), so the
    gateway sees a different peer IP.
    """
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0) if source else None
    )
    sent = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()


def audit_event(gw: GatewayProc, request_id: str, deadline: float = 10.0) -> dict[str, Any]:
    """The audit event of one request (written after the response is sent: poll for it)."""
    end = time.monotonic() + deadline
    while True:
        for event in gw.audit_events(at_least=0, timeout=0):
            if event.get("request_id") == request_id:
                return event
        if time.monotonic() > end:
            raise AssertionError(f"no audit event for request {request_id}")
        time.sleep(0.05)


def traced(
    gw: GatewayProc, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
) -> tuple[Answer, dict[str, Any]]:
    """Call ``path`` with a fresh X-Request-ID; return the answer and its audit event."""
    request_id = "rl-e2e-" + secrets.token_hex(8)
    answer = call(gw.port, path, headers={**(headers or {}), "X-Request-ID": request_id}, **kwargs)
    return answer, audit_event(gw, request_id)


def poll(check: Callable[[], bool], deadline: float, what: str) -> None:
    """Wait until ``check()`` is true, failing with ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"still not {what} after {deadline} s")
        time.sleep(0.05)


def need_redis_server() -> None:
    """Skip (or, with BASTION_REQUIRE_SERVICES=1, fail) when redis-server is not installed."""
    if Path(REDIS_SERVER).exists():
        return
    message = f"{REDIS_SERVER} is not installed"
    if services_required():
        pytest.fail(f"{message} and BASTION_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


class PrivateRedis:
    """A redis-server of our own on a free port (never the machine's Redis on 6379)."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc, timeout=20)

    def kill(self) -> None:
        """Stop it hard, as a crash would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


def enter_together(stack: ExitStack, *managers: AbstractContextManager[T]) -> list[T]:
    """Enter context managers (process starters) in parallel threads: starting several
    Python processes one after another is most of these tests' run time. Every manager
    that started is registered on ``stack``; then the first failure, if any, is raised."""
    with ThreadPoolExecutor(max_workers=len(managers)) as pool:
        futures = [pool.submit(manager.__enter__) for manager in managers]
    failures = [error for f in futures if (error := f.exception()) is not None]
    for manager, future in zip(managers, futures, strict=True):
        if future.exception() is None:
            stack.push(manager.__exit__)
    if failures:
        raise failures[0]
    return [future.result() for future in futures]
