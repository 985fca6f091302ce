"""The out-of-band listener for SSRF (API7): a tiny aiohttp server on loopback.

Each probe embeds a unique token in the callback URL; a request arriving with that token
proves the target fetched an attacker-chosen URL. For remote targets, run the scanner where
the target can reach it and pass ``--callback-host``.
"""

from __future__ import annotations

import asyncio
import secrets

from aiohttp import web

__all__ = ["CallbackListener"]


class CallbackListener:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.hits: dict[str, list[str]] = {}
        self._runner: web.AppRunner | None = None
        self._event = asyncio.Event()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def new_url(self) -> tuple[str, str]:
        token = secrets.token_hex(8)
        return token, f"{self.base_url}/cb/{token}"

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info.get("token", "")
        peer = request.remote or "?"
        self.hits.setdefault(token, []).append(f"{request.method} from {peer}")
        self._event.set()
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/cb/{token}", self._handle)
        app.router.add_route("*", "/cb/{token}/{rest:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]

    async def wait(self, tokens: set[str], seconds: float) -> set[str]:
        """Wait up to ``seconds`` until every token was hit; return those that were."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while not tokens <= set(self.hits) and loop.time() < end:
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), max(0.01, end - loop.time()))
            except TimeoutError:
                break
        return tokens & set(self.hits)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
