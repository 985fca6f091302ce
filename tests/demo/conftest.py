"""Fixtures for the demo shop: the app served by a real uvicorn on a loopback port."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette

from bastion.demo import create_shop_app
from tests.conftest import free_port


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass(frozen=True)
class ShopClient:
    """A tiny HTTP/1.1 client over a real socket; ``as_user`` plays the gateway's headers."""

    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        as_user: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        payload = raw
        if body is not None:
            payload = json.dumps(body).encode()
        if payload is not None:
            sent.setdefault("Content-Type", "application/json")
        if as_user is not None:
            sent["X-Bastion-Subject"], sent["X-Bastion-Roles"] = as_user
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, body=payload, headers=sent)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()


def _serve(app: Starlette) -> Iterator[ShopClient]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="critical", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="demo-shop", daemon=True)
    thread.start()
    ready = threading.Event()
    for _ in range(500):
        if server.started:
            ready.set()
            break
        ready.wait(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield ShopClient("127.0.0.1", port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def shop() -> Iterator[ShopClient]:
    """A freshly seeded shop per test (state is in memory, per process)."""
    yield from _serve(create_shop_app())


@pytest.fixture(scope="module")
def shared_shop() -> Iterator[ShopClient]:
    """One seeded shop for a whole module (fuzzing)."""
    yield from _serve(create_shop_app())
