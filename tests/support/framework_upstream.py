"""A test upstream that reads requests the way common web frameworks do, so that tests can
show the gateway never decides on something the upstream reads differently.

    python -m tests.support.framework_upstream PORT LOG

Each path copies one framework behaviour: content negotiation (DRF's browsable API, Rails
``respond_to``), JSON and form bodies on one route (DRF, Express), case-insensitive JSON
binding (Go ``encoding/json``, ASP.NET Core), ``;`` as a query separator (Rack 2) and the
``X-HTTP-Method-Override`` header (Express method-override, Symfony). Every request it
handles is appended to LOG as one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

ORDERS = {
    "1": {"id": 1, "owner": "u-alice", "item": "alice's order", "card": "4111-ALICE"},
    "2": {"id": 2, "owner": "u-bob", "item": "bob's order", "card": "4111-BOB"},
}


def main() -> None:
    port, log_path = int(sys.argv[1]), Path(sys.argv[2])

    def log(record: dict[str, Any]) -> None:
        with log_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def negotiated(request: web.Request, data: Any) -> web.Response:
        accept = request.headers.get("accept", "")
        if "text/html" in accept:
            return web.Response(text=f"<pre>{json.dumps(data)}</pre>", content_type="text/html")
        if "text/csv" in accept:
            rows = data if isinstance(data, list) else [data]
            text = "\n".join(",".join(str(v) for v in row.values()) for row in rows)
            return web.Response(text=text, content_type="text/csv")
        return web.json_response(data)

    async def order(request: web.Request) -> web.Response:
        log({"path": request.path, "method": request.method})
        found = ORDERS.get(request.match_info["order_id"])
        if found is None:
            return web.json_response({"error": "not found"}, status=404)
        return negotiated(request, found)

    async def orders(request: web.Request) -> web.Response:
        log({"path": request.path, "method": request.method})
        return negotiated(request, list(ORDERS.values()))

    async def order_write(request: web.Request) -> web.Response:
        method = request.method
        if method == "POST":
            method = request.headers.get("x-http-method-override", "POST").upper()
        log({"path": request.path, "method": request.method, "effective": method})
        return web.json_response({"effective_method": method})

    async def transfer(request: web.Request) -> web.Response:
        raw = await request.read()
        content_type = request.headers.get("content-type", "")
        data: dict[str, Any] = {}
        if content_type.startswith("application/x-www-form-urlencoded"):
            for key, value in parse_qsl(raw.decode(), keep_blank_values=True):
                data[key] = value  # the last one wins
        else:
            for key, value in json.loads(raw, object_pairs_hook=list):
                data[key.lower()] = value  # case-insensitive binding, the last one wins
        log({"path": request.path, "account": data.get("account")})
        return web.json_response({"debited": data.get("account")})

    async def statements(request: web.Request) -> web.Response:
        data = dict(
            part.partition("=")[::2]
            for part in request.query_string.replace(";", "&").split("&")
            if part
        )
        log({"path": request.path, "account": data.get("account")})
        return web.json_response({"statement_for": data.get("account")})

    app = web.Application()
    app.router.add_get("/orders", orders)
    app.router.add_get("/orders/{order_id}", order)
    app.router.add_post("/orders/{order_id}", order_write)
    app.router.add_delete("/orders/{order_id}", order_write)
    app.router.add_post("/transfers", transfer)
    app.router.add_get("/statements", statements)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
