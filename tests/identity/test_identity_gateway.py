"""End to end: the demo identity behind a real gateway. A gateway configured with this
service as issuer (discovery only, no key setup) accepts its tokens and refuses them at
once after revocation (RFC 7009) or logout, through the IdentityEvents bridge."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import uvicorn

from bastion.demo.runner import AUDIENCE, demo_config
from bastion.demo.shop import create_shop_app
from bastion.gateway.app import Gateway
from bastion.gateway.server import create_gateway
from bastion.identity.app import create_identity_app
from bastion.identity.demo import DemoIdentity, prepare_demo_identity
from tests.conftest import free_port
from tests.identity.harness import basic, form_fields, pkce_pair

pytestmark = pytest.mark.rfc("7009-2")


class Bridge:
    def __init__(self) -> None:
        self.gateway: Gateway | None = None

    async def token_revoked(self, jti: str, exp: float) -> None:
        assert self.gateway is not None
        await self.gateway.runtime.services.store.revoke_token(jti, exp)

    async def subject_revoked(self, subject: str, not_before: float) -> None:
        assert self.gateway is not None
        await self.gateway.runtime.services.store.revoke_subject(subject, not_before)


@dataclass
class Stack:
    identity: DemoIdentity
    issuer: str
    gateway_url: str
    http: aiohttp.ClientSession


async def _serve(app: Any, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    return server, task


@contextlib.asynccontextmanager
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    id_port, shop_port, gw_port = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{id_port}"
    identity = await prepare_demo_identity(tmp_path, issuer, audiences=[AUDIENCE])
    bridge = Bridge()
    servers = [await _serve(create_shop_app(), shop_port)]
    servers.append(await _serve(create_identity_app(identity.settings, events=bridge), id_port))
    config = tmp_path / "gateway.yaml"
    # The demo config takes its admin credential from the environment, as `bastion demo` does.
    os.environ.setdefault("BASTION_DEMO_ADMIN_TOKEN", secrets.token_urlsafe(32))
    config.write_text(
        demo_config(
            shop_url=f"http://127.0.0.1:{shop_port}",
            issuer=issuer,
            state_dir=tmp_path,
            port=gw_port,
            admin_port=free_port(),
        )
    )
    gateway = create_gateway(config)
    bridge.gateway = gateway
    servers.append(await _serve(gateway, gw_port))
    try:
        async with aiohttp.ClientSession() as http:
            yield Stack(identity, issuer, f"http://127.0.0.1:{gw_port}", http)
    finally:
        for server, _ in servers:
            server.should_exit = True
        await asyncio.gather(*(task for _, task in servers))
        await identity.close()


async def _code_flow_token(s: Stack) -> tuple[dict[str, Any], dict[str, str]]:
    """alice logs in through the real login page; returns tokens and the browser cookies."""
    client = s.identity.clients["demo"]
    verifier, challenge = pkce_pair()
    redirect = "http://127.0.0.1:8765/callback"
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": redirect,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": AUDIENCE,
        }
    )
    cookies: dict[str, str] = {}

    def absorb(resp: aiohttp.ClientResponse) -> None:
        for header in resp.headers.getall("set-cookie", []):
            name, _, rest = header.partition("=")
            cookies[name] = rest.split(";", 1)[0]

    def cookie_header() -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}

    async with s.http.get(f"{s.issuer}/authorize?{query}", allow_redirects=False) as resp:
        absorb(resp)
        fields = form_fields(await resp.text())
    login = [*fields, ("username", "alice"), ("password", s.identity.users["alice"])]
    async with s.http.post(
        f"{s.issuer}/authorize", data=login, headers=cookie_header(), allow_redirects=False
    ) as resp:
        assert resp.status == 303, await resp.text()
        absorb(resp)
        code = dict(p.split("=", 1) for p in resp.headers["Location"].split("?", 1)[1].split("&"))
    form = {
        "grant_type": "authorization_code",
        "code": code["code"],
        "redirect_uri": redirect,
        "code_verifier": verifier,
    }
    async with s.http.post(
        f"{s.issuer}/token", data=form, headers=basic(client["client_id"], client["client_secret"])
    ) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json()), cookies


async def _order(s: Stack, token: str) -> int:
    async with s.http.get(
        f"{s.gateway_url}/v2/orders/o-1001", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        return resp.status


async def test_revoked_and_logged_out_tokens_are_refused_at_the_gateway(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        minted = await s.identity.token_for("alice", AUDIENCE)
        assert await _order(s, minted) == 200

        tokens, _ = await _code_flow_token(s)
        assert await _order(s, tokens["access_token"]) == 200
        client = s.identity.clients["demo"]
        async with s.http.post(
            f"{s.issuer}/revoke",
            data={"token": tokens["access_token"]},
            headers=basic(client["client_id"], client["client_secret"]),
        ) as resp:
            assert resp.status == 200
        assert await _order(s, tokens["access_token"]) == 401

        tokens, cookies = await _code_flow_token(s)
        assert await _order(s, tokens["access_token"]) == 200
        header = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
        async with s.http.get(f"{s.issuer}/logout", headers=header) as resp:
            csrf = dict(form_fields(await resp.text()))["csrf_token"]
        async with s.http.post(
            f"{s.issuer}/logout", data={"csrf_token": csrf}, headers=header
        ) as resp:
            assert resp.status == 200
        assert await _order(s, tokens["access_token"]) == 401
        assert await _order(s, minted) == 200  # other sessions are untouched


async def test_demo_identity_is_idempotent(tmp_path: Path) -> None:
    first = await prepare_demo_identity(tmp_path, "http://127.0.0.1:1")
    second = await prepare_demo_identity(tmp_path, "http://127.0.0.1:1")
    assert (
        first.users
        == second.users
        == {
            "alice": "alice-demo-password-2026",
            "bob": "bob-demo-password-2026",
            "admin": "admin-demo-password-2026",
            "mallory": "mallory-demo-password-2026",
        }
    )
    assert first.clients["demo"]["client_id"] == second.clients["demo"]["client_id"]
    token = await second.token_for("admin", "api://demo")
    await second.close()
    assert token.count(".") == 2
    assert (tmp_path / "identity-secret.key").stat().st_mode & 0o077 == 0
