"""Test helpers for the token service: a fake clock, a live server, a cookie-keeping browser."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import uvicorn
from starlette.applications import Starlette

from bastion.identity.app import create_identity_app
from bastion.identity.clients import Client
from bastion.identity.events import IdentityEvents
from bastion.identity.service import IdentityService
from bastion.identity.settings import IdentitySettings
from tests.conftest import free_port

USER_PASSWORD = "alice-demo-password-2026"


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingEvents:
    def __init__(self) -> None:
        self.revoked: list[tuple[str, float]] = []
        self.subjects: list[tuple[str, float]] = []

    async def token_revoked(self, jti: str, exp: float) -> None:
        self.revoked.append((jti, exp))

    async def subject_revoked(self, subject: str, not_before: float) -> None:
        self.subjects.append((subject, not_before))


def make_settings(port: int, db_url: str, **overrides: Any) -> IdentitySettings:
    data: dict[str, Any] = {
        "issuer": f"http://127.0.0.1:{port}",
        "mode": "development",
        "secret_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "database": {"url": db_url},
        "passwords": {"argon2": {"time_cost": 1, "memory_cost": 256, "parallelism": 1}},
        "tokens": {"client_cache_ttl": 0},
        "audit": "none",
    }
    data.update(overrides)
    return IdentitySettings.model_validate(data)


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Live:
    """A running token service on a real socket."""

    base: str
    app: Starlette
    service: IdentityService
    clock: FakeClock
    events: RecordingEvents
    http: aiohttp.ClientSession
    clients: dict[str, tuple[Client, str | None]] = field(default_factory=dict)

    async def post(
        self,
        path: str,
        data: dict[str, Any] | list[tuple[str, str]],
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.http.post(
            self.base + path, data=data, headers=headers or {}, allow_redirects=False
        ) as resp:
            text = await resp.text()
            body: Any = text
            if resp.content_type == "application/json":
                body = await resp.json()
            return resp.status, body, resp

    async def token(self, client: str, **form: str) -> tuple[int, Any]:
        entry, secret = self.clients[client]
        headers = basic(entry.client_id, secret) if secret else {}
        if secret is None:
            form.setdefault("client_id", entry.client_id)
        status, body, _ = await self.post("/token", form, headers)
        return status, body


@contextlib.asynccontextmanager
async def live_server(
    db_url: str,
    clock: FakeClock | None = None,
    events: IdentityEvents | None = None,
    **overrides: Any,
) -> AsyncIterator[Live]:
    port = free_port()
    settings = make_settings(port, db_url, **overrides)
    clock = clock or FakeClock()
    recorder = events or RecordingEvents()
    service = IdentityService(settings, events=recorder, clock=clock, keep_audit=True)
    app = create_identity_app(settings, service=service)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        async with aiohttp.ClientSession() as http:
            yield Live(settings.issuer, app, service, clock, recorder, http)  # type: ignore[arg-type]
    finally:
        server.should_exit = True
        await task
        await service.close()


class Browser:
    """Keeps cookies by hand (the service's cookies are Secure/__Host-, tests run on http)."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.cookies: dict[str, str] = {}

    def _absorb(self, resp: aiohttp.ClientResponse) -> None:
        for header in resp.headers.getall("set-cookie", []):
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in header:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def _cookie_header(self) -> dict[str, str]:
        if not self.cookies:
            return {}
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    async def get(self, path_or_url: str) -> tuple[int, str, aiohttp.ClientResponse]:
        url = path_or_url if "://" in path_or_url else self.live.base + path_or_url
        async with self.live.http.get(
            url, headers=self._cookie_header(), allow_redirects=False
        ) as resp:
            self._absorb(resp)
            return resp.status, await resp.text(), resp

    async def post(
        self, path: str, data: dict[str, str] | list[tuple[str, str]]
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.live.http.post(
            self.live.base + path, data=data, headers=self._cookie_header(), allow_redirects=False
        ) as resp:
            self._absorb(resp)
            return resp.status, await resp.text(), resp


def form_fields(html: str) -> list[tuple[str, str]]:
    """Hidden inputs of the first form on a page, as the browser would send them."""
    fields = []
    for match in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html):
        fields.append((unescape(match.group(1)), unescape(match.group(2))))
    return fields


def redirect_params(resp: aiohttp.ClientResponse) -> dict[str, str]:
    location = resp.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def login_for_code(
    live: Live,
    browser: Browser,
    client: Client,
    redirect_uri: str,
    challenge: str,
    username: str = "alice",
    password: str = USER_PASSWORD,
    **extra: str,
) -> dict[str, str]:
    """Drive the login page; returns the authorization response parameters."""
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-1",
        **extra,
    }
    from urllib.parse import urlencode

    status, html, resp = await browser.get("/authorize?" + urlencode(query))
    if status == 303:
        return redirect_params(resp)
    assert status == 200, html
    fields = [*form_fields(html), ("username", username), ("password", password)]
    status, html, resp = await browser.post("/authorize", fields)
    assert status == 303, html
    return redirect_params(resp)


@dataclass
class Seeded:
    username: str
    user_id: str
    redirect_uri: str


async def seed(live: Live, *, mfa_client: bool = False) -> Seeded:
    """A user and three clients: svc (client credentials), web (confidential), spa (public)."""
    tag = secrets.token_hex(4)
    username = f"alice{tag}"
    user = await live.service.users.add(
        username, USER_PASSWORD, roles=["customer"], now=live.clock()
    )
    redirect = "https://app.example.com/callback"
    clients = live.service.clients
    live.clients["svc"] = await clients.create(
        name="Service",
        grant_types=["client_credentials"],
        scopes=["orders:read", "orders:write"],
        audiences=["api://orders"],
        roles=["service"],
    )
    live.clients["web"] = await clients.create(
        name="Web app",
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=[redirect, "http://127.0.0.1/cb"],
        scopes=["orders:read", "profile"],
        audiences=["api://orders"],
        require_mfa=mfa_client,
    )
    live.clients["spa"] = await clients.create(
        name="Single page app",
        auth_method="none",
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=[redirect],
        scopes=["orders:read"],
        audiences=["api://orders"],
    )
    return Seeded(username, user.id, redirect)
