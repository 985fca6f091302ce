"""Running the token service on granian (default) or uvicorn.

granian workers build the app through :func:`create_app_from_env` (the config path is in
``BASTION_IDENTITY_CONFIG``); uvicorn runs it in this process. Migrations run once here,
in the foreground, before any worker starts, so a broken database fails loudly.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from starlette.applications import Starlette

from bastion.identity.app import create_identity_app
from bastion.identity.service import IdentityService
from bastion.identity.settings import IdentitySettings, load_identity_settings

__all__ = ["CONFIG_ENV", "create_app_from_env", "prepare", "serve"]

CONFIG_ENV = "BASTION_IDENTITY_CONFIG"


def create_app_from_env() -> Starlette:
    return create_identity_app(load_identity_settings(os.environ[CONFIG_ENV]))


async def prepare(settings: IdentitySettings) -> None:
    """Apply migrations and make sure signing keys exist."""
    service = IdentityService(settings, audit_sink=None)
    try:
        await service.start()
    finally:
        await service.close()


def serve(
    path: str | Path,
    *,
    server: str | None = None,
    port: int | None = None,
    workers: int = 1,
) -> None:
    settings = load_identity_settings(path)
    asyncio.run(prepare(settings))
    os.environ[CONFIG_ENV] = str(Path(path).resolve())
    chosen = server or settings.listen.server
    bind_port = settings.listen.port if port is None else port
    base = Path(path).resolve().parent
    listen = settings.listen
    cert = str(base / listen.tls_cert) if listen.tls_cert else None
    key = str(base / listen.tls_key) if listen.tls_key else None
    if chosen == "uvicorn":
        import uvicorn

        uvicorn.run(
            create_identity_app(settings),
            host=listen.host,
            port=bind_port,
            lifespan="on",
            server_header=False,
            access_log=False,
            log_level="warning",
            ssl_certfile=cert,
            ssl_keyfile=key,
        )
        return
    from granian import Granian
    from granian.constants import Interfaces

    tls = {"ssl_cert": Path(cert), "ssl_key": Path(key)} if cert and key else {}
    Granian(
        "bastion.identity.server:create_app_from_env",
        address=listen.host,
        port=bind_port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        log_access=False,
        **tls,  # type: ignore[arg-type]
    ).serve()
