"""A real upstream for tests: echoes what it received and logs every request to a file.

Run as ``python -m tests.support.upstream --port P --log FILE``. Every request it receives
is appended to FILE as one JSON line, so a test can assert that an attack never reached it.

Special paths: ``/slow?seconds=N`` sleeps, ``/big?bytes=N`` returns N bytes,
``/hop`` answers with hop-by-hop and fingerprinting headers, ``/status/N`` answers N,
``/answer/NAME`` answers the JSON text ``ANSWERS[NAME]`` as it is written there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from aiohttp import web

#: JSON texts no well-behaved serializer writes, answered byte for byte.
ANSWERS = {
    # A key twice: parsers that keep the last occurrence read "customer", others "admin".
    "repeated-role": b'{"id": 1, "role": "admin", "role": "customer"}',
    # Numbers no double holds, beside a field the contract removes.
    "exact-numbers": b'{"id": 123456789012345678901234567890, '
    b'"balance": 1234567890123456.789, "role": "customer", "internal": "x"}',
}


def make_app(log: Path) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        record = {
            "method": request.method,
            "path": request.raw_path.split("?", 1)[0],
            "raw_path": request.raw_path,
            "query": request.query_string,
            "headers": [[k, v] for k, v in request.raw_headers_str()]
            if hasattr(request, "raw_headers_str")
            else [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
            "body": body.decode("utf-8", "replace"),
            "body_len": len(body),
        }
        with log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        path = record["path"]
        if path.startswith("/slow"):
            await asyncio.sleep(float(request.query.get("seconds", "5")))
        if path.startswith("/big"):
            return web.Response(body=b"x" * int(request.query.get("bytes", "1000")))
        if path.startswith("/status/"):
            return web.json_response(
                {"status": int(path.rsplit("/", 1)[1])}, status=int(path.rsplit("/", 1)[1])
            )
        if path.startswith("/answer/"):
            name = path.removeprefix("/answer/")
            return web.Response(body=ANSWERS[name], content_type="application/json")
        if path.startswith("/hop"):
            response = web.json_response({"ok": True})
            response.headers["Connection"] = "X-Hop-Custom"
            response.headers["X-Hop-Custom"] = "1"
            response.headers["Keep-Alive"] = "timeout=5"
            response.headers["Proxy-Authenticate"] = "Basic"
            response.headers["Trailer"] = "X-Trailer"
            response.headers["Upgrade"] = "h2c"
            response.headers["X-Powered-By"] = "PHP/5.1"
            response.headers["Server"] = "Apache/2.2.1"
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers["Cache-Control"] = "public, max-age=3600"
            return response
        return web.json_response(record)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    web.run_app(make_app(args.log), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
