"""Run the vulnapi twins with uvicorn on free loopback ports, in a background thread."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
VULNAPI = ROOT / "examples" / "vulnapi"
SPEC = VULNAPI / "openapi.yaml"
FIXED_SPEC = VULNAPI / "openapi-fixed.yaml"
IDENTITIES = VULNAPI / "identities.yaml"

if str(VULNAPI) not in sys.path:
    sys.path.insert(0, str(VULNAPI))


@contextmanager
def serve(app: Any, *, certfile: str | None = None, keyfile: str | None = None) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1:<free port> (https with a cert); yields the base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="critical",
        lifespan="off",
        access_log=False,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"{'https' if certfile else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def vulnapi(vulnerable: bool) -> Any:
    from vulnapi import create_app

    return create_app(vulnerable)
