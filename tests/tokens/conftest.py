"""Fixtures for the token tests: keys, key files, a fake clock, a real JWKS server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.vectors.jwt_attacks import _public_jwk

ISSUER = "https://id.example.test"
AUDIENCE = "api://orders"
NOW = 1_800_000_000.0


class FakeClock:
    """An injected clock: tests move time instead of sleeping."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class KeyPair:
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    kid: str

    @property
    def pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def jwk(self) -> dict[str, Any]:
        return _public_jwk(self.private)

    def jwk_with_kid(self, **extra: Any) -> dict[str, Any]:
        return {**self.jwk, "kid": self.kid, "use": "sig", **extra}


def make_ec(kid: str, curve: ec.EllipticCurve | None = None) -> KeyPair:
    return KeyPair(ec.generate_private_key(curve or ec.SECP256R1()), kid)


_RSA_CACHE: list[rsa.RSAPrivateKey] = []


def make_rsa(kid: str) -> KeyPair:
    if not _RSA_CACHE:
        _RSA_CACHE.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return KeyPair(_RSA_CACHE[0], kid)


def jwks_bytes(*pairs: KeyPair) -> bytes:
    return json.dumps({"keys": [p.jwk_with_kid() for p in pairs]}).encode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ec_key() -> KeyPair:
    return make_ec("ec-1")


def write_json(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value))
    return str(path)


@dataclass
class JWKSServer:
    """A real HTTP server on 127.0.0.1 serving a JWKS (and metadata), counting hits."""

    body: bytes = b'{"keys": []}'
    status: int = 200
    hits: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    base_url: str = ""

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/jwks.json"

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/.well-known/openid-configuration"

    def total(self, path: str = "/jwks.json") -> int:
        return self.hits.get(path, 0)

    async def handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        if request.path == "/jwks.json":
            return web.Response(status=self.status, body=self.body, content_type="application/json")
        if request.path == "/.well-known/openid-configuration" and self.metadata is not None:
            return web.json_response(self.metadata)
        return web.Response(status=404)


@pytest.fixture
async def jwks_server() -> AsyncIterator[JWKSServer]:
    server = JWKSServer()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.base_url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()
