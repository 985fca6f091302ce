"""Test-only wiring of a gateway process with a Monitor (what the gateway owner will do).

Run as ``python -m tests.observability.harness --config G --monitoring M --port P
--admin-port A``. It builds the runtime from the gateway config, a Monitor from the
monitoring YAML, calls ``monitor.observe(event)`` right after every audit emit, starts and
closes the monitor with the gateway, and serves the admin API plus ``monitor.admin_routes``
on the admin port. Also ``python -m tests.observability.harness --orders-upstream P``: an
upstream where ``/orders/{id}`` exists (200) for ids below 100 and is 404 above.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from starlette.applications import Starlette
from starlette.routing import Mount

from bastion.config import load_config
from bastion.gateway.admin import create_admin_app
from bastion.gateway.app import Gateway
from bastion.gateway.embedded import embedded_server
from bastion.gateway.runtime import build_runtime
from bastion.observability.audit import AuditLog
from bastion.observability.config import MonitoringConfig
from bastion.observability.monitor import Monitor


class ObservedAudit:
    """Delegates to the real audit log, then hands the event to the monitor."""

    def __init__(self, audit: AuditLog, monitor: Monitor) -> None:
        self._audit, self._monitor = audit, monitor
        self.enabled = True

    def emit(self, event: dict[str, Any]) -> None:
        self._audit.emit(event)
        self._monitor.observe(event)

    def close(self) -> None:
        self._audit.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._audit, name)


async def serve(
    config: Path, settings: MonitoringConfig, port: int, admin_port: int, token: str
) -> None:
    runtime = build_runtime(load_config(config))
    audit = runtime.audit
    monitor = Monitor(settings, store=runtime.services.store, audit=audit)
    runtime.audit = ObservedAudit(audit, monitor)  # type: ignore[assignment]
    gateway = Gateway(runtime)
    admin = Starlette(
        routes=[
            *monitor.admin_routes(token),
            Mount("/", app=create_admin_app(lambda: gateway.runtime, token)),
        ]
    )
    main = embedded_server(gateway, "127.0.0.1", port)
    side = embedded_server(admin, "127.0.0.1", admin_port)
    side.config.lifespan = "off"
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [asyncio.create_task(main.serve())]
    while not main.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
        await asyncio.sleep(0.01)
    await monitor.start()
    tasks.append(asyncio.create_task(side.serve()))
    await stop.wait()
    side.should_exit = main.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    await monitor.close()


def orders_upstream(port: int) -> None:
    async def order(request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        if order_id.isdigit() and int(order_id) < 100:
            return web.json_response({"id": int(order_id)})
        return web.json_response({"error": "not found"}, status=404)

    app = web.Application()
    app.router.add_get("/orders/{order_id}", order)
    app.router.add_get("/{tail:.*}", lambda request: web.json_response({"ok": True}))
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path)
    parser.add_argument("--monitoring", type=Path)
    parser.add_argument("--port", type=int)
    parser.add_argument("--admin-port", type=int)
    parser.add_argument("--orders-upstream", type=int)
    args = parser.parse_args()
    if args.orders_upstream:
        orders_upstream(args.orders_upstream)
        return
    settings = MonitoringConfig.model_validate(yaml.safe_load(args.monitoring.read_bytes()) or {})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(args.config, settings, args.port, args.admin_port, os.environ["ADMIN_TOKEN"])
        )


if __name__ == "__main__":
    main()
