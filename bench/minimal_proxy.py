"""The floor: granian (ASGI) + one pooled aiohttp.ClientSession, no policies.

Run: ``python bench/minimal_proxy.py --port 8001 --upstream http://127.0.0.1:9000``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import aiohttp

HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"host"}
_session: aiohttp.ClientSession | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _session
    if scope["type"] != "http":
        return
    if _session is None:
        _session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256), auto_decompress=False
        )
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    url = os.environ["BENCH_UPSTREAM"] + scope["path"]
    if scope["query_string"]:
        url += "?" + scope["query_string"].decode("latin-1")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    headers = [(k, v) for k, v in headers if k.encode() not in HOP]
    async with _session.request(scope["method"], url, headers=headers, data=body or None) as r:
        payload = await r.read()
        out = [(k, v) for k, v in r.raw_headers if k.lower() not in HOP]
        await send({"type": "http.response.start", "status": r.status, "headers": out})
        await send({"type": "http.response.body", "body": payload})


def main() -> None:
    from granian import Granian
    from granian.constants import Interfaces

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    os.environ["BENCH_UPSTREAM"] = args.upstream.rstrip("/")
    Granian(
        "minimal_proxy:app",
        address="127.0.0.1",
        port=args.port,
        interface=Interfaces.ASGI,
        workers=1,
        websockets=False,
        log_enabled=False,
        working_dir=Path(__file__).resolve().parent,
    ).serve()


if __name__ == "__main__":
    main()
