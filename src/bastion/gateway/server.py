"""Running the gateway on granian (default) or uvicorn, with SIGHUP reload.

* granian: the main process supervises worker processes. On SIGHUP it first loads and
  checks the new config itself; only a good config makes it respawn the workers one by one
  (each drains its in-flight requests). A bad config is logged and the old workers keep
  serving.
* uvicorn: one process. On SIGHUP the app builds a new runtime in-process and swaps it in
  atomically; a bad config is logged and the old runtime keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bastion.config import LoadedConfig, load_config
from bastion.gateway.app import Gateway, _log
from bastion.gateway.runtime import Runtime, build_runtime
from bastion.policies.mtls import check_server

__all__ = ["create_app_from_env", "create_gateway", "serve"]

CONFIG_ENV = "BASTION_CONFIG"


def _build(path: str) -> Runtime:
    return build_runtime(load_config(path))


def create_gateway(path: str | Path, *, serving: bool = False) -> Gateway:
    """The ASGI app for the config at ``path``, able to reload itself from that file.

    ``serving``: this process only serves the gateway (a server worker), so the garbage
    collector is tuned for it once started (see ``bastion.gateway.app._tune_gc``).
    """
    config_path = str(path)
    return Gateway(_build(config_path), reload=lambda: _build(config_path), tune_gc=serving)


def create_app_from_env() -> Gateway:
    """Factory used by server workers: the config path comes from ``BASTION_CONFIG``."""
    return create_gateway(os.environ[CONFIG_ENV], serving=True)


def serve(path: str | Path, *, server: str | None = None, port: int | None = None) -> None:
    """Validate the config (refusing insecure ones in production), then serve it."""
    loaded = load_config(path)
    build_runtime(loaded).audit.close()  # fail fast, in the foreground, with clear errors
    listen = loaded.config.listen
    chosen = server or listen.server
    check_server(loaded, chosen)
    os.environ[CONFIG_ENV] = str(Path(path).resolve())
    bind_port = listen.port if port is None else port
    if chosen == "uvicorn":
        _serve_uvicorn(loaded, bind_port)
    else:
        _serve_granian(loaded, bind_port)


def _serve_uvicorn(loaded: LoadedConfig, port: int) -> None:

    import uvicorn

    from bastion.gateway.tls_scope import tls_protocol_class

    listen = loaded.config.listen
    app = create_gateway(os.environ[CONFIG_ENV], serving=True)
    tls = listen.tls
    client_ca = tls.client_ca if tls else None
    verify = ssl.CERT_REQUIRED if tls and tls.client_cert == "required" else ssl.CERT_OPTIONAL
    config = uvicorn.Config(
        app,
        host=listen.host,
        port=port,
        lifespan="on",
        loop="asyncio",  # not "auto" (uvloop when installed): what runs is what is tested
        proxy_headers=False,  # the gateway decides whom to trust, not the server
        server_header=False,
        date_header=True,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=int(listen.graceful_timeout),
        ssl_certfile=str(loaded.resolve(tls.cert)) if tls else None,
        ssl_keyfile=str(loaded.resolve(tls.key)) if tls else None,
        # mTLS: the handshake verifies client certificates against client_ca, and the
        # protocol passes the verified one to the app (ASGI tls extension).
        ssl_ca_certs=str(loaded.resolve(client_ca)) if client_ca else None,
        ssl_cert_reqs=verify if client_ca else ssl.CERT_NONE,
        # h11, not httptools ("auto"): h11_max_incomplete_event_size caps the head only
        # there (a 64 MiB header value grew the process by 62 MB before its 431).
        http=tls_protocol_class() if client_ca else "h11",
        h11_max_incomplete_event_size=loaded.config.limits.max_header_bytes + 8192,
        ssl_context_factory=_tls_context_factory(tls.min_version) if tls else None,
    )
    if tls:
        config.ssl_version = ssl.PROTOCOL_TLS_SERVER
        config.ssl_ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!MD5"
    uv_server = uvicorn.Server(config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(app.reload()))
        await uv_server.serve()

    asyncio.run(main())


def _serve_granian(loaded: LoadedConfig, port: int) -> None:
    from granian.constants import Interfaces, Loops, SSLProtocols
    from granian.http import HTTP1Settings
    from granian.server import MPServer

    listen = loaded.config.listen
    config_path = os.environ[CONFIG_ENV]

    class _Server(MPServer):
        def _reload(self, spawn_target: Any, target_loader: Any) -> Any:
            try:
                build_runtime(load_config(config_path)).audit.close()
            except Exception as exc:
                _log("reload_failed", detail=str(exc))
                self.reload_signal = False
                self.main_loop_interrupt.clear()
                return None
            _log("reloading", detail="config is valid; respawning workers one by one")
            return super()._reload(spawn_target, target_loader)  # type: ignore[no-untyped-call]

    tls = listen.tls
    kwargs: dict[str, Any] = {}
    if tls:
        kwargs.update(
            ssl_cert=loaded.resolve(tls.cert),
            ssl_key=loaded.resolve(tls.key),
            ssl_protocol_min=SSLProtocols.tls13 if tls.min_version == "1.3" else SSLProtocols.tls12,
        )
        if tls.client_ca is not None:
            # granian verifies client certificates but cannot pass them to the app:
            # identity then comes from a trusted proxy's Client-Cert header (check_server).
            kwargs.update(
                ssl_ca=loaded.resolve(tls.client_ca),
                ssl_client_verify=tls.client_cert == "required",
            )
    granian = _Server(
        "bastion.gateway.server:create_app_from_env",
        address=listen.host,
        port=port,
        interface=Interfaces.ASGI,
        workers=listen.workers,
        factory=True,
        websockets=False,
        log_access=False,
        http1_settings=HTTP1Settings(
            header_read_timeout=10_000, max_buffer_size=loaded.config.limits.max_header_bytes + 8192
        ),
        workers_kill_timeout=int(listen.graceful_timeout) + 1,
        respawn_interval=0.5,
        loop=Loops.asyncio,  # not "auto": the same loop whatever else is installed
        **kwargs,
    )
    granian.serve()


def _tls_context_factory(
    min_version: str,
) -> Callable[[Any, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    """uvicorn's TLS context with the configured minimum version (its own default context
    allowed TLS 1.2 whatever ``listen.tls.min_version`` said)."""

    def factory(_config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        context = default()
        context.minimum_version = (
            ssl.TLSVersion.TLSv1_3 if min_version == "1.3" else ssl.TLSVersion.TLSv1_2
        )
        return context

    return factory
