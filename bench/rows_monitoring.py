"""Bench row for issue 8: bastion routing with metrics, detectors and audit on.

The gateway gets ``monitoring:`` (metrics, every detector at its defaults, a log alert
sink) and an admin listener so the probe can prove the metrics are live: one request of the
load must show up in ``/metrics``. Until the gateway accepts ``monitoring:`` the row is
``n/a`` with the config error. Target: >= 0.90 of *bastion routing* in the same run.
"""

from __future__ import annotations

import secrets

from harness import Env, Row, Running, Unavailable, http
from loaddriver import LoadSpec
from procs import free_port
from targets import ITEM_PATH, start_gateway

_TOKEN = "bench-admin-" + secrets.token_urlsafe(24)
_ADMIN: dict[str, int] = {}


def _load(env: Env) -> LoadSpec:
    return LoadSpec(ITEM_PATH)


def _start(env: Env) -> Running:
    port = free_port()
    _ADMIN["port"] = port
    return start_gateway(
        env,
        "monitoring",
        admin={"host": "127.0.0.1", "port": port, "token": _TOKEN},
        monitoring={
            "metrics": True,
            "dashboard": True,
            "detectors": {"enabled": True},
            "alerts": {"sinks": [{"type": "log"}]},
        },
    )


def _probe(env: Env, running: Running, spec: LoadSpec) -> None:
    status, _, _ = http(running.base_url + ITEM_PATH)
    if status != 200:
        raise Unavailable(f"the item answered {status}")
    url = f"http://127.0.0.1:{_ADMIN['port']}/metrics"
    status, _, body = http(url, headers={"Authorization": f"Bearer {_TOKEN}"})
    if status != 200 or b"bastion_requests_total{" not in body:
        raise Unavailable(f"metrics are not live (admin /metrics answered {status})")


ROWS = [
    Row(
        "monitoring (metrics + detectors + audit)",
        _load,
        _start,
        probe=_probe,
        reference="bastion routing",
        goal=0.90,
    )
]
