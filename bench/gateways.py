"""Bastion gateways for the rows: the routing config, and the changes each feature adds.

Every gateway is ``bastion gateway --config <generated yaml>`` (granian, one worker,
development mode, plain HTTP on 127.0.0.1) with the audit log written to a file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import fixtures
import yaml
from harness import Env, Running
from procs import free_port, start

__all__ = [
    "ITEM_PATH",
    "gateway_config",
    "jwt_changes",
    "openapi_changes",
    "rate_limit_changes",
    "redis_state",
    "start_gateway",
]

ITEM_PATH = "/items/" + fixtures.SUBJECT


def _bastion_argv() -> list[str]:
    script = Path(sys.executable).parent / "bastion"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from bastion.cli import main; main()"]


def gateway_config(env: Env, name: str, port: int, **changes: Any) -> dict[str, Any]:
    """The bastion routing config, with ``changes`` applied (``route``, ``api``, top level)."""
    route_items: dict[str, Any] = {"path": "/items/{owner_id}", "methods": ["GET"], "public": True}
    route_orders: dict[str, Any] = {"path": "/orders", "methods": ["POST"], "public": True}
    route_items.update(changes.pop("route", {}))
    route_orders.update(changes.pop("orders_route", {}))
    routes = changes.pop("routes", None) or [route_items, route_orders]
    api: dict[str, Any] = {"name": "bench", "upstream": "up", "routes": routes}
    api.update(changes.pop("api", {}))
    config: dict[str, Any] = {
        "version": 1,
        "mode": "development",
        "listen": {"host": "127.0.0.1", "port": port, "graceful_timeout": 2},
        "audit": {"sink": "file", "path": str(env.workdir / f"audit-{name}.jsonl")},
        "security_headers": {"frame_options": "DENY"},
        "upstreams": {
            "up": {"url": env.upstream_url, "timeout": {"connect": 2, "read": 10, "total": 30}}
        },
        "apis": [api],
    }
    config.update(changes)
    return config


def start_gateway(env: Env, name: str, **changes: Any) -> Running:
    port = free_port()
    config = gateway_config(env, name, port, **changes)
    path = env.workdir / f"gateway-{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    url = f"http://127.0.0.1:{port}"
    argv = [*_bastion_argv(), "gateway", "--config", str(path)]
    proc = start(
        f"gateway-{name}", argv, logdir=env.workdir, ready_url=url + "/_bastion/health/live"
    )
    return Running(url, [proc])


def jwt_changes(env: Env) -> dict[str, Any]:
    return {
        "authentication": {
            "jwt": [
                {
                    "issuer": fixtures.ISSUER,
                    "audiences": [fixtures.AUDIENCE],
                    "algorithms": ["ES256"],
                    "keys": [str(env.public_pem)],
                }
            ]
        },
        "route": {
            "public": False,
            "allow": {"roles": ["customer"]},
            "owner": {"request": "path.owner_id", "equals": "principal.sub"},
        },
    }


def rate_limit_changes(limit: str) -> dict[str, Any]:
    return {"route": {"rate_limit": [{"key": "ip", "limit": limit}]}}


def redis_state(env: Env, suffix: str) -> dict[str, Any]:
    return {"backend": "redis", "url": env.redis_url, "prefix": f"bench-{env.run_id}-{suffix}"}


def openapi_changes(env: Env) -> dict[str, Any]:
    """The spec's one operation, made public by a route override (deny by default)."""
    orders = {"path": "/orders", "methods": ["POST"], "public": True}
    return {"api": {"openapi": str(env.spec_path)}, "routes": [orders]}
