"""The dashboard on the admin listener: login -> session cookie, CSRF on every POST, no
external assets; in headless Chromium it shows live numbers after traffic, and a block
pressed on the page takes effect on the gateway (and an unblock lifts it)."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from bastion.config import load_config
from bastion.gateway.admin import create_admin_app
from bastion.gateway.app import Gateway
from bastion.gateway.embedded import embedded_server
from bastion.gateway.runtime import build_runtime
from bastion.observability.config import MonitoringConfig
from bastion.observability.monitor import Monitor
from tests.conftest import free_port, need_chromium
from tests.observability.harness import ObservedAudit
from tests.observability.receiver import serve
from tests.support.procs import Upstream, dev_config, run_upstream

CHROMIUM = "/usr/bin/chromium"
TOKEN = "adm-" + secrets.token_urlsafe(32)


@dataclass
class Stack:
    gateway: str
    admin: str
    monitor: Monitor


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Upstream:
    with run_upstream(tmp_path_factory.mktemp("dash-upstream")) as up:
        yield up  # type: ignore[misc]


@asynccontextmanager
async def stack(tmp: Path, upstream: Upstream) -> AsyncIterator[Stack]:
    config = tmp / "gateway.yaml"
    config.write_text(dev_config(upstream.url).replace("{AUDIT}", str(tmp / "audit.jsonl")))
    runtime = build_runtime(load_config(config))
    settings = MonitoringConfig(metrics_options={"multiprocess_dir": str(tmp / "metrics")})
    monitor = Monitor(settings, store=runtime.services.store, audit=runtime.audit)
    runtime.audit = ObservedAudit(runtime.audit, monitor)  # type: ignore[assignment]
    gateway = Gateway(runtime)
    admin = Starlette(
        routes=[
            *monitor.admin_routes(TOKEN),
            Mount("/", app=create_admin_app(lambda: gateway.runtime, TOKEN)),
        ]
    )
    port, admin_port = free_port(), free_port()
    main, side = (
        embedded_server(gateway, "127.0.0.1", port),
        embedded_server(admin, "127.0.0.1", admin_port),
    )
    side.config.lifespan = "off"
    tasks = [asyncio.create_task(main.serve()), asyncio.create_task(side.serve())]
    while not (main.started and side.started):  # noqa: ASYNC110 - uvicorn exposes a flag
        await asyncio.sleep(0.01)
    await monitor.start()
    try:
        yield Stack(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}", monitor)
    finally:
        main.should_exit = side.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        await monitor.close()


async def number(page: Any, selector: str) -> int:
    """A number the page shows, whatever the locale's digit grouping."""
    return int(re.sub(r"\D", "", await page.text_content(selector) or "") or "0")


async def traffic(base: str, ok: int, missing: int) -> list[int]:
    statuses = []
    async with aiohttp.ClientSession() as session:
        for path in ["/echo"] * ok + ["/nowhere"] * missing:
            async with session.get(base + path) as response:
                statuses.append(response.status)
    return statuses


async def test_session_cookie_csrf_and_auth_without_a_browser(
    tmp_path: Path, upstream: Upstream
) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for an IP-address host
    async with stack(tmp_path, upstream) as s, aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(s.admin + "/dashboard/api/stats") as r:
            assert r.status == 401
        async with http.get(s.admin + "/dashboard") as r:
            page = await r.text()
            assert 'name="token"' in page
            assert "default-src 'none'" in r.headers["content-security-policy"]
            assert "https://" not in page
        async with http.post(
            s.admin + "/dashboard/login", data={"token": "wrong"}, allow_redirects=False
        ) as r:
            assert r.status == 303
            assert "bastion_session" not in r.cookies
        async with http.post(
            s.admin + "/dashboard/login", data={"token": TOKEN}, allow_redirects=False
        ) as r:
            cookie = r.headers["set-cookie"]
            assert "HttpOnly" in cookie
            assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        async with http.get(s.admin + "/dashboard/api/stats") as r:
            assert r.status == 200
        body = {"kind": "ip", "value": "192.0.2.1", "ttl": 60}
        async with http.post(s.admin + "/dashboard/api/block", json=body) as r:
            assert r.status == 403  # no CSRF token
        async with http.get(s.admin + "/dashboard") as r:
            page = await r.text()
        csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        cross = {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
        async with http.post(s.admin + "/dashboard/api/block", json=body, headers=cross) as r:
            assert r.status == 403  # cross-origin
        async with http.post(
            s.admin + "/dashboard/api/block", json=body, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert r.status == 200
        blocked = s.monitor.store.mirror.is_blocked("ip", "192.0.2.1", 0.0)
        assert blocked is not None
        async with http.get(s.admin + "/metrics") as r:
            assert r.status == 200  # the session also reads the metrics
        statuses = []
        for _ in range(11):  # guessing the admin token is throttled
            async with http.post(
                s.admin + "/dashboard/login", data={"token": "guess"}, allow_redirects=False
            ) as r:
                statuses.append(r.status)
        assert statuses[:9] == [303] * 9
        assert statuses[-1] == 429


async def test_a_forged_cookie_or_csrf_token_in_any_text_is_a_refusal_not_a_500(
    tmp_path: Path, upstream: Upstream
) -> None:
    """hmac.compare_digest raises TypeError for non-ASCII str: a session cookie such as
    ``1.a.é`` (which an upstream on another port of the host could set) made /dashboard,
    /metrics and the dashboard API answer 500 with a traceback."""
    async with stack(tmp_path, upstream) as s, aiohttp.ClientSession() as http:
        forged = {"Cookie": "bastion_session=1.a.\u00e9".encode().decode("latin-1")}
        for path in ("/dashboard", "/metrics", "/dashboard/api/stats"):
            async with http.get(s.admin + path, headers=forged) as r:
                assert r.status in (200, 401), path  # the login page, or refused
        # The login form was read whole before any check (1000 fields of 1 MiB allowed).
        huge = {"token": "x" * 100_000, "csrf": "y"}
        async with http.post(s.admin + "/dashboard/login", data=huge, allow_redirects=False) as r:
            assert r.status == 400


async def test_dashboard_in_headless_chromium(tmp_path: Path, upstream: Upstream) -> None:
    need_chromium()
    from playwright.async_api import async_playwright

    async with stack(tmp_path, upstream) as s, async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        try:
            page = await browser.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(s.admin + "/dashboard")
            await page.fill("#token", "wrong")
            await page.click("#login")
            await page.wait_for_selector("text=Wrong token.")
            await page.fill("#token", TOKEN)
            await page.click("#login")
            await page.wait_for_selector("#chart")
            cookies = {c["name"]: c for c in await page.context.cookies()}
            assert cookies["bastion_session"]["httpOnly"] is True
            assert cookies["bastion_session"]["sameSite"] == "Strict"

            assert await traffic(s.gateway, ok=30, missing=12) == [200] * 30 + [404] * 12
            # The page polls every 2 s; its strict CSP forbids eval, so poll from here.
            for _ in range(300):
                if await number(page, "#total") >= 42:
                    break
                await asyncio.sleep(0.05)
            assert await number(page, "#total") >= 42
            assert await number(page, "#denied") >= 12
            await page.wait_for_selector("#ips >> text=127.0.0.1")
            await page.wait_for_selector("#reasons text")  # the denial bar chart has bars

            await page.select_option("#block-kind", "ip")
            await page.fill("#block-value", "127.0.0.1")
            await page.fill("#block-ttl", "600")
            await page.click("#block-button")
            await page.wait_for_selector("#blocks >> text=127.0.0.1")
            assert await traffic(s.gateway, ok=1, missing=0) == [403]

            await page.click("#blocks button.unblock")
            await page.wait_for_selector("#action-result >> text=unblock: done")
            assert await traffic(s.gateway, ok=1, missing=0) == [200]
            assert all(url.startswith(s.admin) for url in requested), requested
            assert errors == []  # no script errors, no CSP violations thrown
        finally:
            await browser.close()


async def test_demo_traffic_mixes_users_and_a_late_attacker() -> None:
    from aiohttp import web

    from bastion.observability.demo_traffic import Actor, run_traffic

    seen: list[tuple[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.headers.get("authorization", ""), request.path))
        return web.Response(status=200 if request.path.startswith("/mine") else 404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner, base = await serve(app)
    slept: list[float] = []

    async def no_wait(seconds: float) -> None:
        slept.append(seconds)

    try:
        report = await run_traffic(
            base,
            [Actor("alice-token", ["/mine/1", "/mine/2"])],
            Actor("eve-token", [f"/orders/{n}" for n in range(100, 120)]),
            asyncio.Event(),
            attack_after=3,
            sleep=no_wait,
            max_rounds=10,
        )
    finally:
        await runner.cleanup()
    assert report.statuses == {200: 10, 404: 7}
    assert report.attack_statuses == [404] * 7
    assert seen[0] == ("Bearer alice-token", "/mine/1")
    assert ("Bearer eve-token", "/orders/100") in seen
    assert len(slept) == 10
